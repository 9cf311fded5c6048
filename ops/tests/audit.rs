//! `glasshouse-audit` and `run_audit` over real databases: scratch PostgreSQL
//! and MariaDB databases migrated with the services' own migrations, a scratch
//! MongoDB database, and dead-letter topics of a prefix of their own. A small
//! consistent world passes; each corruption is then reported with its ids.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use glasshouse_ops::audit::load::LEDGER_DELTA_COLUMNS;
use glasshouse_ops::audit::{AuditConfig, Check, KafkaTarget, Kind, run_audit};
use mongodb::bson::doc;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Row as _;
use support::{Run, ScratchMySql, ScratchPg, brokers, mongo_url, run, unique};

const AUDIT: &str = env!("CARGO_BIN_EXE_glasshouse-audit");

/// Seconds ago of every settled row.
const LONG_AGO: f64 = 600.0;

struct World {
    orders: ScratchPg,
    inventory: ScratchMySql,
    mongo: mongodb::Database,
    prefix: String,
    o1: String,
    o2: String,
    o4: String,
}

impl World {
    fn config(&self) -> AuditConfig {
        AuditConfig {
            order_db_url: self.orders.url.clone(),
            inventory_db_url: self.inventory.url.clone(),
            notification_db_url: mongo_url(),
            notification_db_name: self.mongo.name().to_owned(),
            kafka: Some(KafkaTarget { brokers: brokers(), topic_prefix: self.prefix.clone() }),
            settle: Duration::from_secs(60),
            strict: false,
        }
    }

    async fn cli(&self, extra: &[&str]) -> Run {
        let (b, mongo) = (brokers(), mongo_url());
        let mut args = vec![
            "--order-db",
            &self.orders.url,
            "--inventory-db",
            &self.inventory.url,
            "--notification-db",
            &mongo,
            "--notification-db-name",
            self.mongo.name(),
            "--brokers",
            &b,
            "--topic-prefix",
            &self.prefix,
        ];
        args.extend_from_slice(extra);
        run(AUDIT, &args).await
    }

    async fn drop(self) -> anyhow::Result<()> {
        self.mongo.drop().await?;
        self.orders.drop_db().await?;
        self.inventory.drop_db().await
    }
}

async fn order(pg: &sqlx::PgPool, status: &str, reason: Option<&str>, ago: f64, lines: &[(&str, i32)]) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, currency, total_minor, rejection_reason, created_at, updated_at) \
         VALUES ($1, 'customer-1', $2, 'EUR', 100, $3, now() - make_interval(secs => $4), now() - make_interval(secs => $4))",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(ago)
    .execute(pg)
    .await?;
    for (i, (sku, q)) in lines.iter().enumerate() {
        sqlx::query("INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES ($1, $2, $3, $4, 50)")
            .bind(id)
            .bind(i as i32 + 1)
            .bind(sku)
            .bind(q)
            .execute(pg)
            .await?;
    }
    Ok(id.to_string())
}

async fn pg_outbox(pg: &sqlx::PgPool, order: &str, event_type: &str, sent: bool) -> anyhow::Result<()> {
    let sql = if sent {
        "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, created_at, sent_at) \
         VALUES ($1, 'orders.v1', $2, $3, '{}', now() - interval '10 minutes', now() - interval '10 minutes')"
    } else {
        "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload) VALUES ($1, 'orders.v1', $2, $3, '{}')"
    };
    sqlx::query(sql).bind(uuid::Uuid::new_v4()).bind(order).bind(event_type).execute(pg).await?;
    Ok(())
}

async fn reservation(my: &sqlx::MySqlPool, order: &str, sku: &str, q: i32, released: bool) -> anyhow::Result<()> {
    let sql = if released {
        "INSERT INTO reservations (order_id, sku, quantity, released_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP(6))"
    } else {
        "INSERT INTO reservations (order_id, sku, quantity) VALUES (?, ?, ?)"
    };
    sqlx::query(sql).bind(order).bind(sku).bind(q).execute(my).await?;
    Ok(())
}

/// A consistent world:
/// - o1 CONFIRMED for A x2 (reserved), o2 REJECTED out_of_stock for B x50,
///   o3 CANCELLED for A x1 (reserved, released), o4 PENDING just now for B x1;
/// - A created with 10, 2 held for o1: stock 8; B created with 3, restocked 2: stock 5;
/// - notifications: created + the final event of each order, created of o4;
/// - Order's outbox: every event sent, but o4's order.created (just written).
async fn consistent_world() -> anyhow::Result<World> {
    let orders = ScratchPg::new().await?;
    glasshouse_platform::migrations::run_postgres(&orders.pool, Some(sqlx::migrate!("../services/order/migrations"))).await?;
    let inventory = ScratchMySql::new().await?;
    glasshouse_platform::migrations::run_mysql(&inventory.pool, Some(sqlx::migrate!("../services/inventory/migrations"))).await?;
    let mongo = mongodb::Client::with_uri_str(mongo_url()).await?.database(&unique("ops_audit"));
    let prefix = format!("{}.", unique("ops_audit"));

    let pg = &orders.pool;
    let o1 = order(pg, "CONFIRMED", None, LONG_AGO, &[("A", 2)]).await?;
    let o2 = order(pg, "REJECTED", Some("out_of_stock"), LONG_AGO, &[("B", 50)]).await?;
    let o3 = order(pg, "CANCELLED", None, LONG_AGO, &[("A", 1)]).await?;
    let o4 = order(pg, "PENDING", None, 0.0, &[("B", 1)]).await?;
    for (o, t) in [(&o1, "order.created"), (&o1, "order.confirmed"), (&o2, "order.created"), (&o2, "order.rejected")] {
        pg_outbox(pg, o, t, true).await?;
    }
    for (o, t) in [(&o3, "order.created"), (&o3, "order.cancelled")] {
        pg_outbox(pg, o, t, true).await?;
    }
    pg_outbox(pg, &o4, "order.created", false).await?;

    let my = &inventory.pool;
    for (sku, stock) in [("A", 8), ("B", 5)] {
        sqlx::query("INSERT INTO items (sku, name, price_minor, currency, stock) VALUES (?, ?, 50, 'EUR', ?)")
            .bind(sku)
            .bind(format!("Item {sku}"))
            .bind(stock)
            .execute(my)
            .await?;
    }
    sqlx::query("INSERT INTO restocks (idempotency_key, sku, quantity, response_body) VALUES ('k-1', 'B', 2, '{}')").execute(my).await?;
    reservation(my, &o1, "A", 2, false).await?;
    reservation(my, &o3, "A", 1, true).await?;

    let docs: Vec<_> = [
        (&o1, "order.created"),
        (&o1, "order.confirmed"),
        (&o2, "order.created"),
        (&o2, "order.rejected"),
        (&o3, "order.created"),
        (&o3, "order.cancelled"),
        (&o4, "order.created"),
    ]
    .into_iter()
    .map(|(o, t)| doc! { "_id": uuid::Uuid::now_v7().to_string(), "event_id": uuid::Uuid::new_v4().to_string(), "event_type": t, "order_id": o.as_str(), "customer_id": "customer-1" })
    .collect();
    mongo.collection("notifications").insert_many(docs).await?;

    Ok(World { orders, inventory, mongo, prefix, o1, o2, o4 })
}

/// Removes the ledger table if the migrations made one, returning its DDL,
/// so the check's "no ledger" path can be seen whatever the schema holds.
async fn take_ledger_table(my: &sqlx::MySqlPool) -> anyhow::Result<Option<String>> {
    let Some(row) = sqlx::query("SHOW TABLES LIKE 'stock_adjustments'").fetch_optional(my).await? else { return Ok(None) };
    drop(row);
    let ddl = sqlx::query("SHOW CREATE TABLE stock_adjustments").fetch_one(my).await?;
    let ddl: String =
        ddl.try_get::<String, _>(1).or_else(|_| ddl.try_get::<Vec<u8>, _>(1).map(|b| String::from_utf8_lossy(&b).into_owned()))?;
    sqlx::query("DROP TABLE stock_adjustments").execute(my).await?;
    Ok(Some(ddl))
}

/// Puts the ledger table back (or creates one of the documented shape when
/// the migrations have none yet) and records each item's initial stock.
async fn restore_ledger(my: &sqlx::MySqlPool, ddl: Option<String>) -> anyhow::Result<()> {
    let ddl = ddl.unwrap_or_else(|| {
        "CREATE TABLE stock_adjustments (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         sku VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, delta BIGINT NOT NULL, \
         reason VARCHAR(32) NOT NULL, created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE = InnoDB"
            .to_owned()
    });
    sqlx::query(&ddl).execute(my).await?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'stock_adjustments'",
    )
    .fetch_all(my)
    .await?;
    let delta = LEDGER_DELTA_COLUMNS.iter().find(|c| columns.iter().any(|have| have.eq_ignore_ascii_case(c))).expect("a units column");
    for (sku, initial) in [("A", 10), ("B", 3)] {
        sqlx::query(&format!("INSERT INTO stock_adjustments (sku, `{delta}`, reason) VALUES (?, ?, 'initial')"))
            .bind(sku)
            .bind(initial)
            .execute(my)
            .await?;
    }
    Ok(())
}

/// One dead letter on `<prefix>orders.v1.dlq`.
async fn one_dead_letter(prefix: &str) -> anyhow::Result<()> {
    let source = format!("{prefix}orders.v1");
    glasshouse_platform::consumer::ensure_topics(&brokers(), &[&source], 1).await?;
    let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers()).create()?;
    let dlq = format!("{source}.dlq");
    p.send(FutureRecord::to(&dlq).key("order-x").payload("{}"), Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
    Ok(())
}

#[tokio::test]
async fn a_consistent_world_passes_and_each_corruption_is_listed_with_its_ids() -> anyhow::Result<()> {
    let w = consistent_world().await?;
    let saved = take_ledger_table(&w.inventory.pool).await?;
    one_dead_letter(&w.prefix).await?;

    // Consistent, no ledger table: clean, the ledger equation skipped, the dead letter a warning.
    let report = run_audit(&w.config()).await?;
    assert!(report.is_clean(), "{report}");
    let stock = report.check(Check::Stock).expect("stock check");
    assert!(stock.skipped.as_deref().is_some_and(|s| s.contains("stock_adjustments does not exist")), "{report}");
    assert_eq!(
        report.warnings().iter().map(|v| (v.kind, v.subject.clone())).collect::<Vec<_>>(),
        [(Kind::DeadLettersPending, format!("{}orders.v1.dlq", w.prefix))]
    );
    let out = w.cli(&[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("stock          SKIP") && out.stdout.contains("skipped: the ledger equation"), "{out:?}");
    assert!(out.stdout.contains("clean: 0 violations, 1 warnings"), "{out:?}");
    let strict = w.cli(&["--strict"]).await;
    assert_eq!(strict.code, 1, "{strict:?}");
    assert!(strict.stdout.contains("dead_letters_pending"), "{strict:?}");

    // With the ledger: the equation holds for both SKUs.
    restore_ledger(&w.inventory.pool, saved).await?;
    let report = run_audit(&w.config()).await?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.check(Check::Stock).and_then(|c| c.skipped.clone()), None, "{report}");

    // Corrupt it.
    let (pg, my) = (&w.orders.pool, &w.inventory.pool);
    sqlx::query(
        "UPDATE orders SET created_at = now() - interval '10 minutes', updated_at = now() - interval '10 minutes' WHERE id = $1::uuid",
    )
    .bind(&w.o4)
    .execute(pg)
    .await?;
    sqlx::query("UPDATE items SET stock = 9 WHERE sku = 'A'").execute(my).await?;
    w.mongo
        .collection::<mongodb::bson::Document>("notifications")
        .delete_one(doc! { "order_id": &w.o2, "event_type": "order.rejected" })
        .await?;
    let stuck_event = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, created_at) \
         VALUES (?, 'inventory.v1', ?, 'inventory.reserved', '{}', CURRENT_TIMESTAMP(6) - INTERVAL 10 MINUTE)",
    )
    .bind(&stuck_event)
    .bind(&w.o1)
    .execute(my)
    .await?;
    reservation(my, &w.o2, "B", 1, true).await?;

    let report = run_audit(&w.config()).await?;
    let found: BTreeSet<(Kind, String)> = report.violations().iter().map(|v| (v.kind, v.subject.clone())).collect();
    let want: BTreeSet<(Kind, String)> = [
        (Kind::OrderStuck, w.o4.clone()),
        (Kind::StockLedgerMismatch, "A".to_owned()),
        (Kind::NotificationMissing, w.o2.clone()),
        (Kind::OutboxUnsent, stuck_event.clone()),
        (Kind::ReservationForStockRejection, w.o2.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, want, "{report}");
    assert!(report.of_kind(Kind::StockLedgerMismatch)[0].detail.starts_with("stock is 9 but the ledger adds up to 8"), "{report}");

    let out = w.cli(&[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    for line in [
        format!("order_stuck {}: PENDING for", w.o4),
        "stock_ledger_mismatch A: stock is 9".to_owned(),
        format!("notification_missing {}: REJECTED order has no order.rejected notification", w.o2),
        format!("outbox_unsent {stuck_event}: inventory outbox: inventory.reserved to inventory.v1 unsent for"),
        format!("reservation_for_stock_rejection {}: REJECTED (out_of_stock)", w.o2),
        "VIOLATIONS: 5 violations".to_owned(),
    ] {
        assert!(out.stdout.contains(&line), "missing {line:?}: {out:?}");
    }
    let json = w.cli(&["--json"]).await;
    assert_eq!(json.code, 1, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout)?;
    assert_eq!(v["clean"], false);
    assert_eq!(v["violation_count"], 5);
    w.drop().await
}

#[tokio::test]
async fn unreadable_sources_exit_3_and_bad_arguments_exit_2() -> anyhow::Result<()> {
    // Nothing listens on port 1: Inventory's database is read first and fails.
    let r = run(AUDIT, &["--inventory-db", "mysql://glasshouse:secret@127.0.0.1:1/none", "--no-dlq"]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("connect to the inventory database (mysql://glasshouse:***@127.0.0.1:1/none)"), "{r:?}");
    assert!(!r.stderr.contains("secret"), "password printed: {r:?}");

    for (args, needle) in [
        (vec!["--settle-seconds", "soon"], "soon"),
        (vec!["--order-db", "mysql://x/y"], "--order-db `mysql://x/y` is not a postgres://"),
        (vec!["--inventory-db", "postgres://x/y"], "--inventory-db `postgres://x/y`"),
        (vec!["--brokers", "kafka"], "`kafka` is not host:port"),
        (vec!["--frobnicate"], "--frobnicate"),
    ] {
        let r = run(AUDIT, &args).await;
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}: {r:?}");
    }
    Ok(())
}
