//! The saga deadline against real PostgreSQL and Kafka: an overdue PENDING
//! order is rejected (`timeout`) and compensated once, late verdicts do not
//! move it, several sweepers resolve each order once, and the running service
//! sweeps on its own.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use glasshouse_contracts::{
    Event, InventoryRejected, InventoryReleased, InventoryReserved, NonEmpty, OrderId, Quantity, RejectionReason, Sku, StockLine,
};
use glasshouse_order::SagaTimeouts;
use glasshouse_order::metrics::OrderMetrics;
use glasshouse_order::settings::SagaSettings;
use glasshouse_telemetry::Metrics;
use glasshouse_tests::poll;
use serde_json::Value;
use support::*;

const PRICES: &[(&str, i64, &str)] = &[("SKU-1", 1250, "EUR")];

/// The service's own sweeper waits an hour between sweeps, so within a test
/// only the sweepers the test builds resolve anything.
fn idle_sweeper(s: &mut glasshouse_order::Settings) {
    s.saga.sweep_interval_ms = NonZeroU64::new(3_600_000).unwrap();
}

fn sweeper(app: &TestApp, metrics: &OrderMetrics, batch: u32) -> SagaTimeouts {
    let settings = SagaSettings { batch_size: NonZeroU32::new(batch).unwrap(), ..SagaSettings::default() };
    SagaTimeouts::new(app.db.pool.clone(), metrics.clone(), settings)
}

fn stock_line() -> NonEmpty<StockLine> {
    NonEmpty::one(StockLine { sku: Sku::parse("SKU-1").unwrap(), quantity: Quantity::new(1).unwrap() })
}

/// `(event_type, payload)` of the order's outbox rows, in write order.
async fn outbox_of(app: &TestApp, id: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT event_type, payload FROM outbox WHERE partition_key = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&app.db.pool)
        .await?;
    rows.into_iter().map(|(t, p)| Ok((t, serde_json::from_str(&p)?))).collect()
}

async fn backdate(app: &TestApp, id: &str, age: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE orders SET created_at = now() - $2::interval WHERE id = $1::uuid").bind(id).bind(age).execute(&app.db.pool).await?;
    Ok(())
}

/// Waits until Order's consumer has committed `event` (its dedupe row exists).
async fn consumed(app: &TestApp, event: &Event) -> anyhow::Result<()> {
    poll::until(&format!("order to consume {}", event.event_type()), Duration::from_secs(30), Duration::from_millis(100), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE consumer = 'order' AND event_id = $1")
            .bind(event.id().as_uuid())
            .fetch_one(&app.db.pool)
            .await?;
        Ok((n == 1).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_order_is_rejected_with_timeout_compensated_once_and_late_verdicts_do_not_move_it() -> anyhow::Result<()> {
    let cat = catalog(PRICES).await?;
    let app = spawn_app_with(&cat.url, idle_sweeper).await?;
    let lea = app.customer("lea");
    let late: Value = app.place(&lea, "late", &[("SKU-1", 1)]).await?.json().await?;
    let fresh: Value = app.place(&lea, "fresh", &[("SKU-1", 1)]).await?.json().await?;
    let (id, fresh_id) = (late["id"].as_str().unwrap().to_owned(), fresh["id"].as_str().unwrap().to_owned());
    backdate(&app, &id, "121 seconds").await?;

    let registry = Metrics::new("order");
    let metrics = OrderMetrics::register(&registry);
    let sweeps = sweeper(&app, &metrics, 100);
    assert_eq!(sweeps.sweep_once().await?, 1, "exactly the overdue order");
    let o = app.get_order(&lea, &id).await?.json::<Value>().await?;
    assert_eq!((o["status"].as_str(), o["rejection_reason"].as_str()), (Some("REJECTED"), Some("timeout")), "{o}");
    assert_eq!(app.get_order(&lea, &fresh_id).await?.json::<Value>().await?["status"], "PENDING", "not overdue yet");

    // One transaction wrote the rejection and the compensation, in that order.
    let events = outbox_of(&app, &id).await?;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["order.created", "order.rejected", "order.cancelled"]);
    assert_eq!(events[1].1["data"]["reason"], serde_json::json!({ "code": "timeout" }));
    assert_eq!(events[2].1["data"], serde_json::json!({ "customer_id": "lea", "reason": "timeout" }));

    // Idempotent: nothing is overdue any more.
    assert_eq!(sweeps.sweep_once().await?, 0);
    assert_eq!(outbox_of(&app, &id).await?.len(), 3, "no second compensation");
    let text = registry.encode();
    for needle in
        ["order_saga_timeouts_total 1", r#"orders_total{status="rejected"} 1"#, r#"order_completion_seconds_count{status="rejected"} 1"#]
    {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // Both reach Kafka on the order's key, behind order.created.
    let published = read(&app.topic("orders.v1"), 4).await?;
    let on_key: Vec<&str> = published.iter().filter(|(k, _)| *k == id).map(|(_, v)| v["type"].as_str().unwrap()).collect();
    assert_eq!(on_key, ["order.created", "order.rejected", "order.cancelled"]);

    // Inventory was only slow: its reservation arrives after the deadline,
    // then the release answering the compensation, then (a re-drive of
    // order.created after the cancel) its `cancelled` rejection.
    let order = OrderId::parse(&id)?;
    let inv = app.topic("inventory.v1");
    let reserved = Event::new(order, InventoryReserved { lines: stock_line() });
    let released = Event::new(order, InventoryReleased { lines: stock_line() });
    let rejected = Event::new(order, InventoryRejected { reason: RejectionReason::Cancelled });
    for e in [&reserved, &released, &rejected] {
        produce(&inv, &id, &e.to_vec()?).await?;
    }
    consumed(&app, &rejected).await?;
    let o = app.get_order(&lea, &id).await?.json::<Value>().await?;
    assert_eq!((o["status"].as_str(), o["rejection_reason"].as_str()), (Some("REJECTED"), Some("timeout")), "{o}");
    let text = app.metrics.encode();
    assert!(text.contains(r#"order_illegal_transitions_total{from="REJECTED",event="inventory.reserved"} 1"#), "{text}");
    for quiet in ["inventory.released", "inventory.rejected"] {
        assert!(
            !text.contains(&format!(r#"order_illegal_transitions_total{{from="REJECTED",event="{quiet}"}}"#)),
            "{quiet} is an echo: {text}"
        );
    }
    assert_eq!(outbox_of(&app, &id).await?.len(), 3, "late verdicts emit nothing");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sweepers_resolve_each_order_once() -> anyhow::Result<()> {
    const OVERDUE: i64 = 60;
    // No order is placed through the API here: nothing calls Inventory.
    let app = spawn_app_with("http://127.0.0.1:9", idle_sweeper).await?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, currency, total_minor, created_at, updated_at) \
         SELECT gen_random_uuid(), 'c-' || n, 'PENDING', 'EUR', 100, now() - interval '1 hour' + n * interval '1 second', now() \
         FROM generate_series(1, $1) AS n",
    )
    .bind(OVERDUE)
    .execute(&app.db.pool)
    .await?;
    // Five orders inside the deadline, and one that already has its verdict.
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, currency, total_minor) \
         SELECT gen_random_uuid(), 'young', 'PENDING', 'EUR', 100 FROM generate_series(1, 5)",
    )
    .execute(&app.db.pool)
    .await?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, currency, total_minor, created_at) \
         VALUES (gen_random_uuid(), 'done', 'CONFIRMED', 'EUR', 100, now() - interval '1 hour')",
    )
    .execute(&app.db.pool)
    .await?;

    let registry = Metrics::new("order");
    let metrics = OrderMetrics::register(&registry);
    // Four replicas' sweepers with small batches, so their claims overlap.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let s = sweeper(&app, &metrics, 7);
            tokio::spawn(async move {
                let mut total = 0;
                loop {
                    match s.sweep_once().await? {
                        0 => return anyhow::Ok(total),
                        n => total += n,
                    }
                }
            })
        })
        .collect();
    let mut swept = 0;
    for t in tasks {
        swept += t.await??;
    }
    assert_eq!(swept as i64, OVERDUE, "each overdue order counted by exactly one sweeper");

    let per_order: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT o.customer_id, \
                count(*) FILTER (WHERE x.event_type = 'order.rejected'), \
                count(*) FILTER (WHERE x.event_type = 'order.cancelled') \
         FROM orders o LEFT JOIN outbox x ON x.partition_key = o.id::text \
         WHERE o.status = 'REJECTED' AND o.rejection_reason = 'timeout' GROUP BY o.id, o.customer_id",
    )
    .fetch_all(&app.db.pool)
    .await?;
    assert_eq!(per_order.len() as i64, OVERDUE, "every overdue order, and only those, timed out");
    assert!(per_order.iter().all(|(c, rej, can)| c.starts_with("c-") && (*rej, *can) == (1, 1)), "{per_order:?}");
    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT customer_id, status FROM orders WHERE customer_id IN ('young', 'done') ORDER BY customer_id")
            .fetch_all(&app.db.pool)
            .await?;
    assert_eq!(left.iter().filter(|(c, s)| c == "young" && s == "PENDING").count(), 5);
    assert!(left.contains(&("done".to_owned(), "CONFIRMED".to_owned())));
    assert!(registry.encode().contains(&format!("order_saga_timeouts_total {OVERDUE}")));
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_service_resolves_a_stuck_order_by_itself() -> anyhow::Result<()> {
    // The catalog answers prices but listens on topics of its own: nobody
    // ever reserves this order, so only the deadline can end its wait.
    let cat = catalog(PRICES).await?;
    let app = spawn_app_with(&cat.url, |s| {
        s.saga.timeout_seconds = NonZeroU64::new(1).unwrap();
        s.saga.sweep_interval_ms = NonZeroU64::new(200).unwrap();
    })
    .await?;
    let max = app.customer("max");
    let o: Value = app.place(&max, "stuck", &[("SKU-1", 1)]).await?.json().await?;
    let id = o["id"].as_str().unwrap();
    let o = app.wait_status(&max, id, "REJECTED").await?;
    assert_eq!(o["rejection_reason"], "timeout");
    poll::until("the timeout to be counted", Duration::from_secs(10), Duration::from_millis(50), || async {
        Ok(app.metrics.encode().contains("order_saga_timeouts_total 1").then_some(()))
    })
    .await?;
    let published = read(&app.topic("orders.v1"), 3).await?;
    let types: Vec<&str> = published.iter().map(|(_, v)| v["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["order.created", "order.rejected", "order.cancelled"]);
    app.stop().await
}
