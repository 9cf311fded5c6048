//! The outbox against real PostgreSQL, MariaDB and Kafka: atomic with the
//! business transaction, published in order per key, safe with several relays.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use glasshouse_platform::consumer::ensure_topics;
use glasshouse_platform::faults::{FaultMetrics, FaultWatcher, Faults, RELAY_FLAGS};
use glasshouse_platform::migrations;
use glasshouse_platform::outbox::{OutboxDb, OutboxMessage, Relay, RelayConfig, enqueue_mysql, enqueue_pg};
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::{ScratchMySql, ScratchPg};
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use uuid::Uuid;

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", KAFKA.addr())
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

fn message(topic: &str, key: &str, seq: usize) -> OutboxMessage {
    OutboxMessage {
        event_id: Uuid::new_v4(),
        topic: topic.to_owned(),
        key: key.to_owned(),
        event_type: "test.event".into(),
        payload: serde_json::json!({ "key": key, "seq": seq }).to_string(),
    }
}

/// Reads `n` messages from `topic` from the beginning: `key -> [seq...]` in arrival order.
async fn read_all(topic: &str, n: usize) -> anyhow::Result<(HashMap<String, Vec<u64>>, Vec<String>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", KAFKA.addr())
        .set("group.id", stack::unique_name("outbox-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    let mut traceparents = Vec::new();
    let mut seen = 0;
    while seen < n {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .map_err(|_| anyhow::anyhow!("only {seen} of {n} messages arrived"))??;
        let v: serde_json::Value = serde_json::from_slice(msg.payload().unwrap_or_default())?;
        let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
        assert_eq!(v["key"], key, "message key is the aggregate key");
        by_key.entry(key).or_default().push(v["seq"].as_u64().unwrap());
        if let Some(h) = msg.headers()
            && let Some(tp) = h.iter().find(|h| h.key == "traceparent").and_then(|h| h.value)
        {
            traceparents.push(String::from_utf8_lossy(tp).into_owned());
        }
        seen += 1;
    }
    Ok((by_key, traceparents))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox_is_atomic_ordered_per_key_and_safe_with_two_relays() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    let topic = stack::unique_name("outbox-pg");
    ensure_topics(&KAFKA.addr(), &[&topic], 3).await?;

    // A rolled-back transaction leaves no event.
    let mut tx = db.pool.begin().await?;
    enqueue_pg(&mut tx, &message(&topic, "ghost", 0)).await?;
    tx.rollback().await?;

    // 3 keys x 40 events, each in its own committed transaction, interleaved.
    let keys = ["order-a", "order-b", "order-c"];
    for seq in 0..40 {
        for key in keys {
            let mut tx = db.pool.begin().await?;
            enqueue_pg(&mut tx, &message(&topic, key, seq)).await?;
            tx.commit().await?;
        }
    }

    let metrics = Metrics::new("outbox-test");
    let config = RelayConfig { batch_size: 7, idle_poll: Duration::from_millis(10), ..RelayConfig::default() };
    let shutdown = glasshouse_platform::app::Shutdown::new();
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay = Relay::new(OutboxDb::Postgres(db.pool.clone()), producer(), metrics.standard.clone(), config.clone());
            tokio::spawn(relay.run(shutdown.subscribe()))
        })
        .collect();

    let pool = db.pool.clone();
    poll::until("the outbox to drain", Duration::from_secs(60), Duration::from_millis(50), || {
        let pool = pool.clone();
        async move {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&pool).await?;
            Ok((left == 0).then_some(()))
        }
    })
    .await?;
    shutdown.trigger();
    for r in relays {
        tokio::time::timeout(Duration::from_secs(30), r).await???;
    }

    let (by_key, _) = read_all(&topic, 120).await?;
    assert!(!by_key.contains_key("ghost"), "a rolled-back event was published");
    for key in keys {
        let seqs = &by_key[key];
        let mut first_seen: Vec<u64> = Vec::new();
        for s in seqs {
            if !first_seen.contains(s) {
                first_seen.push(*s);
            }
        }
        assert_eq!(first_seen, (0..40).collect::<Vec<u64>>(), "{key}: events out of order: {seqs:?}");
    }
    let total: usize = by_key.values().map(Vec::len).sum();
    assert_eq!(total, 120, "no duplicates expected when nothing fails");
    let published = metrics.encode();
    assert!(published.contains(&format!(r#"outbox_published_total{{service="outbox-test",topic="{topic}"}} 120"#)), "{published}");
    assert!(published.contains(r#"outbox_pending{service="outbox-test"} 0"#));
    db.drop_db().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_outbox_publishes_in_order_with_trace_context() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchMySql::new().await?;
    migrations::run_mysql(&db.pool, None).await?;
    let topic = stack::unique_name("outbox-mysql");
    ensure_topics(&KAFKA.addr(), &[&topic], 3).await?;

    // Rows written with a known trace context carry it into the Kafka headers.
    let carrier = r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#;
    for seq in 0..25 {
        for key in ["sku-order-1", "sku-order-2"] {
            let mut tx = db.pool.begin().await?;
            enqueue_mysql(&mut tx, &message(&topic, key, seq)).await?;
            sqlx::query("UPDATE outbox SET trace_carrier = ? WHERE id = LAST_INSERT_ID()").bind(carrier).execute(&mut *tx).await?;
            tx.commit().await?;
        }
    }
    let mut tx = db.pool.begin().await?;
    enqueue_mysql(&mut tx, &message(&topic, "ghost", 0)).await?;
    tx.rollback().await?;

    let metrics = Metrics::new("outbox-test");
    let relay = Relay::new(
        OutboxDb::MySql(db.pool.clone()),
        producer(),
        metrics.standard.clone(),
        RelayConfig { batch_size: 10, ..RelayConfig::default() },
    );
    let mut sent = 0;
    while sent < 50 {
        let n = relay.relay_once().await?;
        anyhow::ensure!(n > 0, "relay made no progress at {sent}");
        sent += n;
    }
    assert_eq!(relay.relay_once().await?, 0, "nothing left");

    let (by_key, traceparents) = read_all(&topic, 50).await?;
    for key in ["sku-order-1", "sku-order-2"] {
        assert_eq!(by_key[key], (0..25).collect::<Vec<u64>>(), "{key}");
    }
    assert!(!by_key.contains_key("ghost"));
    assert_eq!(traceparents.len(), 50);
    assert!(
        traceparents.iter().all(|tp| tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")),
        "the stored trace continues in the message: {traceparents:?}"
    );
    db.drop_db().await
}

/// Rows hold logical topics and the relay publishes them under its prefix;
/// a row written when rows held the prefixed name (before the upgrade) reaches
/// the same Kafka topic, in key order with the new rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_prefixes_logical_topics_and_keeps_already_prefixed_rows() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    let prefix = format!("{}.", stack::unique_name("outbox-prefix"));
    let logical = "orders.v1";
    let published = format!("{prefix}{logical}");
    ensure_topics(&KAFKA.addr(), &[&published], 1).await?;

    let mut tx = db.pool.begin().await?;
    enqueue_pg(&mut tx, &message(&published, "order-1", 0)).await?; // an old row
    enqueue_pg(&mut tx, &message(logical, "order-1", 1)).await?;
    tx.commit().await?;

    let metrics = Metrics::new("outbox-test");
    let config = RelayConfig { topic_prefix: prefix.clone(), ..RelayConfig::default() };
    let relay = Relay::new(OutboxDb::Postgres(db.pool.clone()), producer(), metrics.standard.clone(), config);
    assert_eq!(relay.relay_once().await? + relay.relay_once().await?, 2);
    let (by_key, _) = read_all(&published, 2).await?;
    assert_eq!(by_key["order-1"], vec![0, 1], "both rows on {published} (none prefixed twice), in order");
    let counted = metrics.encode();
    assert!(counted.contains(&format!(r#"outbox_published_total{{service="outbox-test",topic="{published}"}} 2"#)), "{counted}");
    db.drop_db().await
}

/// How many messages `topic` holds: the sum of its partitions' high watermarks
/// (no transactions, so offsets are dense). Exact, without waiting for silence.
fn topic_size(topic: &str) -> anyhow::Result<i64> {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut total = 0;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            total += high - low;
        }
    }
    Ok(total)
}

/// The sequence numbers of `seqs` in first-arrival order (a redelivery of an
/// earlier event is allowed by at-least-once; a later event first is not).
fn first_seen(seqs: &[u64]) -> Vec<u64> {
    let mut first: Vec<u64> = Vec::new();
    for s in seqs {
        if !first.contains(s) {
            first.push(*s);
        }
    }
    first
}

/// Inventory runs one relay per replica on MariaDB, and its consumers keep
/// writing outbox rows while the relays claim. Rows of many keys arrive from
/// several writers while four relays run: every row is published exactly once
/// (nothing fails, so no duplicate) and in order per key, and all are marked sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_outbox_is_ordered_per_key_with_several_relays_while_rows_arrive() -> anyhow::Result<()> {
    const KEYS: usize = 16;
    const PER_KEY: usize = 40;
    const WRITERS: usize = 8;
    // The relays' warnings (a failed batch says why) in the test's output.
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    stack::require(KAFKA).await?;
    let db = ScratchMySql::new().await?;
    migrations::run_mysql(&db.pool, None).await?;
    let topic = stack::unique_name("outbox-mysql-relays");
    ensure_topics(&KAFKA.addr(), &[&topic], 3).await?;

    let metrics = Metrics::new("outbox-test");
    let config = RelayConfig { batch_size: 5, idle_poll: Duration::from_millis(5), ..RelayConfig::default() };
    let shutdown = glasshouse_platform::app::Shutdown::new();
    let relays: Vec<_> = (0..4)
        .map(|_| {
            let relay = Relay::new(OutboxDb::MySql(db.pool.clone()), producer(), metrics.standard.clone(), config.clone());
            tokio::spawn(relay.run(shutdown.subscribe()))
        })
        .collect();

    // Each writer owns KEYS / WRITERS keys and writes their events in order,
    // one transaction per event, while the relays claim.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let pool = db.pool.clone();
            let topic = topic.clone();
            tokio::spawn(async move {
                for seq in 0..PER_KEY {
                    for k in (w..KEYS).step_by(WRITERS) {
                        let mut tx = pool.begin().await?;
                        enqueue_mysql(&mut tx, &message(&topic, &format!("key-{k}"), seq)).await?;
                        tx.commit().await?;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }

    let pool = db.pool.clone();
    poll::until("the outbox to drain", Duration::from_secs(60), Duration::from_millis(50), || {
        let pool = pool.clone();
        async move {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&pool).await?;
            Ok((left == 0).then_some(()))
        }
    })
    .await?;
    shutdown.trigger();
    for r in relays {
        tokio::time::timeout(Duration::from_secs(30), r).await???;
    }

    let total = KEYS * PER_KEY;
    let in_topic = topic_size(&topic)?;
    let (by_key, _) = read_all(&topic, usize::try_from(in_topic)?).await?;
    for k in 0..KEYS {
        let key = format!("key-{k}");
        let seqs = &by_key[&key];
        assert_eq!(first_seen(seqs), (0..PER_KEY as u64).collect::<Vec<u64>>(), "{key}: events out of order: {seqs:?}");
    }
    assert_eq!(in_topic, total as i64, "every row published once: nothing failed, so no duplicate: {by_key:?}");
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").fetch_one(&db.pool).await?;
    assert_eq!(sent, total as i64, "every row marked sent");
    let published = metrics.encode();
    assert!(published.contains(&format!(r#"outbox_published_total{{service="outbox-test",topic="{topic}"}} {total}"#)), "{published}");
    db.drop_db().await
}

/// The service stops the relay last, so the events of its last requests are
/// in the table when the signal comes: rows committed before the signal, and
/// one committed at the signal, are all published, in order, by the time
/// `run` returns, although the relay was idle for ten minutes when it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_drains_rows_written_before_and_at_shutdown() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    let topic = stack::unique_name("outbox-drain");
    ensure_topics(&KAFKA.addr(), &[&topic], 3).await?;

    let metrics = Metrics::new("outbox-drain");
    let config = RelayConfig { batch_size: 4, idle_poll: Duration::from_secs(600), ..RelayConfig::default() };
    let shutdown = glasshouse_platform::app::Shutdown::new();
    let relay = Relay::new(OutboxDb::Postgres(db.pool.clone()), producer(), metrics.standard.clone(), config);
    let task = tokio::spawn(relay.run(shutdown.subscribe()));
    // The relay has polled once, found nothing, and now sleeps its idle poll.
    poll::until("the relay's first poll", Duration::from_secs(30), Duration::from_millis(10), || {
        let text = metrics.encode();
        async move { Ok(text.contains(r#"outbox_pending{service="outbox-drain"} 0"#).then_some(())) }
    })
    .await?;

    for seq in 0..10 {
        for key in ["drain-a", "drain-b"] {
            let mut tx = db.pool.begin().await?;
            enqueue_pg(&mut tx, &message(&topic, key, seq)).await?;
            tx.commit().await?;
        }
    }
    let mut tx = db.pool.begin().await?;
    enqueue_pg(&mut tx, &message(&topic, "drain-a", 10)).await?;
    tx.commit().await?;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), task).await???;

    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&db.pool).await?;
    assert_eq!(left, 0, "every row was published and marked sent before run returned");
    let (by_key, _) = read_all(&topic, 21).await?;
    assert_eq!(by_key["drain-a"], (0..11).collect::<Vec<u64>>());
    assert_eq!(by_key["drain-b"], (0..10).collect::<Vec<u64>>());
    assert_eq!(topic_size(&topic)?, 21);
    db.drop_db().await
}

/// With the broker unreachable the drain keeps trying until its deadline,
/// then says so, and the rows stay in the table for the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_drain_stops_at_its_deadline_and_keeps_the_rows() -> anyhow::Result<()> {
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    for seq in 0..3 {
        let mut tx = db.pool.begin().await?;
        enqueue_pg(&mut tx, &message("outbox-nowhere", "k", seq)).await?;
        tx.commit().await?;
    }
    // Nothing listens on port 1: every delivery times out after 300 ms.
    let unreachable: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1").set("message.timeout.ms", "300").create()?;
    let drain_timeout = Duration::from_secs(2);
    let config = RelayConfig { drain_timeout, publish_timeout: Duration::from_millis(300), ..RelayConfig::default() };
    let relay = Relay::new(OutboxDb::Postgres(db.pool.clone()), unreachable, Metrics::new("outbox-nowhere").standard, config);
    let shutdown = glasshouse_platform::app::Shutdown::new();
    shutdown.trigger();
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(30), relay.run(shutdown.subscribe())).await?;
    let took = started.elapsed();

    let e = outcome.expect_err("an incomplete drain is reported");
    assert!(format!("{e:#}").contains("drain"), "{e:#}");
    assert!(took >= drain_timeout, "kept trying until the deadline: {took:?}");
    assert!(took < drain_timeout + Duration::from_secs(5), "stopped soon after it: {took:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&db.pool).await?;
    assert_eq!(left, 3, "nothing unpublished is marked sent");
    db.drop_db().await
}

/// A relay's batch in flight holds its claimed rows and nothing else: the
/// service's own transactions keep inserting outbox rows meanwhile (on
/// MariaDB the claim used to lock the gap where new rows go for the whole
/// Kafka round trip: inserts waited, or deadlocked, with the relay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_relay_batch_in_flight_does_not_block_new_outbox_rows() -> anyhow::Result<()> {
    use sqlx::Connection;
    let db = ScratchMySql::new().await?;
    migrations::run_mysql(&db.pool, None).await?;
    let mut tx = db.pool.begin().await?;
    enqueue_mysql(&mut tx, &message("outbox-slow", "held", 0)).await?;
    tx.commit().await?;
    let held: i64 = sqlx::query_scalar("SELECT id FROM outbox").fetch_one(&db.pool).await?;

    // Nothing listens on port 1: each publish, and so each claim transaction, lasts 3 s.
    let slow: FutureProducer = ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1").set("message.timeout.ms", "3000").create()?;
    let config = RelayConfig { idle_poll: Duration::from_millis(10), drain_timeout: Duration::ZERO, ..RelayConfig::default() };
    let relay = Relay::new(OutboxDb::MySql(db.pool.clone()), slow, Metrics::new("outbox-slow").standard, config);
    let shutdown = glasshouse_platform::app::Shutdown::new();
    let task = tokio::spawn(relay.run(shutdown.subscribe()));
    // Locked by someone else: a SKIP LOCKED read of it finds nothing.
    let in_flight = || {
        let pool = db.pool.clone();
        async move {
            let free: Option<i64> =
                sqlx::query_scalar("SELECT id FROM outbox WHERE id = ? FOR UPDATE SKIP LOCKED").bind(held).fetch_optional(&pool).await?;
            anyhow::Ok(free.is_none())
        }
    };
    poll::until("the relay to claim the row", Duration::from_secs(30), Duration::from_millis(20), || async {
        Ok(in_flight().await?.then_some(()))
    })
    .await?;

    let mut writer = sqlx::MySqlConnection::connect(&db.url).await?;
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1").execute(&mut writer).await?;
    let mut tx = writer.begin().await?;
    enqueue_mysql(&mut tx, &message("outbox-slow", "other", 0)).await?;
    tx.commit().await?;
    assert!(in_flight().await?, "the insert went through while the batch was still in flight");

    shutdown.trigger();
    let drained = tokio::time::timeout(Duration::from_secs(30), task).await??;
    assert!(drained.is_err(), "the broker never answered: the drain reports rows left");
    drop(writer);
    db.drop_db().await
}

/// `relay_paused` (flipped through a real flag file and its watcher): the
/// relay keeps its loop alive and publishes nothing, the rows wait in the
/// outbox; once the flag is off it publishes every one of them, in order per
/// key, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_paused_holds_publishing_and_resume_publishes_everything() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    let topic = stack::unique_name("outbox-paused");
    ensure_topics(&KAFKA.addr(), &[&topic], 3).await?;

    let dir = std::env::temp_dir().join(stack::unique_name("relay-faults"));
    std::fs::create_dir_all(&dir)?;
    let flags = dir.join("faults.json");
    std::fs::write(&flags, r#"{"relay_paused": true}"#)?;
    let metrics = Metrics::new("outbox-test");
    let faults = Faults::new(RELAY_FLAGS);
    let watcher = FaultWatcher::new(Some(flags.clone()), Duration::from_millis(20), faults.clone(), FaultMetrics::register(&metrics));
    assert!(faults.is_on("relay_paused"), "the watcher loads the file when it is made");

    let enqueue = |from: usize, to: usize| {
        let (pool, topic) = (db.pool.clone(), topic.clone());
        async move {
            for seq in from..to {
                for key in ["k-1", "k-2"] {
                    let mut tx = pool.begin().await?;
                    enqueue_pg(&mut tx, &message(&topic, key, seq)).await?;
                    tx.commit().await?;
                }
            }
            anyhow::Ok(())
        }
    };
    enqueue(0, 10).await?;
    let shutdown = glasshouse_platform::app::Shutdown::new();
    let config = RelayConfig { idle_poll: Duration::from_millis(10), faults: Some(faults.clone()), ..RelayConfig::default() };
    let relay = tokio::spawn(
        Relay::new(OutboxDb::Postgres(db.pool.clone()), producer(), metrics.standard.clone(), config).run(shutdown.subscribe()),
    );
    let watching = tokio::spawn(watcher.run(shutdown.subscribe()));
    // Rows keep arriving while it is paused.
    enqueue(10, 20).await?;

    // The loop is alive (it keeps the backlog gauge current) and publishes nothing.
    poll::until("outbox_pending to show all 40 rows waiting", Duration::from_secs(30), Duration::from_millis(20), || {
        let text = metrics.encode();
        async move { Ok(text.contains(r#"outbox_pending{service="outbox-test"} 40"#).then_some(())) }
    })
    .await?;
    assert_eq!(topic_size(&topic)?, 0, "published while paused");
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&db.pool).await?;
    assert_eq!(unsent, 40, "the rows wait in the outbox");
    assert!(metrics.encode().contains(r#"fault_flag_active{flag="relay_paused"} 1"#));

    // Off: everything goes out.
    std::fs::write(&flags, r#"{"relay_paused": false}"#)?;
    let pool = db.pool.clone();
    poll::until("the outbox to drain after the pause", Duration::from_secs(60), Duration::from_millis(50), || {
        let pool = pool.clone();
        async move {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&pool).await?;
            Ok((left == 0).then_some(()))
        }
    })
    .await?;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), relay).await???;
    tokio::time::timeout(Duration::from_secs(5), watching).await???;

    let (by_key, _) = read_all(&topic, 40).await?;
    for key in ["k-1", "k-2"] {
        assert_eq!(by_key[key], (0..20).collect::<Vec<u64>>(), "{key}: in order, each once");
    }
    assert_eq!(topic_size(&topic)?, 40, "each row published once");
    assert!(metrics.encode().contains(r#"fault_flag_active{flag="relay_paused"} 0"#));
    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await
}

/// `kafka_produce_error_rate`: a failed publish takes the relay's real
/// failure path (row unsent, nothing on the topic, retried later), and the
/// rows go out in order once publishes succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_produce_failures_leave_rows_unsent_for_a_retry() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchMySql::new().await?;
    migrations::run_mysql(&db.pool, None).await?;
    let topic = stack::unique_name("outbox-produce-errors");
    ensure_topics(&KAFKA.addr(), &[&topic], 3).await?;
    // Ten keys of three rows: a claim takes one head per key, so every batch
    // meets several failures, and the retries still end in seconds.
    let keys: Vec<String> = (0..10).map(|k| format!("k-{k}")).collect();
    for seq in 0..3 {
        for key in &keys {
            let mut tx = db.pool.begin().await?;
            enqueue_mysql(&mut tx, &message(&topic, key, seq)).await?;
            tx.commit().await?;
        }
    }
    let metrics = Metrics::new("outbox-test");
    let relay = |faults: Option<Faults>| {
        let config = RelayConfig { batch_size: 7, idle_poll: Duration::from_millis(10), faults, ..RelayConfig::default() };
        Relay::new(OutboxDb::MySql(db.pool.clone()), producer(), metrics.standard.clone(), config)
    };

    // Every publish fails: nothing is sent, on the topic or in the table.
    let failing = relay(Some(Faults::fixed(RELAY_FLAGS, r#"{"kafka_produce_error_rate": 1.0}"#).map_err(anyhow::Error::msg)?));
    for _ in 0..3 {
        assert_eq!(failing.relay_once().await?, 0, "a failed publish is never marked sent");
    }
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&db.pool).await?;
    assert_eq!(unsent, 30);
    assert_eq!(topic_size(&topic)?, 0);

    // Half fail: the running relay retries until every row is out, in order per key.
    let shutdown = glasshouse_platform::app::Shutdown::new();
    let half = relay(Some(Faults::fixed(RELAY_FLAGS, r#"{"kafka_produce_error_rate": 0.5}"#).map_err(anyhow::Error::msg)?));
    let running = tokio::spawn(half.run(shutdown.subscribe()));
    let pool = db.pool.clone();
    poll::until("every row out despite the failures", Duration::from_secs(90), Duration::from_millis(50), || {
        let pool = pool.clone();
        async move {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&pool).await?;
            Ok((left == 0).then_some(()))
        }
    })
    .await?;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    let n = topic_size(&topic)? as usize;
    let (by_key, _) = read_all(&topic, n).await?;
    for key in &keys {
        assert_eq!(first_seen(&by_key[key]), (0..3).collect::<Vec<u64>>(), "{key}: in order");
    }
    db.drop_db().await
}
