//! `glasshouse-inventory-seed`, the binary `make demo` runs, against a scratch
//! database: loads the deterministic catalog, is idempotent, leaves stock
//! alone unless asked, keeps the stock ledger balanced, and fails clearly on
//! bad input.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::process::{Command, Output};

use glasshouse_contracts::{NonEmpty, OrderId, Quantity, Sku, StockLine};
use glasshouse_inventory::seed::{DEFAULT_COUNT, demo_item};
use glasshouse_inventory::store;
use glasshouse_tests::db::ScratchMySql;
use support::assert_books_balance;

fn seed(url: &str, args: &[&str]) -> anyhow::Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_glasshouse-inventory-seed"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("APP_")) {
        cmd.env_remove(k);
    }
    Ok(cmd.args(args).env("APP_DATABASE__URL", url).output()?)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn seeds_the_demo_catalog_idempotently() -> anyhow::Result<()> {
    let db = ScratchMySql::new().await?;
    let first = seed(&db.url, &[])?;
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout(&first).contains(&format!("{DEFAULT_COUNT} inserted, 0 already present")), "{}", stdout(&first));
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE sku LIKE 'DEMO-%'").fetch_one(&db.pool).await?;
    assert_eq!(items, i64::from(DEFAULT_COUNT));
    let low: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE stock <= 3").fetch_one(&db.pool).await?;
    assert_eq!(low, 30, "every tenth item nearly sold out, so demo orders get rejected");
    let (name, price, stock): (String, i64, i64) =
        sqlx::query_as("SELECT name, price_minor, stock FROM items WHERE sku = 'DEMO-00042'").fetch_one(&db.pool).await?;
    let want = demo_item(42);
    assert_eq!((name, price, stock), (want.name.clone(), want.price_minor, want.stock));

    assert_books_balance(&db.pool).await?;

    // Demo traffic reserves stock (the reservation code itself), someone
    // renames an item; a re-run restores the name but keeps the stock...
    let order = OrderId::new();
    let line = StockLine { sku: Sku::parse("DEMO-00042")?, quantity: Quantity::new(5)? };
    let mut tx = db.pool.begin().await?;
    store::take_stock(&mut tx, order, &NonEmpty::one(line)).await?;
    tx.commit().await?;
    sqlx::query("UPDATE items SET name = 'renamed' WHERE sku = 'DEMO-00042'").execute(&db.pool).await?;
    let again = seed(&db.url, &[])?;
    assert!(again.status.success());
    assert!(stdout(&again).contains(&format!("0 inserted, {DEFAULT_COUNT} already present")), "{}", stdout(&again));
    let (name, stock): (String, i64) = sqlx::query_as("SELECT name, stock FROM items WHERE sku = 'DEMO-00042'").fetch_one(&db.pool).await?;
    assert_eq!((name.as_str(), stock), (want.name.as_str(), want.stock - 5));
    assert_books_balance(&db.pool).await?;
    // ...unless asked to reset it, which it does by a recorded delta (the
    // books still balance with the reservation held); a larger count adds
    // only the new items.
    let reset = seed(&db.url, &["--reset-stock", "--count", "310"])?;
    assert!(reset.status.success());
    assert!(
        stdout(&reset)
            .contains(&format!("10 inserted, {DEFAULT_COUNT} already present, stock reset (1 corrected by a recorded count_correction)")),
        "{}",
        stdout(&reset)
    );
    let stock: i64 = sqlx::query_scalar("SELECT stock FROM items WHERE sku = 'DEMO-00042'").fetch_one(&db.pool).await?;
    assert_eq!(stock, want.stock);
    let correction: (i64, Vec<u8>) =
        sqlx::query_as("SELECT delta, reason FROM stock_adjustments WHERE sku = 'DEMO-00042' ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await?;
    assert_eq!(correction, (5, b"count_correction".to_vec()));
    assert_books_balance(&db.pool).await?;

    // Bad input: clap's usage error (2), settings error (64), database error (1).
    let bad = seed(&db.url, &["--count", "0"])?;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--count"), "{}", String::from_utf8_lossy(&bad.stderr));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_glasshouse-inventory-seed"));
    let bad_settings = cmd.env("APP_DATABASE__URL", &db.url).env("APP_DATABASE__MAX_CONNECTIONS", "lots").output()?;
    assert_eq!(bad_settings.status.code(), Some(64), "{}", String::from_utf8_lossy(&bad_settings.stderr));
    let unreachable = seed("mysql://glasshouse:glasshouse@127.0.0.1:1/inventory", &[])?;
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("connect to the inventory database"));
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items").fetch_one(&db.pool).await?;
    assert_eq!(items, 310, "failed runs changed nothing");
    db.drop_db().await
}
