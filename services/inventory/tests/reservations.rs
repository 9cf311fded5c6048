//! Reservations against real MariaDB and Kafka: no oversell under a race,
//! all-or-nothing, unknown SKUs, redelivery, release once, locking that does
//! not deadlock, faults retried rather than turned into rejections, and a
//! cancel that arrives before its order.created (tombstone) leaking nothing.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use glasshouse_contracts::{
    CustomerId, Event, EventType, Money, NonEmpty, OrderCancelled, OrderConfirmed, OrderCreated, OrderId, OrderLine, OrderRejected,
    Payload, Quantity, RejectionReason, ShortLine, Sku, StockLine,
};
use glasshouse_inventory::events::OrderEvents;
use glasshouse_inventory::faults::Faults;
use glasshouse_inventory::metrics::InventoryMetrics;
use glasshouse_inventory::stock_low::LowStock;
use glasshouse_platform::consumer::{Handled, InboundMessage, MessageHandler};
use support::{Env, TopicReader, count, eventually, outbox_rows, producer, send, send_bytes, stock};

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

/// An `order.created` for a fresh order id with `(sku, quantity)` lines.
fn created(lines: &[(&str, u32)]) -> Event {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|(s, q)| OrderLine { sku: sku(s), quantity: Quantity::new(*q).unwrap(), unit_price: Money::parse(100, "EUR").unwrap() })
        .collect();
    let payload = OrderCreated::new(CustomerId::parse("c-test").unwrap(), NonEmpty::new(lines).unwrap()).unwrap();
    Event::new(OrderId::new(), payload)
}

fn cancelled(order: OrderId) -> Event {
    Event::new(order, OrderCancelled::by_customer(CustomerId::parse("c-test").unwrap()))
}

/// The compensation Order writes when the saga deadline passes.
fn timed_out(order: OrderId) -> Event {
    Event::new(order, OrderCancelled::on_timeout(CustomerId::parse("c-test").unwrap()))
}

async fn reservation_rows(pool: &sqlx::MySqlPool, order: OrderId) -> anyhow::Result<(i64, i64)> {
    let (all, active): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(released_at IS NULL), 0) AS SIGNED) FROM reservations WHERE order_id = ?")
            .bind(order.to_string())
            .fetch_one(pool)
            .await?;
    Ok((all, active))
}

async fn insert_item(pool: &sqlx::MySqlPool, sku: &str, stock: i64) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO items (sku, name, price_minor, currency, stock) VALUES (?, ?, 100, 'EUR', ?)")
        .bind(sku)
        .bind(format!("item {sku}"))
        .bind(stock)
        .execute(pool)
        .await?;
    Ok(())
}

async fn reserved_units(pool: &sqlx::MySqlPool, sku: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM reservations WHERE sku = ? AND released_at IS NULL",
    )
    .bind(sku)
    .fetch_one(pool)
    .await?)
}

/// Stock K = 10, 50 orders of one unit each, produced concurrently to Kafka
/// and consumed by three replicas in one consumer group (so several
/// partitions are handled at once and their transactions really race).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversell_race_through_kafka_reserves_exactly_the_stock() -> anyhow::Result<()> {
    const K: i64 = 10;
    const ORDERS: usize = 50;
    let env = Env::new(6).await?;
    let replicas = vec![env.start().await?, env.start().await?, env.start().await?];
    insert_item(env.pool(), "RACE-1", K).await?;
    // Produce only once the three replicas share the six partitions, so each
    // handles some of the orders at the same time as the others.
    support::group_stable(&env.group, replicas.len()).await?;

    let producer = producer()?;
    let events: Vec<Event> = (0..ORDERS).map(|_| created(&[("RACE-1", 1)])).collect();
    let topic = env.orders_topic();
    futures::future::try_join_all(events.iter().map(|e| send(&producer, &topic, e))).await?;

    let mut reader = TopicReader::new(&env.inventory_topic())?;
    let got = reader.until("a verdict for every order", Duration::from_secs(120), |evs| evs.len() >= ORDERS).await?.to_vec();
    let orders: BTreeSet<OrderId> = got.iter().map(Event::order_id).collect();
    let sent: BTreeSet<OrderId> = events.iter().map(Event::order_id).collect();
    assert_eq!(orders, sent, "one verdict per order, for exactly the orders sent");
    assert_eq!(count(&got, EventType::InventoryReserved), K as usize);
    assert_eq!(count(&got, EventType::InventoryRejected), ORDERS - K as usize);
    for e in &got {
        if let Payload::InventoryRejected(r) = e.payload() {
            let RejectionReason::OutOfStock { lines } = &r.reason else { panic!("unexpected reason {:?}", r.reason) };
            assert_eq!(lines.as_slice(), &[ShortLine { sku: sku("RACE-1"), requested: Quantity::new(1)?, available: 0 }]);
        }
    }
    // Exactly one event per order was ever written (redeliveries during the
    // replicas' rebalances were deduplicated, not answered twice).
    assert_eq!(outbox_rows(env.pool(), glasshouse_contracts::topics::INVENTORY).await?, ORDERS as i64);
    assert_eq!(stock(env.pool(), "RACE-1").await?, 0);
    assert_eq!(reserved_units(env.pool(), "RACE-1").await? + stock(env.pool(), "RACE-1").await?, K);

    let success = format!(r#"messaging_consume_duration_seconds_count{{service="inventory",topic="{topic}",outcome="success"}}"#);
    for (i, r) in replicas.iter().enumerate() {
        assert!(r.sample(&success).unwrap_or(0.0) > 0.0, "replica {i} handled none of the orders");
    }
    let total = |series: &str| replicas.iter().map(|r| r.sample(series).unwrap_or(0.0)).sum::<f64>();
    assert_eq!(total(r#"inventory_reservations_total{outcome="reserved"}"#), K as f64);
    assert_eq!(total(r#"inventory_reservations_total{outcome="rejected_out_of_stock"}"#), (ORDERS as i64 - K) as f64);
    for r in replicas {
        r.stop().await?;
    }
    env.drop().await
}

fn handler(pool: sqlx::MySqlPool) -> OrderEvents {
    let metrics = glasshouse_telemetry::Metrics::new("inventory");
    OrderEvents { pool, metrics: InventoryMetrics::register(&metrics), faults: Faults::new(), low_stock: LowStock::new() }
}

fn inbound(e: &Event) -> InboundMessage {
    InboundMessage { topic: "orders.v1".into(), partition: 0, offset: 0, key: Some(e.key()), payload: e.to_vec().unwrap() }
}

/// The reservation transaction itself, 60 at a time with no consumer in
/// between: two-line orders naming the same two SKUs in both orders must
/// neither oversell nor deadlock (SKU-ordered locking), so every call
/// succeeds at the first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_two_line_orders_neither_oversell_nor_deadlock() -> anyhow::Result<()> {
    let env = Env::new(1).await?;
    let mut database = env.database.clone();
    database.max_connections = 30;
    let pool = glasshouse_inventory::store::connect(&database).await?;
    glasshouse_platform::migrations::run_mysql(&pool, Some(sqlx::migrate!("./migrations"))).await?;
    insert_item(&pool, "PAIR-A", 20).await?;
    insert_item(&pool, "PAIR-B", 20).await?;
    let h = Arc::new(handler(pool.clone()));
    let events: Vec<Event> = (0..60)
        .map(|i| if i % 2 == 0 { created(&[("PAIR-A", 1), ("PAIR-B", 1)]) } else { created(&[("PAIR-B", 1), ("PAIR-A", 1)]) })
        .collect();
    let results = futures::future::join_all(events.iter().map(|e| {
        let h = h.clone();
        let msg = inbound(e);
        async move { h.handle(&msg).await }
    }))
    .await;
    for r in &results {
        assert!(matches!(r, Ok(Handled::Processed)), "every order handled at the first attempt, got {r:?}");
    }
    let verdicts: Vec<(String,)> = sqlx::query_as("SELECT event_type FROM outbox").fetch_all(&pool).await?;
    let reserved = verdicts.iter().filter(|(t,)| t == "inventory.reserved").count();
    assert_eq!((reserved, verdicts.len()), (20, 60));
    for s in ["PAIR-A", "PAIR-B"] {
        assert_eq!(stock(&pool, s).await?, 0);
        assert_eq!(reserved_units(&pool, s).await?, 20);
    }
    pool.close().await;
    env.drop().await
}

/// Several distinct `order.created` events for ONE order (a replay by hand,
/// say) racing each other: the order is reserved once; the losers either see
/// the reservation under the item locks or are refused by the
/// `(order_id, sku)` key and retried — as the consumer loop would — and then see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twin_events_for_one_order_reserve_once() -> anyhow::Result<()> {
    let env = Env::new(1).await?;
    let pool = glasshouse_inventory::store::connect(&env.database).await?;
    glasshouse_platform::migrations::run_mysql(&pool, Some(sqlx::migrate!("./migrations"))).await?;
    insert_item(&pool, "TWIN-A", 10).await?;
    insert_item(&pool, "TWIN-B", 10).await?;
    let h = Arc::new(handler(pool.clone()));
    let first = created(&[("TWIN-A", 2), ("TWIN-B", 3)]);
    let twins: Vec<Event> = (0..8).map(|_| Event::new(first.order_id(), first.payload().clone())).collect();
    let results = futures::future::join_all(twins.iter().map(|e| {
        let h = h.clone();
        let msg = inbound(e);
        async move {
            for _ in 0..10 {
                match h.handle(&msg).await {
                    Err(glasshouse_platform::consumer::HandleError::Transient(_)) => continue,
                    other => return other.map_err(|e| anyhow::anyhow!("{e}")),
                }
            }
            anyhow::bail!("still transient after 10 attempts")
        }
    }))
    .await;
    for r in results {
        assert_eq!(r?, Handled::Processed);
    }
    let events: Vec<(String,)> = sqlx::query_as("SELECT event_type FROM outbox").fetch_all(&pool).await?;
    assert_eq!(events, vec![("inventory.reserved".to_owned(),)], "one verdict for the order");
    assert_eq!((stock(&pool, "TWIN-A").await?, stock(&pool, "TWIN-B").await?), (8, 7), "taken once");
    pool.close().await;
    env.drop().await
}

/// Multi-line all-or-nothing, unknown SKUs, redelivery, a second
/// `order.created` for one order, release once, and the events Inventory only
/// acknowledges — one replica, through Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_steps_through_kafka() -> anyhow::Result<()> {
    let env = Env::new(2).await?;
    let app = env.start().await?;
    let pool = env.pool();
    insert_item(pool, "ML-A", 5).await?;
    insert_item(pool, "ML-B", 1).await?;
    let producer = producer()?;
    let topic = env.orders_topic();

    // 1. One line short: nothing is reserved, only the short line is named.
    let short = created(&[("ML-A", 2), ("ML-B", 2)]);
    // 2. An unknown SKU: rejected as such, even though ML-A is in stock.
    let unknown = created(&[("ML-A", 1), ("NOPE-1", 1)]);
    // 3. Fits: every line reserved. Delivered twice with the same event id.
    let fits = created(&[("ML-B", 1), ("ML-A", 2)]);
    // 4. Another order.created for the same order (new event id): no second reservation.
    let again = Event::new(fits.order_id(), fits.payload().clone());
    // Different orders may sit on different partitions, handled in any
    // order: let the rejections settle before `fits` takes stock.
    send(&producer, &topic, &short).await?;
    send(&producer, &topic, &unknown).await?;
    let mut reader = TopicReader::new(&env.inventory_topic())?;
    reader.until("two rejections", Duration::from_secs(60), |evs| evs.len() >= 2).await?;
    for e in [&fits, &fits, &again] {
        send(&producer, &topic, e).await?;
    }
    reader.until("three verdicts", Duration::from_secs(60), |evs| evs.len() >= 3).await?;

    let one = |order: OrderId| -> anyhow::Result<Payload> {
        let evs = reader.of(order);
        anyhow::ensure!(evs.len() == 1, "expected one event for {order}, got {}", evs.len());
        Ok(evs[0].payload().clone())
    };
    assert_eq!(
        one(short.order_id())?,
        Payload::InventoryRejected(glasshouse_contracts::InventoryRejected {
            reason: RejectionReason::OutOfStock {
                lines: NonEmpty::one(ShortLine { sku: sku("ML-B"), requested: Quantity::new(2)?, available: 1 })
            }
        })
    );
    assert_eq!(
        one(unknown.order_id())?,
        Payload::InventoryRejected(glasshouse_contracts::InventoryRejected {
            reason: RejectionReason::UnknownSku { skus: NonEmpty::one(sku("NOPE-1")) }
        })
    );
    let Payload::InventoryReserved(r) = one(fits.order_id())? else { panic!("fits was not reserved") };
    let lines: Vec<(String, u32)> = r.lines.iter().map(|l| (l.sku.as_str().to_owned(), l.quantity.get())).collect();
    assert_eq!(lines, vec![("ML-A".to_owned(), 2), ("ML-B".to_owned(), 1)], "lines in SKU order");

    // Every event above was consumed (the redelivery and the second
    // order.created too) before we look at the stock.
    let processed = || async { Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM processed_events").fetch_one(pool).await? == 4) };
    eventually("four distinct events processed", processed).await?;
    assert_eq!((stock(pool, "ML-A").await?, stock(pool, "ML-B").await?), (3, 0), "only `fits` took stock, once");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations").fetch_one(pool).await?;
    assert_eq!(rows, 2, "one row per (order, sku) of `fits` only");

    // 5. Cancel `fits` twice (two events) and redeliver the first: stock comes back once.
    let cancel = cancelled(fits.order_id());
    send(&producer, &topic, &cancel).await?;
    send(&producer, &topic, &cancel).await?;
    send(&producer, &topic, &cancelled(fits.order_id())).await?;
    // 6. Cancel an order that reserved nothing: nothing to release, no event.
    send(&producer, &topic, &cancelled(short.order_id())).await?;
    // 7. Confirmed / rejected: acknowledged (deduplicated), nothing emitted.
    let customer = CustomerId::parse("c-test")?;
    send(&producer, &topic, &Event::new(fits.order_id(), OrderConfirmed { customer_id: customer.clone() })).await?;
    let rejected = Event::new(
        unknown.order_id(),
        OrderRejected { customer_id: customer, reason: RejectionReason::UnknownSku { skus: NonEmpty::one(sku("NOPE-1")) } },
    );
    send(&producer, &topic, &rejected).await?;
    send(&producer, &topic, &rejected).await?;
    eventually("every later event processed", || async {
        Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM processed_events").fetch_one(pool).await? == 9)
    })
    .await?;

    reader.until("the release", Duration::from_secs(60), |evs| count(evs, EventType::InventoryReleased) >= 1).await?;
    let Payload::InventoryReleased(rel) =
        reader.of(fits.order_id()).iter().find(|e| e.event_type() == EventType::InventoryReleased).map(|e| e.payload().clone()).unwrap()
    else {
        unreachable!()
    };
    let back: BTreeMap<String, u32> = rel.lines.iter().map(|l: &StockLine| (l.sku.as_str().to_owned(), l.quantity.get())).collect();
    assert_eq!(back, BTreeMap::from([("ML-A".to_owned(), 2), ("ML-B".to_owned(), 1)]));
    assert_eq!((stock(pool, "ML-A").await?, stock(pool, "ML-B").await?), (5, 1), "restored exactly once");
    // Emitted in total: 3 verdicts + 1 release, nothing for the rest.
    assert_eq!(outbox_rows(pool, glasshouse_contracts::topics::INVENTORY).await?, 4);
    assert_eq!(app.sample(r#"inventory_reservations_total{outcome="released"}"#), Some(1.0));
    assert_eq!(app.sample(r#"inventory_reservations_total{outcome="rejected_unknown_sku"}"#), Some(1.0));

    // 8. A message that is not an event goes to the dead-letter topic; the
    // partition moves on.
    send_bytes(&producer, &topic, "k", b"{\"not\": \"an event\"}").await?;
    eventually("the poison message dead-lettered", || async {
        Ok(app.sample(&format!(r#"messaging_dead_letter_total{{service="inventory",topic="{topic}"}}"#)) == Some(1.0))
    })
    .await?;

    app.stop().await?;
    env.drop().await
}

/// `reservation_error_rate = 1`: order.created fails transiently and is
/// retried — not rejected; once the flag is cleared it is reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_faults_are_retried_never_rejected() -> anyhow::Result<()> {
    let env = Env::new(1).await?;
    support::write_faults(&env.faults_file, r#"{"reservation_error_rate": 1.0}"#)?;
    let app = env.start().await?;
    assert_eq!(app.sample(r#"fault_flag_active{flag="reservation_error_rate"}"#), Some(1.0));
    insert_item(env.pool(), "FLT-1", 3).await?;
    let producer = producer()?;
    let order = created(&[("FLT-1", 1)]);
    send(&producer, &env.orders_topic(), &order).await?;

    let topic = env.orders_topic();
    let retries = format!(r#"messaging_consume_duration_seconds_count{{service="inventory",topic="{topic}",outcome="retry"}}"#);
    eventually("a retried attempt", || async { Ok(app.sample(&retries).unwrap_or(0.0) >= 1.0) }).await?;
    assert_eq!(outbox_rows(env.pool(), glasshouse_contracts::topics::INVENTORY).await?, 0, "no verdict while the fault is on");
    support::write_faults(&env.faults_file, r#"{"reservation_error_rate": 0.0}"#)?;

    let mut reader = TopicReader::new(&env.inventory_topic())?;
    let got = reader.until("the verdict", Duration::from_secs(60), |evs| !evs.is_empty()).await?;
    assert_eq!(got[0].event_type(), EventType::InventoryReserved);
    assert_eq!(stock(env.pool(), "FLT-1").await?, 2);
    assert_eq!(app.sample(r#"fault_flag_active{flag="reservation_error_rate"}"#), Some(0.0));
    app.stop().await?;
    env.drop().await
}

/// `order.cancelled` before `order.created` (the order timed out, and its
/// order.created is re-driven from the dead-letter topic afterwards): the
/// cancel leaves a tombstone, and the late order.created reserves nothing and
/// answers `inventory.rejected` `cancelled`. The usual order (created, then
/// cancelled) still releases once, and a re-drive after it takes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_created_leaves_a_tombstone_and_reserves_nothing() -> anyhow::Result<()> {
    let env = Env::new(2).await?;
    let app = env.start().await?;
    let pool = env.pool();
    insert_item(pool, "TOMB-A", 5).await?;
    insert_item(pool, "TOMB-B", 5).await?;
    let producer = producer()?;
    let topic = env.orders_topic();
    let mut reader = TopicReader::new(&env.inventory_topic())?;

    // 1. Cancelled first, then its order.created (same key: in that order).
    let late = created(&[("TOMB-A", 2), ("TOMB-B", 1)]);
    send(&producer, &topic, &timed_out(late.order_id())).await?;
    send(&producer, &topic, &late).await?;
    // 2. The usual order: reserved, then released once; a second cancel and a
    // re-drive of its order.created (a copy with a new event id) change nothing.
    let usual = created(&[("TOMB-A", 1)]);
    send(&producer, &topic, &usual).await?;
    reader.until("the usual order's reservation", Duration::from_secs(60), |evs| count(evs, EventType::InventoryReserved) >= 1).await?;
    send(&producer, &topic, &cancelled(usual.order_id())).await?;
    send(&producer, &topic, &cancelled(usual.order_id())).await?;
    let redrive = Event::new(usual.order_id(), usual.payload().clone());
    send(&producer, &topic, &redrive).await?;
    reader.until("four answers", Duration::from_secs(60), |evs| evs.len() >= 4).await?;
    eventually("every event processed", || async {
        Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM processed_events").fetch_one(pool).await? == 6)
    })
    .await?;

    let types = |order: OrderId| reader.of(order).iter().map(|e| e.event_type()).collect::<Vec<_>>();
    let cancelled_answer = Payload::InventoryRejected(glasshouse_contracts::InventoryRejected { reason: RejectionReason::Cancelled });
    assert_eq!(types(late.order_id()), [EventType::InventoryRejected]);
    assert_eq!(reader.of(late.order_id())[0].payload(), &cancelled_answer);
    assert_eq!(reservation_rows(pool, late.order_id()).await?, (0, 0), "nothing reserved for the cancelled order");
    assert_eq!(
        types(usual.order_id()),
        [EventType::InventoryReserved, EventType::InventoryReleased, EventType::InventoryRejected],
        "reserved, released once, and the re-drive answered `cancelled`"
    );
    assert_eq!(reader.of(usual.order_id())[2].payload(), &cancelled_answer);
    assert_eq!(reservation_rows(pool, usual.order_id()).await?, (1, 0), "one reservation row, released");
    assert_eq!((stock(pool, "TOMB-A").await?, stock(pool, "TOMB-B").await?), (5, 5), "stock as it was");
    let tombstones: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM saga_orders WHERE cancelled_at IS NOT NULL").fetch_one(pool).await?;
    assert_eq!(tombstones, 2);
    assert_eq!(outbox_rows(pool, glasshouse_contracts::topics::INVENTORY).await?, 4, "nothing else was emitted");
    for (outcome, n) in [("reserved", 1.0), ("released", 1.0), ("rejected_cancelled", 2.0)] {
        assert_eq!(app.sample(&format!(r#"inventory_reservations_total{{outcome="{outcome}"}}"#)), Some(n), "{outcome}");
    }
    app.stop().await?;
    env.drop().await
}

/// `order.created` and `order.cancelled` of one order handled at the same
/// time (a re-drive racing the live partition, or two replicas during a
/// rebalance), 40 orders at once: whichever wins, the stock ends where it
/// started and no reservation stays active. Both lock the order's
/// `saga_orders` row first, so they run one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn created_and_cancelled_racing_never_leak_stock() -> anyhow::Result<()> {
    const ORDERS: usize = 40;
    let env = Env::new(1).await?;
    let mut database = env.database.clone();
    database.max_connections = 30;
    let pool = glasshouse_inventory::store::connect(&database).await?;
    glasshouse_platform::migrations::run_mysql(&pool, Some(sqlx::migrate!("./migrations"))).await?;
    insert_item(&pool, "RACE-A", 1000).await?;
    insert_item(&pool, "RACE-B", 1000).await?;
    let h = Arc::new(handler(pool.clone()));
    let orders: Vec<Event> = (0..ORDERS).map(|_| created(&[("RACE-A", 3), ("RACE-B", 2)])).collect();
    let handle = |e: Event| {
        let h = h.clone();
        async move {
            let msg = inbound(&e);
            for _ in 0..20 {
                match h.handle(&msg).await {
                    Err(glasshouse_platform::consumer::HandleError::Transient(_)) => continue,
                    other => return other.map_err(|e| anyhow::anyhow!("{e}")),
                }
            }
            anyhow::bail!("still transient after 20 attempts")
        }
    };
    let results = futures::future::join_all(orders.iter().flat_map(|e| {
        let cancel = timed_out(e.order_id());
        // Alternate which of the two is started first.
        if e.order_id().as_uuid().as_bytes()[15] % 2 == 0 {
            [tokio::spawn(handle(cancel)), tokio::spawn(handle(e.clone()))]
        } else {
            [tokio::spawn(handle(e.clone())), tokio::spawn(handle(cancel))]
        }
    }))
    .await;
    for r in results {
        assert_eq!(r??, Handled::Processed);
    }
    assert_eq!((stock(&pool, "RACE-A").await?, stock(&pool, "RACE-B").await?), (1000, 1000), "no stock leaked");
    assert_eq!((reserved_units(&pool, "RACE-A").await?, reserved_units(&pool, "RACE-B").await?), (0, 0));
    // Per order: reserved then released, or answered `cancelled` — never both, never neither.
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT partition_key, event_type FROM outbox ORDER BY id").fetch_all(&pool).await?;
    let mut per_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, ty) in rows {
        per_order.entry(key).or_default().push(ty);
    }
    assert_eq!(per_order.len(), ORDERS);
    for (order, types) in &per_order {
        assert!(types == &["inventory.reserved", "inventory.released"] || types == &["inventory.rejected"], "order {order}: {types:?}");
    }
    pool.close().await;
    env.drop().await
}
