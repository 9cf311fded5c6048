//! PostgreSQL access for orders: every write that produces an event writes it
//! to the outbox in the same transaction.

use chrono::{DateTime, Utc};
use glasshouse_contracts::{Event, OrderId};
use glasshouse_platform::idempotency::{Fingerprint, IdempotencyKey, Prior};
use glasshouse_platform::outbox::{OutboxMessage, enqueue_pg};
use sqlx::{PgConnection, PgPool, Row};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{OrderEvent, OrderStatus, Transition, transition};

/// A priced line, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub id: Uuid,
    pub customer_id: String,
    pub status: OrderStatus,
    pub currency: String,
    pub total_minor: i64,
    pub rejection_reason: Option<String>,
    pub lines: Vec<StoredLine>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What creating an order with an idempotency key came to.
#[derive(Debug)]
pub enum Created {
    /// A new order; its answer body was stored under the key.
    New(StoredOrder),
    /// The key was used before: replay its answer, or refuse another request.
    Prior(Prior),
}

/// A new order, ready to insert.
pub struct NewOrder<'a> {
    pub id: Uuid,
    pub customer_id: &'a str,
    pub currency: &'a str,
    pub total_minor: i64,
    pub lines: &'a [StoredLine],
    pub idempotency_key: &'a IdempotencyKey,
    /// Stored as `request_hash`.
    pub request: &'a Fingerprint,
    /// The `order.created` event (its id is the outbox row's event id).
    pub event: &'a Event,
}

/// What `(customer, key)` means for `request` if the key was used: its stored
/// answer for the same request, a refusal for another.
pub async fn find_idempotent(pool: &PgPool, customer_id: &str, key: &IdempotencyKey, request: &Fingerprint) -> sqlx::Result<Option<Prior>> {
    let span = db_span("SELECT", "idempotency_keys");
    let row = sqlx::query("SELECT request_hash, response_body FROM idempotency_keys WHERE customer_id = $1 AND key = $2")
        .bind(customer_id)
        .bind(key.as_str())
        .fetch_optional(pool)
        .instrument(span)
        .await?;
    Ok(row.map(|r| Prior::of(&Fingerprint::stored(r.get::<String, _>("request_hash")), request, r.get("response_body"))))
}

/// Inserts the order, its lines, the idempotency key (with `response_body`)
/// and the `order.created` outbox row in ONE transaction. A concurrent request
/// with the same key waits on the key's primary key and then replays.
pub async fn create_order(pool: &PgPool, o: &NewOrder<'_>, response_body: impl Fn(&StoredOrder) -> String) -> anyhow::Result<Created> {
    // One span for the transaction: order, lines, idempotency key, outbox row.
    create_order_tx(pool, o, response_body).instrument(db_span("INSERT", "orders")).await
}

async fn create_order_tx(pool: &PgPool, o: &NewOrder<'_>, response_body: impl Fn(&StoredOrder) -> String) -> anyhow::Result<Created> {
    let mut tx = pool.begin().await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *tx).await?;
    sqlx::query("INSERT INTO orders (id, customer_id, status, currency, total_minor, created_at, updated_at) VALUES ($1, $2, 'PENDING', $3, $4, $5, $5)")
        .bind(o.id)
        .bind(o.customer_id)
        .bind(o.currency)
        .bind(o.total_minor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    for (i, l) in o.lines.iter().enumerate() {
        sqlx::query("INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES ($1, $2, $3, $4, $5)")
            .bind(o.id)
            .bind(i as i32 + 1)
            .bind(&l.sku)
            .bind(l.quantity)
            .bind(l.unit_price_minor)
            .execute(&mut *tx)
            .await?;
    }
    let order = StoredOrder {
        id: o.id,
        customer_id: o.customer_id.to_owned(),
        status: OrderStatus::Pending,
        currency: o.currency.to_owned(),
        total_minor: o.total_minor,
        rejection_reason: None,
        lines: o.lines.to_vec(),
        created_at: now,
        updated_at: now,
    };
    let body = response_body(&order);
    let key =
        sqlx::query("INSERT INTO idempotency_keys (customer_id, key, request_hash, order_id, response_body) VALUES ($1, $2, $3, $4, $5)")
            .bind(o.customer_id)
            .bind(o.idempotency_key.as_str())
            .bind(o.request.as_str())
            .bind(o.id)
            .bind(&body)
            .execute(&mut *tx)
            .await;
    if let Err(sqlx::Error::Database(db)) = &key
        && db.constraint() == Some("idempotency_keys_pkey")
    {
        tx.rollback().await?;
        return Ok(match find_idempotent(pool, o.customer_id, o.idempotency_key, o.request).await? {
            Some(prior) => Created::Prior(prior),
            // Cannot happen: the key conflicted, so it exists (keys are never deleted).
            None => anyhow::bail!("idempotency key conflicted but is not found"),
        });
    }
    key?;
    enqueue_pg(&mut tx, &OutboxMessage::from_event(o.event)?).await?;
    tx.commit().await?;
    Ok(Created::New(order))
}

pub async fn get_order(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<StoredOrder>> {
    async {
        let mut conn = pool.acquire().await?;
        load(&mut conn, id, false).await
    }
    .instrument(db_span("SELECT", "orders"))
    .await
}

/// A client span for a statement on the orders database.
fn db_span(operation: &'static str, table: &'static str) -> tracing::Span {
    glasshouse_telemetry::db::client_span("postgresql", operation, table, "orders")
}

async fn load(conn: &mut PgConnection, id: Uuid, for_update: bool) -> sqlx::Result<Option<StoredOrder>> {
    let sql = if for_update {
        "SELECT id, customer_id, status, currency, total_minor, rejection_reason, created_at, updated_at FROM orders WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, customer_id, status, currency, total_minor, rejection_reason, created_at, updated_at FROM orders WHERE id = $1"
    };
    let Some(row) = sqlx::query(sql).bind(id).fetch_optional(&mut *conn).await? else { return Ok(None) };
    let lines = sqlx::query("SELECT sku, quantity, unit_price_minor FROM order_lines WHERE order_id = $1 ORDER BY line_no")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|l| StoredLine { sku: l.get("sku"), quantity: l.get("quantity"), unit_price_minor: l.get("unit_price_minor") })
        .collect();
    Ok(Some(order_from_row(&row, lines)))
}

fn order_from_row(row: &sqlx::postgres::PgRow, lines: Vec<StoredLine>) -> StoredOrder {
    let status: String = row.get("status");
    StoredOrder {
        id: row.get("id"),
        customer_id: row.get("customer_id"),
        // The CHECK constraint admits only the four names.
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Pending),
        currency: row.get::<String, _>("currency"),
        total_minor: row.get("total_minor"),
        rejection_reason: row.get("rejection_reason"),
        lines,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// A page of a customer's orders, newest first, after `cursor` (keyset on
/// `(created_at, id)`, stable under concurrent inserts).
pub async fn list_orders(
    pool: &PgPool,
    customer_id: &str,
    status: Option<OrderStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<StoredOrder>> {
    list_orders_q(pool, customer_id, status, after, limit).instrument(db_span("SELECT", "orders")).await
}

async fn list_orders_q(
    pool: &PgPool,
    customer_id: &str,
    status: Option<OrderStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<StoredOrder>> {
    let rows = sqlx::query(
        "SELECT id, customer_id, status, currency, total_minor, rejection_reason, created_at, updated_at FROM orders \
         WHERE customer_id = $1 AND ($2::text IS NULL OR status = $2) \
         AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5",
    )
    .bind(customer_id)
    .bind(status.map(|s| s.as_str()))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut conn = pool.acquire().await?;
    for row in &rows {
        let id: Uuid = row.get("id");
        let lines = sqlx::query("SELECT sku, quantity, unit_price_minor FROM order_lines WHERE order_id = $1 ORDER BY line_no")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|l| StoredLine { sku: l.get("sku"), quantity: l.get("quantity"), unit_price_minor: l.get("unit_price_minor") })
            .collect();
        out.push(order_from_row(row, lines));
    }
    Ok(out)
}

/// The result of applying an event to an order.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Moved { from: OrderStatus, to: OrderStatus, created_at: DateTime<Utc> },
    NoOp(OrderStatus),
    Illegal(OrderStatus),
    NotFound,
}

/// Applies `event` to order `id` under its row lock, and, if it moves, writes
/// the new status and the events `make_events(order, new status)` to the
/// outbox (in that order), all in the caller's transaction `conn`.
pub async fn apply<I>(
    conn: &mut PgConnection,
    id: Uuid,
    event: OrderEvent,
    rejection_reason: Option<&str>,
    make_events: impl FnOnce(&StoredOrder, OrderStatus) -> anyhow::Result<I>,
) -> anyhow::Result<Applied>
where
    I: IntoIterator<Item = Event>,
{
    apply_q(conn, id, event, rejection_reason, make_events).instrument(db_span("UPDATE", "orders")).await
}

async fn apply_q<I>(
    conn: &mut PgConnection,
    id: Uuid,
    event: OrderEvent,
    rejection_reason: Option<&str>,
    make_events: impl FnOnce(&StoredOrder, OrderStatus) -> anyhow::Result<I>,
) -> anyhow::Result<Applied>
where
    I: IntoIterator<Item = Event>,
{
    let Some(order) = load(conn, id, true).await? else { return Ok(Applied::NotFound) };
    match transition(order.status, event) {
        Transition::To(to) => {
            sqlx::query(
                "UPDATE orders SET status = $2, rejection_reason = COALESCE($3, rejection_reason), updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(to.as_str())
            .bind(rejection_reason)
            .execute(&mut *conn)
            .await?;
            for ev in make_events(&order, to)? {
                enqueue_pg(conn, &OutboxMessage::from_event(&ev)?).await?;
            }
            Ok(Applied::Moved { from: order.status, to, created_at: order.created_at })
        }
        Transition::NoOp => Ok(Applied::NoOp(order.status)),
        Transition::Illegal => Ok(Applied::Illegal(order.status)),
    }
}

/// Claims up to `limit` `PENDING` orders created more than `deadline` ago (by
/// the database clock, the one `created_at` was written with), oldest first,
/// and locks them in the caller's transaction `conn`.
///
/// `FOR UPDATE SKIP LOCKED`: rows another sweeper (another replica) has
/// claimed, or that a verdict or a cancel is moving right now, are skipped,
/// not waited for, so sweepers never block each other or a consumer. A row
/// that left `PENDING` and committed before the lock is taken fails the
/// re-checked `WHERE` and is not returned; the caller still applies the state
/// machine under the lock, which makes a stale claim a no-op.
pub async fn claim_overdue(conn: &mut PgConnection, deadline: std::time::Duration, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => $1) \
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(deadline.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .instrument(db_span("SELECT", "orders"))
    .await
}

/// The order id of an event as a plain UUID.
pub fn uuid_of(id: OrderId) -> Uuid {
    id.as_uuid()
}
