//! Reading the [`World`] from the real databases and brokers.
//!
//! Each database is read inside one read-only transaction at REPEATABLE READ,
//! so its rows are one consistent snapshot (the stock ledger holds exactly,
//! even under traffic). Ages are computed by each database from its own clock.
//! Order is read last (see the module doc of [`super`] for why).
//!
//! Errors name the source and its URL with the password masked.

use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use sqlx::mysql::{MySqlConnectOptions, MySqlRow};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, Executor as _, Row as _};

use super::world::{
    AdjustmentSum, DeadLetterCount, DeadLetters, ItemRow, Ledger, LineRow, NotificationRow, OrderRow, OutboxRow, ReservationRow,
    RestockSum, Status, World,
};
use super::{AuditConfig, KafkaTarget};
use crate::args::redact_url;
use crate::dlq::{self, kafka::Broker};

/// How long connecting to one source may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The ledger table Inventory keeps of every stock change but reservations.
pub const LEDGER_TABLE: &str = "stock_adjustments";
/// Columns that may hold an adjustment's signed units, in order of preference.
pub const LEDGER_DELTA_COLUMNS: [&str; 5] = ["delta", "quantity_delta", "quantity", "units", "amount"];
/// The column holding an adjustment's reason (`initial`, ...), if any.
pub const LEDGER_REASON_COLUMN: &str = "reason";

/// Reads everything `config` names.
pub async fn load(config: &AuditConfig) -> anyhow::Result<World> {
    let (inventory, notifications, dead_letters) = tokio::try_join!(
        load_inventory(&config.inventory_db_url),
        load_notifications(&config.notification_db_url, &config.notification_db_name),
        load_dead_letters(config.kafka.clone()),
    )?;
    let order = load_order(&config.order_db_url).await?;
    let mut outbox = order.outbox;
    outbox.extend(inventory.outbox);
    Ok(World {
        orders: order.orders,
        confirmed_lines: order.confirmed_lines,
        items: inventory.items,
        restocks: inventory.restocks,
        ledger: inventory.ledger,
        reservations: inventory.reservations,
        notifications,
        outbox,
        dead_letters,
    })
}

/// What Order's database holds.
pub struct OrderSide {
    pub orders: Vec<OrderRow>,
    pub confirmed_lines: Vec<LineRow>,
    pub outbox: Vec<OutboxRow>,
}

/// Reads orders, the lines of CONFIRMED orders and the unsent outbox rows.
pub async fn load_order(url: &str) -> anyhow::Result<OrderSide> {
    let source = format!("the order database ({})", redact_url(url));
    let options = PgConnectOptions::from_str(url).with_context(|| format!("{source}: not a PostgreSQL URL"))?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options))
        .await
        .map_err(|_| anyhow::anyhow!("connect timed out after {CONNECT_TIMEOUT:?}"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("connect to {source}"))?;
    let result = async {
        let mut tx = conn.begin().await?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
        let orders = sqlx::query(
            "SELECT id::text AS id, status, rejection_reason, \
             EXTRACT(EPOCH FROM (now() - created_at))::float8 AS age, \
             EXTRACT(EPOCH FROM (now() - updated_at))::float8 AS idle \
             FROM orders",
        )
        .fetch_all(&mut *tx)
        .await
        .context("read orders")?
        .iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(OrderRow {
                id: r.try_get("id")?,
                status: Status::parse(&status).ok_or_else(|| anyhow::anyhow!("order status {status:?} is unknown"))?,
                rejection_reason: r.try_get("rejection_reason")?,
                age_seconds: r.try_get("age")?,
                idle_seconds: r.try_get("idle")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
        let confirmed_lines = sqlx::query(
            "SELECT l.order_id::text AS order_id, l.sku, SUM(l.quantity)::int8 AS quantity \
             FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE o.status = 'CONFIRMED' \
             GROUP BY l.order_id, l.sku",
        )
        .fetch_all(&mut *tx)
        .await
        .context("read order_lines")?
        .iter()
        .map(|r| Ok(LineRow { order_id: r.try_get("order_id")?, sku: r.try_get("sku")?, quantity: r.try_get("quantity")? }))
        .collect::<sqlx::Result<Vec<_>>>()?;
        let outbox = sqlx::query(
            "SELECT event_id::text AS event_id, topic, event_type, EXTRACT(EPOCH FROM (now() - created_at))::float8 AS age \
             FROM outbox WHERE sent_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await
        .context("read outbox")?
        .iter()
        .map(|r| {
            Ok(OutboxRow {
                service: "order".to_owned(),
                event_id: r.try_get("event_id")?,
                topic: r.try_get("topic")?,
                event_type: r.try_get("event_type")?,
                age_seconds: r.try_get("age")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
        tx.rollback().await?;
        anyhow::Ok(OrderSide { orders, confirmed_lines, outbox })
    }
    .await
    .with_context(|| format!("read {source}"));
    let _ = conn.close().await;
    result
}

/// What Inventory's database holds.
pub struct InventorySide {
    pub items: Vec<ItemRow>,
    pub restocks: Vec<RestockSum>,
    pub ledger: Ledger,
    pub reservations: Vec<ReservationRow>,
    pub outbox: Vec<OutboxRow>,
}

/// Reads items, restocks, the ledger (if there is one), reservations and the
/// unsent outbox rows, in one snapshot.
pub async fn load_inventory(url: &str) -> anyhow::Result<InventorySide> {
    let source = format!("the inventory database ({})", redact_url(url));
    let options = MySqlConnectOptions::from_str(url).with_context(|| format!("{source}: not a MySQL URL"))?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::MySqlConnection::connect_with(&options))
        .await
        .map_err(|_| anyhow::anyhow!("connect timed out after {CONNECT_TIMEOUT:?}"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("connect to {source}"))?;
    let result = async {
        // Applies to the next transaction only.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
        let mut tx = conn.begin().await?;
        let items = sqlx::query("SELECT sku, stock FROM items")
            .fetch_all(&mut *tx)
            .await
            .context("read items")?
            .iter()
            .map(|r| Ok(ItemRow { sku: text(r, "sku")?, stock: r.try_get("stock")? }))
            .collect::<sqlx::Result<Vec<_>>>()?;
        let restocks = sqlx::query("SELECT sku, CAST(SUM(quantity) AS SIGNED) AS quantity FROM restocks GROUP BY sku")
            .fetch_all(&mut *tx)
            .await
            .context("read restocks")?
            .iter()
            .map(|r| Ok(RestockSum { sku: text(r, "sku")?, quantity: r.try_get("quantity")? }))
            .collect::<sqlx::Result<Vec<_>>>()?;
        let ledger = read_ledger(&mut tx).await.context("read the stock_adjustments ledger")?;
        let reservations = sqlx::query(
            "SELECT order_id, sku, CAST(quantity AS SIGNED) AS quantity, (released_at IS NOT NULL) AS released FROM reservations",
        )
        .fetch_all(&mut *tx)
        .await
        .context("read reservations")?
        .iter()
        .map(|r| {
            Ok(ReservationRow {
                order_id: text(r, "order_id")?,
                sku: text(r, "sku")?,
                quantity: r.try_get("quantity")?,
                released: r.try_get::<i64, _>("released")? != 0,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
        let outbox = sqlx::query(
            "SELECT event_id, topic, event_type, TIMESTAMPDIFF(MICROSECOND, created_at, CURRENT_TIMESTAMP(6)) AS age_us \
             FROM outbox WHERE sent_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await
        .context("read outbox")?
        .iter()
        .map(|r| {
            Ok(OutboxRow {
                service: "inventory".to_owned(),
                event_id: text(r, "event_id")?,
                topic: text(r, "topic")?,
                event_type: text(r, "event_type")?,
                age_seconds: r.try_get::<i64, _>("age_us")? as f64 / 1e6,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
        tx.rollback().await?;
        anyhow::Ok(InventorySide { items, restocks, ledger, reservations, outbox })
    }
    .await
    .with_context(|| format!("read {source}"));
    let _ = conn.close().await;
    result
}

/// The ledger sums per (SKU, reason), or why there is no ledger to read.
async fn read_ledger(conn: &mut sqlx::MySqlConnection) -> anyhow::Result<Ledger> {
    let columns: Vec<String> = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR) AS name FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(LEDGER_TABLE)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| text(r, "name").map(|n| n.to_ascii_lowercase()))
    .collect::<sqlx::Result<_>>()?;
    if columns.is_empty() {
        return Ok(Ledger::Unavailable(format!("table {LEDGER_TABLE} does not exist in this database")));
    }
    let Some(delta) = LEDGER_DELTA_COLUMNS.iter().find(|c| columns.iter().any(|have| have == *c)) else {
        return Ok(Ledger::Unavailable(format!(
            "table {LEDGER_TABLE} has no units column (looked for {}; it has {})",
            LEDGER_DELTA_COLUMNS.join(", "),
            columns.join(", ")
        )));
    };
    if !columns.iter().any(|c| c == "sku") {
        return Ok(Ledger::Unavailable(format!("table {LEDGER_TABLE} has no sku column (it has {})", columns.join(", "))));
    }
    let has_reason = columns.iter().any(|c| c == LEDGER_REASON_COLUMN);
    // Column names come from the fixed lists above, never from input.
    let sql = if has_reason {
        format!(
            "SELECT sku, CAST(`{LEDGER_REASON_COLUMN}` AS CHAR) AS reason, CAST(SUM(`{delta}`) AS SIGNED) AS delta \
             FROM {LEDGER_TABLE} GROUP BY sku, `{LEDGER_REASON_COLUMN}`"
        )
    } else {
        format!("SELECT sku, NULL AS reason, CAST(SUM(`{delta}`) AS SIGNED) AS delta FROM {LEDGER_TABLE} GROUP BY sku")
    };
    let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
    let sums = rows
        .iter()
        .map(|r| {
            let reason = match r.try_get::<Option<Vec<u8>>, _>("reason") {
                Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
                Err(_) => r.try_get::<Option<String>, _>("reason")?,
            };
            Ok(AdjustmentSum { sku: text(r, "sku")?, reason, delta: r.try_get("delta")? })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Ledger::Present(sums))
}

/// A text column, whatever its collation. Columns with a binary collation
/// (`ascii_bin`: SKUs, order ids) are flagged BINARY by the server and sqlx
/// refuses them as `String`, so they are read as bytes.
fn text(row: &MySqlRow, column: &str) -> sqlx::Result<String> {
    match row.try_get::<String, _>(column) {
        Ok(s) => Ok(s),
        Err(_) => {
            let bytes: Vec<u8> = row.try_get(column)?;
            String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
        }
    }
}

/// Reads every notification's event id, type and order id.
pub async fn load_notifications(url: &str, db: &str) -> anyhow::Result<Vec<NotificationRow>> {
    let source = format!("the notification database ({} database {db})", redact_url(url));
    let result = async {
        let mut options = mongodb::options::ClientOptions::parse(url).await.context("not a MongoDB URL")?;
        options.app_name = Some("glasshouse-audit".to_owned());
        options.server_selection_timeout = Some(CONNECT_TIMEOUT);
        options.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = mongodb::Client::with_options(options)?;
        let coll = client.database(db).collection::<Document>("notifications");
        let docs: Vec<Document> =
            coll.find(doc! {}).projection(doc! { "_id": 0, "event_id": 1, "event_type": 1, "order_id": 1 }).await?.try_collect().await?;
        let field = |d: &Document, k: &str| d.get_str(k).map(str::to_owned).unwrap_or_default();
        anyhow::Ok(
            docs.iter()
                .map(|d| NotificationRow {
                    event_id: field(d, "event_id"),
                    event_type: field(d, "event_type"),
                    order_id: field(d, "order_id"),
                })
                .collect(),
        )
    }
    .await;
    result.with_context(|| format!("read {source}"))
}

/// Counts the contract dead-letter topics under the prefix (Kafka's client
/// blocks, so this runs on the blocking pool).
pub async fn load_dead_letters(target: Option<KafkaTarget>) -> anyhow::Result<DeadLetters> {
    let Some(target) = target else {
        return Ok(DeadLetters::NotChecked("Kafka not asked (--no-dlq)".to_owned()));
    };
    let brokers = target.brokers.clone();
    tokio::task::spawn_blocking(move || {
        let broker = Broker::connect(&target.brokers)?;
        let mut counts = Vec::new();
        for topic in dlq::dead_letter_topics(&target.topic_prefix) {
            counts.push(match broker.state(&topic)? {
                Some(s) => DeadLetterCount { kept: s.kept(), pending: s.pending(), topic, exists: true },
                None => DeadLetterCount { topic, exists: false, kept: 0, pending: 0 },
            });
        }
        anyhow::Ok(DeadLetters::Counted(counts))
    })
    .await
    .context("the dead-letter reader stopped")?
    .with_context(|| format!("count dead letters on Kafka at {brokers}"))
}
