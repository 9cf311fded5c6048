//! MySQL (MariaDB) access: the catalog, admin writes, and the row-level steps
//! of reserving and releasing stock. The transactions that produce events are
//! composed in [`crate::events`]; every write that produces one writes it to
//! the outbox in the same transaction.
//!
//! # Sessions
//! Every connection runs at `READ COMMITTED` with a short
//! `innodb_lock_wait_timeout` (see [`connect`]): locking reads then take
//! record locks only (no gap or next-key locks), so the only locks that can be
//! contended are the item rows a reservation names, and those are always
//! taken in SKU order.

use std::collections::BTreeMap;
use std::time::Duration;

use glasshouse_contracts::{NonEmpty, OrderId, Quantity, Sku, StockLine};
use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlPoolOptions, MySqlRow};
use sqlx::{Executor, MySqlConnection, MySqlPool, Row};

use crate::settings::DatabaseSettings;

/// Largest stock an item may hold (keeps every count far inside `u32`, the
/// type events report availability in).
pub const MAX_STOCK: i64 = 1_000_000_000;

/// Opens the pool; every session gets `READ COMMITTED` and the configured
/// lock wait timeout.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<MySqlPool> {
    let lock_wait = settings.lock_wait_timeout_seconds.max(1);
    MySqlPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
                conn.execute(format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}").as_str()).await?;
                Ok(())
            })
        })
        .connect(settings.url.expose_secret())
        .await
        .map_err(|e| anyhow::anyhow!("connect to the inventory database: {e}"))
}

/// One catalog item, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    /// Units available to reserve.
    pub stock: i64,
}

const ITEM_COLUMNS: &str = "sku, name, price_minor, currency, stock";

/// A text column with a binary (`ascii_bin`) collation. The server flags such
/// columns BINARY, and sqlx then refuses to decode them as `String`, so they
/// are read as bytes (always ASCII here: they went through `Sku::parse`,
/// `Currency::parse` or the key check on the way in).
fn text(row: &MySqlRow, column: &str) -> sqlx::Result<String> {
    let bytes: Vec<u8> = row.try_get(column)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
}

fn item_from_row(row: &MySqlRow) -> sqlx::Result<Item> {
    Ok(Item {
        sku: text(row, "sku")?,
        name: row.try_get("name")?,
        price_minor: row.try_get("price_minor")?,
        currency: text(row, "currency")?,
        stock: row.try_get("stock")?,
    })
}

/// `?, ?, ?` for an `IN (...)` list of `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

pub async fn get_item(pool: &MySqlPool, sku: &Sku) -> sqlx::Result<Option<Item>> {
    let row = sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE sku = ?")).bind(sku.as_str()).fetch_optional(pool).await?;
    row.as_ref().map(item_from_row).transpose()
}

/// The items among `skus` that exist, in SKU order.
pub async fn get_items(pool: &MySqlPool, skus: &[Sku]) -> sqlx::Result<Vec<Item>> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE sku IN ({}) ORDER BY sku", placeholders(skus.len()));
    let mut q = sqlx::query(&sql);
    for s in skus {
        q = q.bind(s.as_str());
    }
    q.fetch_all(pool).await?.iter().map(item_from_row).collect()
}

/// A page of the catalog in SKU order, after `after` (keyset: stable while
/// items are added).
pub async fn list_items(pool: &MySqlPool, after: Option<&Sku>, limit: i64) -> sqlx::Result<Vec<Item>> {
    let after = after.map(Sku::as_str);
    sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE (? IS NULL OR sku > ?) ORDER BY sku LIMIT ?"))
        .bind(after)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(item_from_row)
        .collect()
}

/// Whether `PUT /items/{sku}` created or changed the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    Created(Item),
    Updated(Item),
}

/// Creates or replaces an item (name, price, stock), under the row's lock.
pub async fn upsert_item(pool: &MySqlPool, item: &Item) -> sqlx::Result<Upserted> {
    // Two creates of one new SKU race to the insert; the loser retries once
    // and finds the row, so it updates.
    for attempt in 0..2 {
        let mut tx = pool.begin().await?;
        let exists =
            sqlx::query("SELECT sku FROM items WHERE sku = ? FOR UPDATE").bind(&item.sku).fetch_optional(&mut *tx).await?.is_some();
        if exists {
            sqlx::query(
                "UPDATE items SET name = ?, price_minor = ?, currency = ?, stock = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ?",
            )
            .bind(&item.name)
            .bind(item.price_minor)
            .bind(&item.currency)
            .bind(item.stock)
            .bind(&item.sku)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Upserted::Updated(item.clone()));
        }
        let inserted = sqlx::query("INSERT INTO items (sku, name, price_minor, currency, stock) VALUES (?, ?, ?, ?, ?)")
            .bind(&item.sku)
            .bind(&item.name)
            .bind(item.price_minor)
            .bind(&item.currency)
            .bind(item.stock)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                return Ok(Upserted::Created(item.clone()));
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt == 0 => {
                tx.rollback().await?;
            }
            Err(e) => return Err(e),
        }
    }
    // The second attempt either updated, inserted or returned its error.
    Err(sqlx::Error::Protocol("item upsert did not settle after a retry".into()))
}

/// A restock request as stored with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestockRequest<'a> {
    pub idempotency_key: &'a str,
    pub sku: &'a Sku,
    pub quantity: u32,
}

/// What a restock came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restocked {
    /// Stock was added; the answer body was stored under the key.
    Done(String),
    /// The key was used before for the same request: its stored answer.
    Replay(String),
    /// The key was used before for a different request.
    KeyReused,
    /// No such item (nothing stored).
    UnknownSku,
    /// The stock would pass [`MAX_STOCK`] (nothing stored); the current stock.
    TooMuch(i64),
}

/// The stored answer for `key` if it was used: `Ok(body)` when the request
/// matches, `Err(())` when it does not.
pub async fn find_restock(pool: &MySqlPool, req: &RestockRequest<'_>) -> sqlx::Result<Option<Result<String, ()>>> {
    let row = sqlx::query("SELECT sku, quantity, response_body FROM restocks WHERE idempotency_key = ?")
        .bind(req.idempotency_key)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        let same = text(&r, "sku")? == req.sku.as_str() && r.try_get::<i32, _>("quantity")? == req.quantity as i32;
        Ok(if same { Ok(r.try_get("response_body")?) } else { Err(()) })
    })
    .transpose()
}

/// Adds `quantity` to the item under its row lock and stores the answer
/// (`answer(item after)`) under the key, in ONE transaction. A concurrent
/// request with the same key waits on the key's primary key, then replays.
pub async fn restock(pool: &MySqlPool, req: &RestockRequest<'_>, answer: impl Fn(&Item) -> String) -> sqlx::Result<Restocked> {
    if let Some(prev) = find_restock(pool, req).await? {
        return Ok(prev.map_or(Restocked::KeyReused, Restocked::Replay));
    }
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE sku = ? FOR UPDATE"))
        .bind(req.sku.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(mut item) = row.as_ref().map(item_from_row).transpose()? else {
        return Ok(Restocked::UnknownSku);
    };
    let stock = item.stock + i64::from(req.quantity);
    if stock > MAX_STOCK {
        return Ok(Restocked::TooMuch(item.stock));
    }
    item.stock = stock;
    let body = answer(&item);
    let key = sqlx::query("INSERT INTO restocks (idempotency_key, sku, quantity, response_body) VALUES (?, ?, ?, ?)")
        .bind(req.idempotency_key)
        .bind(req.sku.as_str())
        .bind(req.quantity as i32)
        .bind(&body)
        .execute(&mut *tx)
        .await;
    if let Err(sqlx::Error::Database(db)) = &key
        && db.is_unique_violation()
    {
        tx.rollback().await?;
        return Ok(match find_restock(pool, req).await? {
            Some(Ok(body)) => Restocked::Replay(body),
            Some(Err(())) => Restocked::KeyReused,
            // Keys are never deleted, so a key that conflicted exists.
            None => return Err(sqlx::Error::Protocol("restock key conflicted but is not found".into())),
        });
    }
    key?;
    sqlx::query("UPDATE items SET stock = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ?")
        .bind(stock)
        .bind(req.sku.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Restocked::Done(body))
}

/// Items with `stock <= threshold` (the `inventory_stock_low_items` gauge).
pub async fn count_low_stock(pool: &MySqlPool, threshold: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE stock <= ?").bind(threshold).fetch_one(pool).await
}

// ---- reservation steps: each runs inside the caller's transaction ----

/// True if `order` already holds reservation rows (reserved or released): a
/// second `order.created` for it must not reserve again.
pub async fn has_reservations(conn: &mut MySqlConnection, order: OrderId) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE order_id = ?").bind(order.to_string()).fetch_one(conn).await?;
    Ok(n > 0)
}

/// Locks the rows of `skus` (already in ascending order) with
/// `SELECT ... FOR UPDATE` and returns their stock; SKUs that do not exist are
/// absent from the map.
///
/// One statement over the primary key: InnoDB reads an `IN` list on the
/// primary key as ascending ranges and locks each row as it reads it, so the
/// locks are taken in SKU order (`ORDER BY sku` on the key adds no sort).
pub async fn lock_stock<'a>(conn: &mut MySqlConnection, skus: impl Iterator<Item = &'a Sku>) -> sqlx::Result<BTreeMap<Sku, i64>> {
    let skus: Vec<&Sku> = skus.collect();
    if skus.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!("SELECT sku, stock FROM items WHERE sku IN ({}) ORDER BY sku FOR UPDATE", placeholders(skus.len()));
    let mut q = sqlx::query(&sql);
    for s in &skus {
        q = q.bind(s.as_str());
    }
    let rows = q.fetch_all(conn).await?;
    let mut out = BTreeMap::new();
    for row in &rows {
        let sku = text(row, "sku")?;
        // Stored SKUs went through `Sku::parse` on the way in.
        let sku = Sku::parse(&sku).map_err(|e| sqlx::Error::ColumnDecode { index: "sku".into(), source: Box::new(e) })?;
        out.insert(sku, row.try_get("stock")?);
    }
    Ok(out)
}

/// Takes `lines` off stock for `order` and records one reservation row per
/// line. The caller holds the rows' locks and has checked the stock; the
/// `stock >= ?` guard and the CHECK constraint still refuse an oversell.
pub async fn take_stock(conn: &mut MySqlConnection, order: OrderId, lines: &NonEmpty<StockLine>) -> sqlx::Result<()> {
    let order = order.to_string();
    for l in lines {
        let qty = i64::from(l.quantity);
        let updated = sqlx::query("UPDATE items SET stock = stock - ?, updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ? AND stock >= ?")
            .bind(qty)
            .bind(l.sku.as_str())
            .bind(qty)
            .execute(&mut *conn)
            .await?;
        if updated.rows_affected() != 1 {
            return Err(sqlx::Error::Protocol(format!("stock of {} changed under its row lock", l.sku.as_str())));
        }
        sqlx::query("INSERT INTO reservations (order_id, sku, quantity) VALUES (?, ?, ?)")
            .bind(&order)
            .bind(l.sku.as_str())
            .bind(qty)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Gives back `order`'s unreleased reservations: locks them, then their items
/// in SKU order, adds the units back and marks the rows released. Returns what
/// went back (empty: nothing to release, nothing changed).
pub async fn release(conn: &mut MySqlConnection, order: OrderId) -> sqlx::Result<Vec<StockLine>> {
    let order = order.to_string();
    let rows = sqlx::query("SELECT sku, quantity FROM reservations WHERE order_id = ? AND released_at IS NULL ORDER BY sku FOR UPDATE")
        .bind(&order)
        .fetch_all(&mut *conn)
        .await?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        let sku = text(row, "sku")?;
        let qty: i32 = row.try_get("quantity")?;
        let sku = Sku::parse(&sku).map_err(|e| sqlx::Error::ColumnDecode { index: "sku".into(), source: Box::new(e) })?;
        let quantity =
            Quantity::try_from(i64::from(qty)).map_err(|e| sqlx::Error::ColumnDecode { index: "quantity".into(), source: Box::new(e) })?;
        lines.push(StockLine { sku, quantity });
    }
    if lines.is_empty() {
        return Ok(lines);
    }
    lock_stock(&mut *conn, lines.iter().map(|l| &l.sku)).await?;
    for l in &lines {
        sqlx::query("UPDATE items SET stock = stock + ?, updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ?")
            .bind(i64::from(l.quantity))
            .bind(l.sku.as_str())
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE reservations SET released_at = CURRENT_TIMESTAMP(6) WHERE order_id = ? AND released_at IS NULL")
        .bind(&order)
        .execute(&mut *conn)
        .await?;
    Ok(lines)
}
