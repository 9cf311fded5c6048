//! The demo catalog: a few hundred deterministic items (same SKUs, names,
//! prices and starting stock on every run), every tenth one nearly or
//! entirely out of stock so that demo traffic sees rejections.
//!
//! Loaded straight into the database ([`seed`]) by the
//! `glasshouse-inventory-seed` binary. Idempotent: a second run inserts
//! nothing new; existing items get the seed's name and price back but keep
//! their stock (reservations may hold units of it) unless `reset_stock` is set.

use std::collections::BTreeSet;

use sqlx::MySqlPool;

use crate::store::Item;

/// Default catalog size.
pub const DEFAULT_COUNT: u32 = 300;
/// Largest catalog the seed writes.
pub const MAX_COUNT: u32 = 10_000;
/// Currency of every demo price.
pub const CURRENCY: &str = "EUR";

const ADJECTIVES: [&str; 12] = [
    "Sturdy",
    "Compact",
    "Classic",
    "Featherweight",
    "Rugged",
    "Elegant",
    "Vintage",
    "Modular",
    "Silent",
    "Bright",
    "Foldable",
    "Insulated",
];
const MATERIALS: [&str; 8] = ["Oak", "Steel", "Linen", "Ceramic", "Bamboo", "Copper", "Wool", "Glass"];
const PRODUCTS: [&str; 10] = ["Lamp", "Kettle", "Backpack", "Desk", "Mug", "Blanket", "Chair", "Planter", "Clock", "Shelf"];

/// The `n`-th demo item (1-based): pure, so every run and every test agrees.
pub fn demo_item(n: u32) -> Item {
    let i = n as usize;
    let name = format!(
        "{} {} {}",
        ADJECTIVES[i % ADJECTIVES.len()],
        MATERIALS[(i * 5 + i / ADJECTIVES.len()) % MATERIALS.len()],
        PRODUCTS[(i * 7) % PRODUCTS.len()]
    );
    // 1.99 .. 201.98 EUR, scattered but fixed.
    let price_minor = 199 + i64::from(n.wrapping_mul(7919) % 20_000);
    // Every tenth item holds 0..=3 units: orders for it get rejected soon.
    let stock = if n.is_multiple_of(10) { i64::from(n / 10 % 4) } else { 20 + i64::from(n.wrapping_mul(37) % 181) };
    Item { sku: format!("DEMO-{n:05}"), name, price_minor, currency: CURRENCY.to_owned(), stock }
}

/// The first `count` demo items.
pub fn demo_catalog(count: u32) -> Vec<Item> {
    (1..=count).map(demo_item).collect()
}

/// What a seed run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub inserted: u64,
    /// Items that existed (name and price set to the seed's; stock too if reset).
    pub existing: u64,
}

/// Writes `items` (batches of 100, one transaction each): new SKUs are
/// inserted, existing ones get their name and price back, and their stock
/// only when `reset_stock` is set.
pub async fn seed(pool: &MySqlPool, items: &[Item], reset_stock: bool) -> anyhow::Result<SeedReport> {
    let mut report = SeedReport { inserted: 0, existing: 0 };
    for batch in items.chunks(100) {
        let mut tx = pool.begin().await?;
        let in_list = vec!["?"; batch.len()].join(", ");
        let select = format!("SELECT sku FROM items WHERE sku IN ({in_list}) FOR UPDATE");
        // Bytes: the column's binary collation keeps sqlx from decoding `String`.
        let mut q = sqlx::query_scalar::<_, Vec<u8>>(&select);
        for item in batch {
            q = q.bind(&item.sku);
        }
        let existing: BTreeSet<Vec<u8>> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let values = vec!["(?, ?, ?, ?, ?)"; batch.len()].join(", ");
        let stock_update = if reset_stock { ", stock = VALUES(stock)" } else { "" };
        let sql = format!(
            "INSERT INTO items (sku, name, price_minor, currency, stock) VALUES {values} \
             ON DUPLICATE KEY UPDATE name = VALUES(name), price_minor = VALUES(price_minor), currency = VALUES(currency){stock_update}"
        );
        let mut insert = sqlx::query(&sql);
        for item in batch {
            insert = insert.bind(&item.sku).bind(&item.name).bind(item.price_minor).bind(&item.currency).bind(item.stock);
        }
        insert.execute(&mut *tx).await?;
        tx.commit().await?;
        report.existing += existing.len() as u64;
        report.inserted += (batch.len() - existing.len()) as u64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glasshouse_contracts::{Money, Sku};

    #[test]
    fn the_catalog_is_valid_deterministic_and_has_low_stock_items() {
        let a = demo_catalog(DEFAULT_COUNT);
        assert_eq!(a, demo_catalog(DEFAULT_COUNT));
        let skus: BTreeSet<&str> = a.iter().map(|i| i.sku.as_str()).collect();
        assert_eq!(skus.len(), a.len(), "SKUs are unique");
        for i in &a {
            Sku::parse(&i.sku).unwrap();
            Money::parse(i.price_minor, &i.currency).unwrap();
            assert!(!i.name.trim().is_empty() && i.name.chars().count() <= crate::api::MAX_NAME_CHARS);
            assert!(i.stock >= 0);
        }
        let low = a.iter().filter(|i| i.stock <= 3).count();
        assert_eq!(low, 30, "every tenth item is nearly out of stock");
        assert!(a.iter().any(|i| i.stock == 0), "some are sold out");
        assert_eq!(demo_item(1).sku, "DEMO-00001");
    }
}
