//! Inventory's catalog, as Order needs it: does each SKU exist, and its price.
//! The call goes through the platform client (timeout, retry, breaker).

use std::collections::BTreeMap;

use glasshouse_platform::http_client::{ClientError, ServiceClient};
use serde::Deserialize;

/// A price as Inventory's API gives it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Price {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub sku: String,
    pub price: Price,
}

#[derive(Debug, Deserialize)]
struct ItemsPage {
    items: Vec<Item>,
}

#[derive(Clone)]
pub struct InventoryClient {
    client: ServiceClient,
}

impl InventoryClient {
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }

    /// Prices of `skus` (each a valid SKU, so no escaping is needed): the map
    /// holds the ones Inventory knows; missing ones are unknown SKUs.
    pub async fn prices(&self, skus: &[String]) -> Result<BTreeMap<String, Price>, ClientError> {
        let page: ItemsPage = self.client.get_json(&format!("/items?skus={}", skus.join(","))).await?;
        Ok(page.items.into_iter().map(|i| (i.sku, i.price)).collect())
    }
}
