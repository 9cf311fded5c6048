//! The demo catalog: a few hundred deterministic items (same SKUs, names,
//! prices and starting stock on every run), every tenth one nearly or
//! entirely out of stock so that demo traffic sees rejections.
//!
//! Loaded straight into the database ([`seed`]) by the
//! `glasshouse-inventory-seed` binary. Idempotent: a second run inserts
//! nothing new; existing items get the seed's name and price back but keep
//! their stock (reservations may hold units of it) unless `reset_stock` is set.
//!
//! The seed keeps the stock ledger true like the API does ([`crate::store`]):
//! a new item gets its `initial` row, and a reset is a delta
//! (`stock + (seed value - current)`, a `count_correction` row) taken under
//! the row lock, never a value written over whatever orders took meanwhile.

use std::collections::BTreeMap;

use sqlx::MySqlPool;

use crate::store::{self, NewItem};

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
pub fn demo_item(n: u32) -> NewItem {
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
    NewItem { sku: format!("DEMO-{n:05}"), name, price_minor, currency: CURRENCY.to_owned(), stock }
}

/// The first `count` demo items.
pub fn demo_catalog(count: u32) -> Vec<NewItem> {
    (1..=count).map(demo_item).collect()
}

/// What a seed run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeedReport {
    pub inserted: u64,
    /// Items that existed (name and price set to the seed's; stock too if reset).
    pub existing: u64,
    /// Existing items whose stock the reset changed (one `count_correction` each).
    pub stock_corrected: u64,
}

impl SeedReport {
    fn add(&mut self, other: SeedReport) {
        self.inserted += other.inserted;
        self.existing += other.existing;
        self.stock_corrected += other.stock_corrected;
    }
}

/// Writes `items` (batches of 100, one transaction each): new SKUs are
/// inserted with their `initial` ledger rows, existing ones get their name
/// and price back, and with `reset_stock` their stock moved to the seed's
/// value by a recorded `count_correction`.
pub async fn seed(pool: &MySqlPool, items: &[NewItem], reset_stock: bool) -> anyhow::Result<SeedReport> {
    let mut report = SeedReport::default();
    for batch in items.chunks(100) {
        // Someone may create one of the new SKUs between the batch's locking
        // read (which locks no missing row) and its insert: the batch then
        // fails on the key, and the retry finds the item existing.
        let mut attempt = 0;
        let done = loop {
            match seed_batch(pool, batch, reset_stock).await {
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt == 0 => attempt += 1,
                other => break other?,
            }
        };
        report.add(done);
    }
    Ok(report)
}

async fn seed_batch(pool: &MySqlPool, batch: &[NewItem], reset_stock: bool) -> sqlx::Result<SeedReport> {
    let mut tx = pool.begin().await?;
    let skus: Vec<&str> = batch.iter().map(|i| i.sku.as_str()).collect();
    let existing: BTreeMap<String, store::Item> =
        store::lock_items(&mut tx, &skus).await?.into_iter().map(|i| (i.sku.clone(), i)).collect();
    let new: Vec<&NewItem> = batch.iter().filter(|i| !existing.contains_key(&i.sku)).collect();
    store::insert_new_items(&mut tx, &new).await?;
    let mut report = SeedReport { inserted: new.len() as u64, existing: existing.len() as u64, stock_corrected: 0 };
    for want in batch {
        let Some(have) = existing.get(&want.sku) else { continue };
        if (have.name.as_str(), have.price_minor, have.currency.as_str()) != (want.name.as_str(), want.price_minor, want.currency.as_str())
        {
            sqlx::query(
                "UPDATE items SET name = ?, price_minor = ?, currency = ?, version = version + 1, \
                 updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ?",
            )
            .bind(&want.name)
            .bind(want.price_minor)
            .bind(&want.currency)
            .bind(&want.sku)
            .execute(&mut *tx)
            .await?;
        }
        let delta = want.stock - have.stock;
        if reset_stock && delta != 0 {
            store::record_adjustment(&mut tx, &want.sku, delta, store::REASON_COUNT_CORRECTION, None, None).await?;
            report.stock_corrected += 1;
        }
    }
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
