//! Inventory's catalog as JSON on the wire (`GET /items`, `GET /items/{sku}`):
//! the shapes Order reads to price an order, owned here so neither service's
//! crate depends on the other's.
//!
//! Inventory serves these shapes through its own poem-openapi types (its
//! `ItemDto`, `PriceDto`, `ItemPage`, named `Item`, `Price` and `ItemPage` in
//! `services/inventory/openapi.yaml`) and converts them into these; its tests
//! prove that these types read what it serves and match its committed
//! schema. Plain strings and integers, as sent: Order validates what it uses
//! (`Money::parse`) where it uses it.

use serde::{Deserialize, Serialize};

/// `Price`: one unit's price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Amount in minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// `Item`: one catalog item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub price: Price,
    /// Units available to reserve now.
    pub stock: i64,
}

/// `ItemPage`: a page of the listing, or the answer to a batch read (`skus=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPage {
    /// In SKU order; a batch read leaves out the SKUs Inventory does not know.
    pub items: Vec<Item>,
    /// The next page's `cursor`; absent on the last page and for batch reads (null is read as absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_batch_answer_as_served() {
        let page: ItemPage = serde_json::from_str(
            r#"{"items":[{"sku":"CAT-C","name":"Cup","price":{"amount_minor":1250,"currency":"EUR"},"stock":3}],"next_cursor":null}"#,
        )
        .unwrap();
        assert_eq!(page.items[0].price, Price { amount_minor: 1250, currency: "EUR".into() });
        assert_eq!(page.next_cursor, None);
        let bare: ItemPage = serde_json::from_str(r#"{"items":[]}"#).unwrap();
        assert!(bare.items.is_empty() && bare.next_cursor.is_none(), "next_cursor is optional in the schema");
    }
}
