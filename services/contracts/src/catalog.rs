//! Inventory's catalog as JSON on the wire (`GET /items`, `GET /items/{sku}`),
//! hand-written.
//!
//! Order no longer reads these: its client of Inventory, with the catalog's
//! types, is generated from `services/inventory/openapi.yaml` at build time
//! (`services/order/build.rs`). What still uses them is Inventory's own side
//! (`From` conversions of its poem-openapi types and the tests proving the two
//! agree), which can go with them.
//!
//! Inventory serves these shapes through its own poem-openapi types (its
//! `ItemDto`, `PriceDto`, `ItemPage`, named `Item`, `Price` and `ItemPage` in
//! `services/inventory/openapi.yaml`). Plain strings and integers, as sent.

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
