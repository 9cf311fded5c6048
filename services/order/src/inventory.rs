//! Inventory's catalog, as Order needs it: does each SKU exist, and its price.
//! The call goes through the platform client (timeout, retry, breaker); the
//! wire shapes are `glasshouse_contracts::catalog`.

use std::collections::BTreeMap;

use glasshouse_contracts::catalog::{ItemPage, Price};
use glasshouse_platform::http_client::{ClientError, ServiceClient};

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
        let page: ItemPage = self.client.get_json(&format!("/items?skus={}", skus.join(","))).await?;
        Ok(page.items.into_iter().map(|i| (i.sku, i.price)).collect())
    }
}
