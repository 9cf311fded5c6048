//! MySQL (MariaDB) access: the catalog, admin writes, the stock ledger, and
//! the row-level steps of reserving and releasing stock. The transactions
//! that produce events are composed in [`crate::events`]; every write that
//! produces one writes it to the outbox in the same transaction.
//!
//! # Sessions
//! Every connection runs at `READ COMMITTED` with a short
//! `innodb_lock_wait_timeout` (see [`connect`]): locking reads then take
//! record locks only (no gap or next-key locks), so the only locks that can be
//! contended are the item rows a reservation names, and those are always
//! taken in SKU order.
//!
//! # Stock changes only by deltas, and every delta is on record
//! Nothing here ever writes a stock value read earlier: every change is
//! `stock = stock + delta` under the item's row lock, in the same transaction
//! as the row that explains it:
//!
//! | change | statement | its record |
//! | --- | --- | --- |
//! | item created ([`put_item`], [`insert_new_items`]) | `INSERT items` | `stock_adjustments` row, reason `initial`, delta = initial stock |
//! | restock ([`apply_change`], `ChangeKind::Restock`) | `stock + q` | `restocks` row (`quantity`) |
//! | adjustment ([`apply_change`], `ChangeKind::Adjustment`; [`record_adjustment`]: the seed's reset) | `stock + delta` | `stock_adjustments` row (`damaged`, `lost`, `found`, `count_correction`) |
//! | reservation ([`take_stock`]) | `stock - q` | `reservations` row, `released_at` NULL |
//! | release ([`release`]) | `stock + q` | those rows get `released_at` |
//!
//! `PUT /items/{sku}` on an existing item changes name and price only. Hence,
//! for every SKU, in every committed state (the invariant `glasshouse-audit`
//! checks; [`ledger_mismatches`] is the reference query):
//!
//! ```text
//! items.stock = SUM(stock_adjustments.delta) + SUM(restocks.quantity)
//!             - SUM(reservations.quantity WHERE released_at IS NULL)
//! ```
//!
//! Read all four tables in ONE consistent snapshot (one statement, or one
//! `REPEATABLE READ` / `START TRANSACTION WITH CONSISTENT SNAPSHOT`
//! transaction): read one by one at `READ COMMITTED`, a reservation committed
//! in between shows up in one table and not the other. Items older than the
//! ledger carry one `opening_balance` row (migration `..._stock_ledger.sql`).
//!
//! Every change of an item row also adds 1 to `items.version`, the item's
//! `ETag` (see [`crate::api`]).

use glasshouse_platform::idempotency::{Fingerprint, IdempotencyKey, Prior};
use std::collections::BTreeMap;
use std::time::Duration;

use glasshouse_contracts::{NonEmpty, OrderId, Quantity, Sku, StockLine};
use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlPoolOptions, MySqlRow};
use sqlx::{Executor, MySqlConnection, MySqlPool, Row};
use tracing::Instrument as _;

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
    /// Counts every change of the row, stock included (1 at creation): the
    /// item's entity tag.
    pub version: i64,
}

/// An item to create: what `PUT /items/{sku}` and the demo seed insert.
/// Fields are already validated (`Sku`, `Money`, name rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    /// The initial stock, recorded as the item's `initial` ledger row.
    pub stock: i64,
}

const ITEM_COLUMNS: &str = "sku, name, price_minor, currency, stock, version";

/// Reason of the ledger row written when an item is created.
pub const REASON_INITIAL: &str = "initial";
/// Reason of a correction to a counted value (the seed's `--reset-stock`).
pub const REASON_COUNT_CORRECTION: &str = "count_correction";

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
        version: row.try_get("version")?,
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

/// Locks the rows of `skus` (`SELECT ... FOR UPDATE`, in SKU order, like
/// [`lock_stock`]) and returns the items that exist, in SKU order.
pub async fn lock_items(conn: &mut MySqlConnection, skus: &[&str]) -> sqlx::Result<Vec<Item>> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE sku IN ({}) ORDER BY sku FOR UPDATE", placeholders(skus.len()));
    let mut q = sqlx::query(&sql);
    for s in skus {
        q = q.bind(*s);
    }
    q.fetch_all(conn).await?.iter().map(item_from_row).collect()
}

/// Inserts new items (version 1) and, for each, its `initial` ledger row
/// (delta = its stock), inside the caller's transaction. A SKU that exists
/// already fails the statement with a unique violation on `items`' key.
pub async fn insert_new_items(conn: &mut MySqlConnection, items: &[&NewItem]) -> sqlx::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let sql =
        format!("INSERT INTO items (sku, name, price_minor, currency, stock) VALUES {}", vec!["(?, ?, ?, ?, ?)"; items.len()].join(", "));
    let mut insert = sqlx::query(&sql);
    for i in items {
        insert = insert.bind(&i.sku).bind(&i.name).bind(i.price_minor).bind(&i.currency).bind(i.stock);
    }
    insert.execute(&mut *conn).await?;
    let sql = format!("INSERT INTO stock_adjustments (sku, delta, reason) VALUES {}", vec!["(?, ?, ?)"; items.len()].join(", "));
    let mut ledger = sqlx::query(&sql);
    for i in items {
        ledger = ledger.bind(&i.sku).bind(i.stock).bind(REASON_INITIAL);
    }
    ledger.execute(conn).await?;
    Ok(())
}

/// Adds `delta` (either sign) to a locked item's stock and writes its
/// `stock_adjustments` row, inside the caller's transaction. The caller holds
/// the row lock and has checked the result stays within `0..=MAX_STOCK`
/// (`CHECK (stock >= 0)` refuses a negative one anyway). `key` and `answer`
/// are the request's Idempotency-Key and response body, when it has them.
pub async fn record_adjustment(
    conn: &mut MySqlConnection,
    sku: &str,
    delta: i64,
    reason: &str,
    key: Option<&str>,
    answer: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO stock_adjustments (sku, delta, reason, idempotency_key, response_body) VALUES (?, ?, ?, ?, ?)")
        .bind(sku)
        .bind(delta)
        .bind(reason)
        .bind(key)
        .bind(answer)
        .execute(&mut *conn)
        .await?;
    add_stock(conn, sku, delta).await
}

/// `stock = stock + delta` (never a value read earlier), and a new version.
async fn add_stock(conn: &mut MySqlConnection, sku: &str, delta: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE items SET stock = stock + ?, version = version + 1, updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ?")
        .bind(delta)
        .bind(sku)
        .execute(conn)
        .await?;
    Ok(())
}

/// `PUT /items/{sku}`: an item's catalog attributes, and its initial stock
/// when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutItem {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    /// Required to create; on an existing item only the current value is
    /// accepted (stock changes by deltas only).
    pub stock: Option<i64>,
}

/// What `PUT /items/{sku}` came to. Every variant but `Created` and
/// `Updated` changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    Created(Item),
    /// Name and price are the request's now (the version moved only if they changed).
    Updated(Item),
    /// `If-Match` was given and does not match: the current item, or `None`
    /// when there is no item (no entity tag matches a missing item).
    PreconditionFailed(Option<Item>),
    /// The item does not exist and the request gave no stock to create it with.
    StockRequired,
    /// The item exists and the request's stock differs from its stock.
    StockNotWritable(Item),
}

/// Creates an item (with its `initial` ledger row) or sets the name and price
/// of an existing one, under the row's lock; never changes the stock of an
/// existing item. `if_match(version)`, when given, must hold for the current
/// version.
pub async fn put_item(pool: &MySqlPool, req: &PutItem, if_match: Option<&(dyn Fn(i64) -> bool + Sync)>) -> sqlx::Result<Put> {
    // Two creates of one new SKU race to the insert; the loser retries once
    // and finds the row, so it is an update (or refused, like any update).
    for attempt in 0..2 {
        let mut tx = pool.begin().await?;
        let current = lock_items(&mut tx, &[req.sku.as_str()]).await?.pop();
        let Some(current) = current else {
            if if_match.is_some() {
                return Ok(Put::PreconditionFailed(None));
            }
            let Some(stock) = req.stock else { return Ok(Put::StockRequired) };
            let item = NewItem {
                sku: req.sku.clone(),
                name: req.name.clone(),
                price_minor: req.price_minor,
                currency: req.currency.clone(),
                stock,
            };
            match insert_new_items(&mut tx, &[&item]).await {
                Ok(()) => {
                    tx.commit().await?;
                    let NewItem { sku, name, price_minor, currency, stock } = item;
                    return Ok(Put::Created(Item { sku, name, price_minor, currency, stock, version: 1 }));
                }
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt == 0 => {
                    tx.rollback().await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        if if_match.is_some_and(|matches| !matches(current.version)) {
            return Ok(Put::PreconditionFailed(Some(current)));
        }
        if req.stock.is_some_and(|s| s != current.stock) {
            return Ok(Put::StockNotWritable(current));
        }
        if (current.name.as_str(), current.price_minor, current.currency.as_str())
            == (req.name.as_str(), req.price_minor, req.currency.as_str())
        {
            // Nothing to change: the same answer and version as before.
            return Ok(Put::Updated(current));
        }
        sqlx::query(
            "UPDATE items SET name = ?, price_minor = ?, currency = ?, version = version + 1, updated_at = CURRENT_TIMESTAMP(6) \
             WHERE sku = ?",
        )
        .bind(&req.name)
        .bind(req.price_minor)
        .bind(&req.currency)
        .bind(&req.sku)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Put::Updated(Item {
            name: req.name.clone(),
            price_minor: req.price_minor,
            currency: req.currency.clone(),
            version: current.version + 1,
            ..current
        }));
    }
    // The second attempt found the row or returned the insert's error.
    Err(sqlx::Error::Protocol("item upsert did not settle after a retry".into()))
}

/// A keyed stock change: `POST /items/{sku}/restock` or
/// `POST /items/{sku}/adjustments`, with its Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockChange<'a> {
    pub idempotency_key: &'a IdempotencyKey,
    pub sku: &'a Sku,
    pub kind: ChangeKind<'a>,
}

/// What a [`StockChange`] does, and the table that records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind<'a> {
    /// Adds `quantity` (a `restocks` row).
    Restock { quantity: u32 },
    /// Adds `delta`, either sign (a `stock_adjustments` row with `reason`).
    Adjustment { delta: i64, reason: &'a str },
}

impl ChangeKind<'_> {
    fn delta(&self) -> i64 {
        match *self {
            ChangeKind::Restock { quantity } => i64::from(quantity),
            ChangeKind::Adjustment { delta, .. } => delta,
        }
    }

    fn reason(&self) -> Option<&str> {
        match *self {
            ChangeKind::Restock { .. } => None,
            ChangeKind::Adjustment { reason, .. } => Some(reason),
        }
    }
}

/// What identifies a keyed stock change: its SKU, delta and (adjustments) reason.
/// Not stored: rebuilt from the ledger row the key names.
fn fingerprint(sku: &str, delta: i64, reason: Option<&str>) -> Fingerprint {
    Fingerprint::of(&(sku, delta, reason))
}

/// What a keyed stock change came to. Only `Done` changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Stock was changed; the answer body was stored under the key.
    Done(String),
    /// The key was used before: replay its stored answer, or refuse another request.
    Prior(Prior),
    /// No such item.
    UnknownSku,
    /// The stock would go below zero; the current stock.
    BelowZero(i64),
    /// The stock would pass [`MAX_STOCK`]; the current stock.
    AboveMax(i64),
}

/// What the change's key means if it was used (for this kind of change): its
/// stored answer for the same change, a refusal for another.
async fn find_keyed(pool: &MySqlPool, change: &StockChange<'_>) -> sqlx::Result<Option<Prior>> {
    let sql = match change.kind {
        ChangeKind::Restock { .. } => "SELECT sku, quantity AS delta, response_body FROM restocks WHERE idempotency_key = ?",
        ChangeKind::Adjustment { .. } => "SELECT sku, delta, reason, response_body FROM stock_adjustments WHERE idempotency_key = ?",
    };
    let Some(row) = sqlx::query(sql).bind(change.idempotency_key.as_str()).fetch_optional(pool).await? else { return Ok(None) };
    let delta: i64 = match change.kind {
        ChangeKind::Restock { .. } => i64::from(row.try_get::<i32, _>("delta")?),
        ChangeKind::Adjustment { .. } => row.try_get("delta")?,
    };
    let reason = match change.kind {
        ChangeKind::Restock { .. } => None,
        ChangeKind::Adjustment { .. } => Some(text(&row, "reason")?),
    };
    let stored = fingerprint(&text(&row, "sku")?, delta, reason.as_deref());
    let request = fingerprint(change.sku.as_str(), change.kind.delta(), change.kind.reason());
    let answer = row.try_get::<Option<String>, _>("response_body")?.unwrap_or_default();
    Ok(Some(Prior::of(&stored, &request, answer)))
}

/// Applies a keyed stock change under the item's row lock and stores the
/// answer (`answer(item after)`) with its record, in ONE transaction. A
/// concurrent request with the same key waits on the item's lock, then on
/// the key's unique index, and replays. A refused change stores nothing, so
/// its key stays free.
pub async fn apply_change(pool: &MySqlPool, change: &StockChange<'_>, answer: impl Fn(&Item) -> String) -> sqlx::Result<Applied> {
    if let Some(prior) = find_keyed(pool, change).await? {
        return Ok(Applied::Prior(prior));
    }
    let delta = change.kind.delta();
    let mut tx = pool.begin().await?;
    let Some(mut item) = lock_items(&mut tx, &[change.sku.as_str()]).await?.pop() else { return Ok(Applied::UnknownSku) };
    let stock = item.stock + delta;
    if stock < 0 {
        return Ok(Applied::BelowZero(item.stock));
    }
    if stock > MAX_STOCK {
        return Ok(Applied::AboveMax(item.stock));
    }
    item.stock = stock;
    item.version += 1;
    let body = answer(&item);
    let recorded = match change.kind {
        ChangeKind::Restock { quantity } => {
            sqlx::query("INSERT INTO restocks (idempotency_key, sku, quantity, response_body) VALUES (?, ?, ?, ?)")
                .bind(change.idempotency_key.as_str())
                .bind(change.sku.as_str())
                .bind(quantity as i32)
                .bind(&body)
                .execute(&mut *tx)
                .await
                .map(drop)
        }
        ChangeKind::Adjustment { reason, .. } => {
            sqlx::query("INSERT INTO stock_adjustments (sku, delta, reason, idempotency_key, response_body) VALUES (?, ?, ?, ?, ?)")
                .bind(change.sku.as_str())
                .bind(delta)
                .bind(reason)
                .bind(change.idempotency_key.as_str())
                .bind(&body)
                .execute(&mut *tx)
                .await
                .map(drop)
        }
    };
    if let Err(sqlx::Error::Database(db)) = &recorded
        && db.is_unique_violation()
    {
        tx.rollback().await?;
        return Ok(match find_keyed(pool, change).await? {
            Some(prior) => Applied::Prior(prior),
            // Keys are never deleted, so a key that conflicted exists.
            None => return Err(sqlx::Error::Protocol("idempotency key conflicted but is not found".into())),
        });
    }
    recorded?;
    add_stock(&mut tx, change.sku.as_str(), delta).await?;
    tx.commit().await?;
    Ok(Applied::Done(body))
}

/// Items with `stock <= threshold` (the `inventory_stock_low_items` gauge).
pub async fn count_low_stock(pool: &MySqlPool, threshold: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE stock <= ?").bind(threshold).fetch_one(pool).await
}

/// An item whose stock is not what its ledger says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerMismatch {
    pub sku: String,
    pub stock: i64,
    /// `SUM(adjustments) + SUM(restocks) - SUM(unreleased reservations)`.
    pub expected: i64,
}

/// The items that break the ledger invariant (see the module docs); empty
/// when the books balance. One statement, so one consistent snapshot.
pub async fn ledger_mismatches(pool: &MySqlPool) -> sqlx::Result<Vec<LedgerMismatch>> {
    let rows = sqlx::query(
        "SELECT sku, stock, expected FROM ( \
           SELECT i.sku, i.stock, \
                  CAST(COALESCE(a.units, 0) + COALESCE(r.units, 0) - COALESCE(h.units, 0) AS SIGNED) AS expected \
           FROM items i \
           LEFT JOIN (SELECT sku, SUM(delta) AS units FROM stock_adjustments GROUP BY sku) a ON a.sku = i.sku \
           LEFT JOIN (SELECT sku, SUM(quantity) AS units FROM restocks GROUP BY sku) r ON r.sku = i.sku \
           LEFT JOIN (SELECT sku, SUM(quantity) AS units FROM reservations WHERE released_at IS NULL GROUP BY sku) h ON h.sku = i.sku \
         ) books WHERE stock <> expected ORDER BY sku",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok(LedgerMismatch { sku: text(r, "sku")?, stock: r.try_get("stock")?, expected: r.try_get("expected")? })).collect()
}

// ---- reservation steps: each runs inside the caller's transaction ----

/// A client span for one MySQL statement of a reservation or release
/// (`<operation> <table>`, `db.system.name` = `mysql`, `db.namespace` =
/// `inventory`): the trace shows each lock, stock update and reservation row.
fn db_span(operation: &'static str, table: &'static str) -> tracing::Span {
    glasshouse_telemetry::db::client_span("mysql", operation, table, "inventory")
}

/// True if `order` already holds reservation rows (reserved or released): a
/// second `order.created` for it must not reserve again.
pub async fn has_reservations(conn: &mut MySqlConnection, order: OrderId) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE order_id = ?")
        .bind(order.to_string())
        .fetch_one(conn)
        .instrument(db_span("SELECT", "reservations"))
        .await?;
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
    let rows = q.fetch_all(conn).instrument(db_span("SELECT", "items")).await?;
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
        let updated = sqlx::query(
            "UPDATE items SET stock = stock - ?, version = version + 1, updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ? AND stock >= ?",
        )
        .bind(qty)
        .bind(l.sku.as_str())
        .bind(qty)
        .execute(&mut *conn)
        .instrument(db_span("UPDATE", "items"))
        .await?;
        if updated.rows_affected() != 1 {
            return Err(sqlx::Error::Protocol(format!("stock of {} changed under its row lock", l.sku.as_str())));
        }
        sqlx::query("INSERT INTO reservations (order_id, sku, quantity) VALUES (?, ?, ?)")
            .bind(&order)
            .bind(l.sku.as_str())
            .bind(qty)
            .execute(&mut *conn)
            .instrument(db_span("INSERT", "reservations"))
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
        .instrument(db_span("SELECT", "reservations"))
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
        sqlx::query("UPDATE items SET stock = stock + ?, version = version + 1, updated_at = CURRENT_TIMESTAMP(6) WHERE sku = ?")
            .bind(i64::from(l.quantity))
            .bind(l.sku.as_str())
            .execute(&mut *conn)
            .instrument(db_span("UPDATE", "items"))
            .await?;
    }
    sqlx::query("UPDATE reservations SET released_at = CURRENT_TIMESTAMP(6) WHERE order_id = ? AND released_at IS NULL")
        .bind(&order)
        .execute(&mut *conn)
        .instrument(db_span("UPDATE", "reservations"))
        .await?;
    Ok(lines)
}
