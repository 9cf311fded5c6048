//! The consumer loop against real Kafka and PostgreSQL: effects once per
//! event despite redelivery, transient failures retried for as long as they
//! last (never dead-lettered) while the consumer stays in its group, poison
//! messages dead-lettered with the error attached, the offset moving on only
//! past finished messages, a prompt shutdown in the middle of a retry, a
//! revoked partition's message given up uncommitted, and dead-letter topics
//! created with their own retention.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glasshouse_platform::app::Shutdown;
use glasshouse_platform::consumer::{
    ConsumerConfig, ConsumerLoop, HandleError, Handled, InboundMessage, MessageHandler, dlq_topic, ensure_topics, mark_processed_pg,
};
use glasshouse_platform::migrations;
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::ScratchPg;
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use uuid::Uuid;

/// Applies `{"event_id": .., "amount": n}` to a ledger, deduplicated by event id.
/// `{"poison": true}` is malformed for it; the first `flaky` attempts fail transiently.
struct Ledger {
    pool: sqlx::PgPool,
    flaky: AtomicU32,
}

#[async_trait::async_trait]
impl MessageHandler for Ledger {
    async fn handle(&self, msg: &InboundMessage) -> Result<Handled, HandleError> {
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).map_err(|e| HandleError::Permanent(e.into()))?;
        let (Some(id), Some(amount)) = (v["event_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()), v["amount"].as_i64()) else {
            return Err(HandleError::Permanent(anyhow::anyhow!("not a ledger event: {v}")));
        };
        if self.flaky.load(Ordering::SeqCst) > 0 {
            self.flaky.fetch_sub(1, Ordering::SeqCst);
            return Err(HandleError::Transient(anyhow::anyhow!("simulated lock timeout")));
        }
        let mut tx = self.pool.begin().await.map_err(HandleError::from_sqlx)?;
        if !mark_processed_pg(&mut tx, "ledger", id).await.map_err(HandleError::from_sqlx)? {
            return Ok(Handled::Duplicate);
        }
        sqlx::query("UPDATE balance SET total = total + $1").bind(amount).execute(&mut *tx).await.map_err(HandleError::from_sqlx)?;
        tx.commit().await.map_err(HandleError::from_sqlx)?;
        Ok(Handled::Processed)
    }
}

async fn send(producer: &FutureProducer, topic: &str, payload: &str) -> anyhow::Result<()> {
    producer
        .send(FutureRecord::to(topic).key("k").payload(payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_once_retries_transients_and_dead_letters_poison() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    sqlx::query("CREATE TABLE balance (total BIGINT NOT NULL)").execute(&db.pool).await?;
    sqlx::query("INSERT INTO balance VALUES (0)").execute(&db.pool).await?;
    let topic = stack::unique_name("consumer");
    ensure_topics(&KAFKA.addr(), &[&topic], 1).await?;

    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let e1 = Uuid::new_v4();
    let e2 = Uuid::new_v4();
    // e1 delivered twice (a redelivery), poison in between, then e2.
    send(&producer, &topic, &serde_json::json!({ "event_id": e1, "amount": 10 }).to_string()).await?;
    send(&producer, &topic, &serde_json::json!({ "event_id": e1, "amount": 10 }).to_string()).await?;
    send(&producer, &topic, r#"{"poison": true}"#).await?;
    send(&producer, &topic, &serde_json::json!({ "event_id": e2, "amount": 5 }).to_string()).await?;

    let metrics = Metrics::new("consumer-test");
    let mut config = ConsumerConfig::new(&KAFKA.addr(), &stack::unique_name("ledger"), &[&topic]);
    config.retry_base = Duration::from_millis(5);
    let handler = Arc::new(Ledger { pool: db.pool.clone(), flaky: AtomicU32::new(2) });
    let consumer = ConsumerLoop::new(config, handler.clone(), metrics.standard.clone())?;
    let shutdown = Shutdown::new();
    let running = tokio::spawn(consumer.run(shutdown.subscribe()));

    let pool = db.pool.clone();
    let total = poll::until("both events applied", Duration::from_secs(60), Duration::from_millis(100), || {
        let pool = pool.clone();
        async move {
            let total: i64 = sqlx::query_scalar("SELECT total FROM balance").fetch_one(&pool).await?;
            Ok((total >= 15).then_some(total))
        }
    })
    .await?;
    assert_eq!(total, 15, "e1 once (despite two deliveries) + e2");
    assert_eq!(handler.flaky.load(Ordering::SeqCst), 0, "the transient failures were retried");
    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events").fetch_one(&db.pool).await?;
    assert_eq!(processed, 2);

    // The poison message is on the dead-letter topic, untouched, with the error.
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", KAFKA.addr())
        .set("group.id", stack::unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    dlq.subscribe(&[&dlq_topic(&topic)])?;
    let dead = tokio::time::timeout(Duration::from_secs(30), dlq.recv()).await??;
    assert_eq!(dead.payload(), Some(&br#"{"poison": true}"#[..]));
    let header = |k: &str| {
        dead.headers().and_then(|h| h.iter().find(|h| h.key == k).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned()))
    };
    assert!(header("dlq.error").is_some_and(|e| e.contains("not a ledger event")), "{:?}", header("dlq.error"));
    assert_eq!(header("dlq.topic").as_deref(), Some(topic.as_str()));
    assert_eq!(header("dlq.partition").as_deref(), Some("0"));
    assert_eq!(header("dlq.offset").as_deref(), Some("2"));

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    let text = metrics.encode();
    for needle in [
        format!(r#"messaging_dead_letter_total{{service="consumer-test",topic="{topic}"}} 1"#),
        format!(r#"messaging_consume_duration_seconds_count{{service="consumer-test",topic="{topic}",outcome="duplicate"}} 1"#),
        format!(r#"messaging_consume_duration_seconds_count{{service="consumer-test",topic="{topic}",outcome="success"}} 2"#),
        format!(r#"messaging_consume_duration_seconds_count{{service="consumer-test",topic="{topic}",outcome="retry"}} 2"#),
    ] {
        assert!(text.contains(&needle), "missing {needle} in\n{text}");
    }
    db.drop_db().await
}

/// Applies `{"event_id": ..}` events in a table (`applied`, in arrival order),
/// deduplicated by event id. An event listed in `stubborn` fails transiently
/// until it has failed that many times AND `for_at_least` has passed since its
/// first attempt, or until `released`. Counts every call per event.
struct Stubborn {
    pool: sqlx::PgPool,
    stubborn: HashMap<Uuid, u32>,
    for_at_least: Duration,
    released: AtomicBool,
    calls: Mutex<HashMap<Uuid, (u32, Instant)>>,
}

impl Stubborn {
    fn calls(&self, id: Uuid) -> u32 {
        self.calls.lock().unwrap().get(&id).map_or(0, |(n, _)| *n)
    }
}

#[async_trait::async_trait]
impl MessageHandler for Stubborn {
    async fn handle(&self, msg: &InboundMessage) -> Result<Handled, HandleError> {
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).map_err(|e| HandleError::Permanent(e.into()))?;
        let id =
            v["event_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| HandleError::Permanent(anyhow::anyhow!("{v}")))?;
        let (n, first) = {
            let mut calls = self.calls.lock().unwrap();
            let entry = calls.entry(id).or_insert((0, Instant::now()));
            entry.0 += 1;
            *entry
        };
        if let Some(failures) = self.stubborn.get(&id)
            && (n <= *failures || first.elapsed() < self.for_at_least)
            && !self.released.load(Ordering::SeqCst)
        {
            return Err(HandleError::Transient(anyhow::anyhow!("simulated outage, call {n}")));
        }
        let mut tx = self.pool.begin().await.map_err(HandleError::from_sqlx)?;
        if !mark_processed_pg(&mut tx, "stubborn", id).await.map_err(HandleError::from_sqlx)? {
            return Ok(Handled::Duplicate);
        }
        sqlx::query("INSERT INTO applied (event_id) VALUES ($1)").bind(id).execute(&mut *tx).await.map_err(HandleError::from_sqlx)?;
        tx.commit().await.map_err(HandleError::from_sqlx)?;
        Ok(Handled::Processed)
    }
}

async fn applied(pool: &sqlx::PgPool) -> anyhow::Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar("SELECT event_id FROM applied ORDER BY seq").fetch_all(pool).await?)
}

/// The offset `group` committed on partition 0 of `topic` (-1: none).
async fn committed(group: &str, topic: &str) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).set("group.id", group).create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = tokio::task::spawn_blocking(move || c.committed_offsets(tpl, Duration::from_secs(5))).await??;
    Ok(match got.elements().first().map(|e| e.offset()) {
        Some(Offset::Offset(n)) => n,
        _ => -1,
    })
}

/// Messages ever written to partition 0 of `topic` (its high watermark).
async fn written(topic: &str) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let topic = topic.to_owned();
    Ok(tokio::task::spawn_blocking(move || c.fetch_watermarks(&topic, 0, Duration::from_secs(5))).await??.1)
}

/// `(state, members)` of consumer group `group` as the coordinator sees it.
async fn group_state(group: &str) -> anyhow::Result<(String, usize)> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || {
        let list = c.fetch_group_list(Some(&group), Duration::from_secs(5))?;
        let g = list.groups().first().ok_or_else(|| anyhow::anyhow!("group {group} unknown"))?;
        Ok((g.state().to_owned(), g.members().len()))
    })
    .await?
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.split_whitespace().next()?.parse().ok()))
}

/// A message failing transiently for longer than any attempt budget (40+
/// attempts over 12 s) is retried until it succeeds: processed once, never
/// dead-lettered, its offset committed after the success, and the messages
/// behind it on its partition handled after it, in order. Meanwhile the
/// consumer keeps polling: with `max.poll.interval.ms` at 10 s it would be
/// evicted from its group if it slept through the retries, but the group stays
/// stable with its one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_until_it_succeeds_never_dead_lettered() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    sqlx::query("CREATE TABLE applied (seq BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL)").execute(&db.pool).await?;
    let topic = stack::unique_name("stubborn");
    ensure_topics(&KAFKA.addr(), &[&topic], 1).await?;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b, c] {
        send(&producer, &topic, &serde_json::json!({ "event_id": id }).to_string()).await?;
    }

    let metrics = Metrics::new("consumer-test");
    let group = stack::unique_name("stubborn");
    let mut config = ConsumerConfig::new(&KAFKA.addr(), &group, &[&topic]);
    config.retry_base = Duration::from_millis(5);
    config.retry_cap = Duration::from_millis(300);
    config.max_poll_interval = Duration::from_secs(10);
    let outage = Duration::from_secs(12);
    let handler = Arc::new(Stubborn {
        pool: db.pool.clone(),
        stubborn: HashMap::from([(a, 40)]),
        for_at_least: outage,
        released: AtomicBool::new(false),
        calls: Mutex::default(),
    });
    let consumer = ConsumerLoop::new(config, handler.clone(), metrics.standard.clone())?;
    let shutdown = Shutdown::new();
    let running = tokio::spawn(consumer.run(shutdown.subscribe()));

    // Deep into the outage (past max.poll.interval.ms): still retrying a,
    // nothing behind it handled, the consumer still the group's one member.
    let retry_gauge = format!(r#"messaging_consumer_retry_seconds{{service="consumer-test",topic="{topic}"}}"#);
    poll::until("a retried for 10.5 s", Duration::from_secs(60), Duration::from_millis(100), || {
        let text = metrics.encode();
        let gauge = retry_gauge.clone();
        async move { Ok((sample(&text, &gauge).unwrap_or(0.0) >= 10.5).then_some(())) }
    })
    .await?;
    assert!(applied(&db.pool).await?.is_empty(), "nothing is applied while a is retried");
    assert_eq!(handler.calls(b), 0, "b waits behind a on its partition");
    assert_eq!(group_state(&group).await?, ("Stable".to_owned(), 1), "the retrying consumer stays in its group");
    assert_eq!(committed(&group, &topic).await?, -1, "no offset moves while a is retried");

    let pool = db.pool.clone();
    let order = poll::until("a, b and c applied", Duration::from_secs(60), Duration::from_millis(100), || {
        let pool = pool.clone();
        async move {
            let got = applied(&pool).await?;
            Ok((got.len() >= 3).then_some(got))
        }
    })
    .await?;
    assert_eq!(order, vec![a, b, c], "each once, in partition order");
    assert!(handler.calls(a) > 40, "a was attempted {} times", handler.calls(a));
    poll::until("offset 3 committed", Duration::from_secs(30), Duration::from_millis(100), || {
        let (group, topic) = (group.clone(), topic.clone());
        async move { Ok((committed(&group, &topic).await? == 3).then_some(())) }
    })
    .await?;
    assert_eq!(written(&dlq_topic(&topic)).await?, 0, "nothing was dead-lettered");

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    let text = metrics.encode();
    assert_eq!(sample(&text, &retry_gauge), Some(0.0), "the retry gauge is back to 0");
    assert_eq!(
        sample(&text, &format!(r#"messaging_consume_duration_seconds_count{{service="consumer-test",topic="{topic}",outcome="success"}}"#)),
        Some(3.0)
    );
    assert!(!text.contains("messaging_dead_letter_total{"), "no dead letter counted:\n{text}");
    db.drop_db().await
}

/// Shutdown in the middle of a retry returns at once, without committing the
/// message: the group's next consumer gets it again and handles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_retry_returns_promptly_and_commits_nothing() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    sqlx::query("CREATE TABLE applied (seq BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL)").execute(&db.pool).await?;
    let topic = stack::unique_name("stopping");
    ensure_topics(&KAFKA.addr(), &[&topic], 1).await?;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let (done, stuck) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [done, stuck] {
        send(&producer, &topic, &serde_json::json!({ "event_id": id }).to_string()).await?;
    }

    let group = stack::unique_name("stopping");
    let metrics = Metrics::new("consumer-test");
    // Long backoffs: without a prompt shutdown the loop would sit in one.
    let mut config = ConsumerConfig::new(&KAFKA.addr(), &group, &[&topic]);
    config.retry_base = Duration::from_secs(20);
    config.retry_cap = Duration::from_secs(30);
    let forever = Arc::new(Stubborn {
        pool: db.pool.clone(),
        stubborn: HashMap::from([(stuck, u32::MAX)]),
        for_at_least: Duration::MAX,
        released: AtomicBool::new(false),
        calls: Mutex::default(),
    });
    let shutdown = Shutdown::new();
    let running = tokio::spawn(ConsumerLoop::new(config.clone(), forever.clone(), metrics.standard.clone())?.run(shutdown.subscribe()));
    let f = forever.clone();
    poll::until("the stuck message retried", Duration::from_secs(60), Duration::from_millis(50), || {
        let f = f.clone();
        async move { Ok((f.calls(stuck) >= 1).then_some(())) }
    })
    .await?;
    let stopping = Instant::now();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    assert!(stopping.elapsed() < Duration::from_secs(3), "shutdown took {:?}", stopping.elapsed());
    assert_eq!(applied(&db.pool).await?, vec![done]);
    assert_eq!(committed(&group, &topic).await?, 1, "committed past the finished message only");

    // The next consumer of the group gets the stuck message again.
    let healthy = Arc::new(Stubborn {
        pool: db.pool.clone(),
        stubborn: HashMap::new(),
        for_at_least: Duration::ZERO,
        released: AtomicBool::new(false),
        calls: Mutex::default(),
    });
    let shutdown = Shutdown::new();
    let running = tokio::spawn(ConsumerLoop::new(config, healthy.clone(), metrics.standard.clone())?.run(shutdown.subscribe()));
    let pool = db.pool.clone();
    let got = poll::until("the stuck message redelivered and applied", Duration::from_secs(60), Duration::from_millis(100), || {
        let pool = pool.clone();
        async move {
            let got = applied(&pool).await?;
            Ok((got.len() >= 2).then_some(got))
        }
    })
    .await?;
    assert_eq!(got, vec![done, stuck]);
    assert_eq!(healthy.calls(done), 0, "the finished message is not redelivered");
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    assert_eq!(written(&dlq_topic(&topic)).await?, 0, "nothing was dead-lettered");
    db.drop_db().await
}

/// A rebalance that takes away the partition of the message being retried:
/// the retrying consumer gives the message up uncommitted (its retry gauge
/// restarts or drops to 0 instead of growing on), the partition's owner after
/// the rebalance retries it, and once the outage ends it is applied once,
/// followed by the next message, with nothing dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_partition_gives_up_the_message_in_hand_uncommitted() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    sqlx::query("CREATE TABLE applied (seq BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL)").execute(&db.pool).await?;
    let topic = stack::unique_name("revoked");
    ensure_topics(&KAFKA.addr(), &[&topic], 1).await?;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b] {
        send(&producer, &topic, &serde_json::json!({ "event_id": id }).to_string()).await?;
    }

    let group = stack::unique_name("revoked");
    let mut config = ConsumerConfig::new(&KAFKA.addr(), &group, &[&topic]);
    config.retry_base = Duration::from_millis(5);
    config.retry_cap = Duration::from_millis(200);
    // One handler for both consumers: a fails until released, whoever has it.
    let handler = Arc::new(Stubborn {
        pool: db.pool.clone(),
        stubborn: HashMap::from([(a, u32::MAX)]),
        for_at_least: Duration::MAX,
        released: AtomicBool::new(false),
        calls: Mutex::default(),
    });
    let gauge = |m: &Metrics, service: &str| {
        sample(&m.encode(), &format!(r#"messaging_consumer_retry_seconds{{service="{service}",topic="{topic}"}}"#)).unwrap_or(0.0)
    };
    let (metrics_1, metrics_2) = (Metrics::new("consumer-1"), Metrics::new("consumer-2"));
    let shutdown = Shutdown::new();
    let first = tokio::spawn(ConsumerLoop::new(config.clone(), handler.clone(), metrics_1.standard.clone())?.run(shutdown.subscribe()));
    poll::until("consumer 1 retrying a for 6 s", Duration::from_secs(60), Duration::from_millis(50), || {
        let retrying = gauge(&metrics_1, "consumer-1");
        async move { Ok((retrying >= 6.0).then_some(())) }
    })
    .await?;

    // A second member joins: the group rebalances and revokes consumer 1's partition.
    let before = gauge(&metrics_1, "consumer-1");
    let second = tokio::spawn(ConsumerLoop::new(config, handler.clone(), metrics_2.standard.clone())?.run(shutdown.subscribe()));
    poll::until("consumer 1 giving a up at the rebalance", Duration::from_secs(60), Duration::from_millis(20), || {
        let now = gauge(&metrics_1, "consumer-1");
        async move { Ok((now < before).then_some(())) }
    })
    .await?;
    poll::until("the partition's new owner alone retrying a", Duration::from_secs(60), Duration::from_millis(50), || {
        let owners = [gauge(&metrics_1, "consumer-1"), gauge(&metrics_2, "consumer-2")].iter().filter(|g| **g > 0.0).count();
        let group = group.clone();
        async move { Ok((owners == 1 && group_state(&group).await? == ("Stable".to_owned(), 2)).then_some(())) }
    })
    .await?;
    assert!(applied(&db.pool).await?.is_empty());
    assert_eq!(committed(&group, &topic).await?, -1, "a was given up, not committed");

    handler.released.store(true, Ordering::SeqCst);
    let pool = db.pool.clone();
    let got = poll::until("a and b applied", Duration::from_secs(60), Duration::from_millis(100), || {
        let pool = pool.clone();
        async move {
            let got = applied(&pool).await?;
            Ok((got.len() >= 2).then_some(got))
        }
    })
    .await?;
    assert_eq!(got, vec![a, b], "each once, in partition order");
    assert_eq!(handler.calls(b), 1, "b handled by the owner only");
    poll::until("offset 2 committed", Duration::from_secs(30), Duration::from_millis(100), || {
        let (group, topic) = (group.clone(), topic.clone());
        async move { Ok((committed(&group, &topic).await? == 2).then_some(())) }
    })
    .await?;
    shutdown.trigger();
    for running in [first, second] {
        tokio::time::timeout(Duration::from_secs(30), running).await???;
    }
    assert_eq!(written(&dlq_topic(&topic)).await?, 0, "nothing was dead-lettered");
    db.drop_db().await
}

/// `retention.ms` of a topic, as the broker reports it.
async fn retention_ms(topic: &str) -> anyhow::Result<Option<String>> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let described = admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()).await?;
    let resource = described.into_iter().next().ok_or_else(|| anyhow::anyhow!("no description of {topic}"))??;
    Ok(resource.get("retention.ms").and_then(|e| e.value.clone()))
}

/// Dead-letter topics are created with an explicit retention: 14 days unless
/// configured otherwise. The source topics keep the broker's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_topics_are_created_with_their_own_retention() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let default = stack::unique_name("retention");
    ensure_topics(&KAFKA.addr(), &[&default], 1).await?;
    assert_eq!(retention_ms(&dlq_topic(&default)).await?.as_deref(), Some("1209600000"), "14 days");
    let configured = stack::unique_name("retention");
    glasshouse_platform::consumer::ensure_topics_with(&KAFKA.addr(), &[&configured], 1, Duration::from_secs(3 * 24 * 3600)).await?;
    assert_eq!(retention_ms(&dlq_topic(&configured)).await?.as_deref(), Some("259200000"), "3 days");
    assert_ne!(retention_ms(&configured).await?.as_deref(), Some("259200000"), "only the dead-letter topic");
    Ok(())
}
