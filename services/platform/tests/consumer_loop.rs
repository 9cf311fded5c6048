//! The consumer loop against real Kafka and PostgreSQL: effects once per
//! event despite redelivery, transient failures retried, poison messages
//! dead-lettered with the error attached, and the offset moving on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use glasshouse_platform::app::Shutdown;
use glasshouse_platform::consumer::{
    ConsumerConfig, ConsumerLoop, HandleError, Handled, InboundMessage, MessageHandler, dlq_topic, ensure_topics, mark_processed_pg,
};
use glasshouse_platform::migrations;
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::ScratchPg;
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
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
