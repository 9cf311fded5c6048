//! The shared service lifecycle (`glasshouse_platform::app`) against the real
//! PostgreSQL and Kafka: a background task that dies fails readiness and is
//! restarted; at shutdown the outbox relay stops last, so an event committed
//! by the last consumed message is published before the process ends.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use glasshouse_platform::app::{App, ServiceBuilder};
use glasshouse_platform::auth::Authenticator;
use glasshouse_platform::consumer::ensure_topics;
use glasshouse_platform::migrations;
use glasshouse_platform::outbox::{OutboxDb, OutboxMessage, RelayConfig, enqueue_pg};
use glasshouse_platform::settings::HttpSettings;
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::ScratchPg;
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use poem_openapi::payload::PlainText;
use poem_openapi::{OpenApi, OpenApiService};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use uuid::Uuid;

struct Api;

impl glasshouse_platform::contract::ApiContract for Api {}

#[OpenApi]
impl Api {
    /// A trivial operation, so the service has an API.
    #[oai(path = "/hello", method = "get", operation_id = "hello")]
    async fn hello(&self) -> PlainText<&'static str> {
        PlainText("hello")
    }
}

fn http() -> HttpSettings {
    HttpSettings::for_tests()
}

async fn authenticator() -> anyhow::Result<Authenticator> {
    let key = glasshouse_platform::auth::dev::SigningKey::generate_es256()?;
    Authenticator::from_jwks(&key.jwks(), "test-issuer", "test-audience")
}

async fn build(builder: ServiceBuilder) -> anyhow::Result<App> {
    builder.build(OpenApiService::new(Api, "lifecycle test", "1.0.0"), authenticator().await?)
}

async fn ready_status(port: u16) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health/ready")).await?;
    Ok((r.status().as_u16(), r.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_task_fails_readiness_until_it_is_restarted() -> anyhow::Result<()> {
    let metrics = Metrics::new("lifecycle");
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    // Dies with an error on every run until the test has seen readiness fail
    // (so the task is down nearly all the time then, whatever the jittered
    // restart pause), then once with a panic, then runs until stopped.
    let (seen_tx, seen_rx) = tokio::sync::watch::channel(false);
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let builder = ServiceBuilder::new("lifecycle", &metrics, &http()).task("flaky", move |mut stop| {
        counted.fetch_add(1, Ordering::SeqCst);
        let seen = *seen_rx.borrow();
        let panicked = panicked.clone();
        async move {
            if !seen {
                anyhow::bail!("lost the broker");
            }
            if !panicked.swap(true, Ordering::SeqCst) {
                panic!("bug in the task");
            }
            let _ = stop.wait_for(|s| *s).await;
            Ok(())
        }
    });
    let app = build(builder).await?;
    let (port, shutdown) = (app.port(), app.shutdown_handle());
    let running = tokio::spawn(app.run_until_stopped());

    let failing = poll::until("readiness to name the dead task", Duration::from_secs(20), Duration::from_millis(20), || async move {
        let (status, body) = ready_status(port).await?;
        Ok((status == 503).then_some(body))
    })
    .await?;
    assert_eq!(failing["checks"]["tasks"]["status"], "failing", "{failing}");
    assert!(failing["checks"]["tasks"]["error"].as_str().unwrap_or_default().contains("flaky is down: lost the broker"), "{failing}");
    seen_tx.send_replace(true);

    // Restart pauses double (jittered) per death: allow for a few.
    poll::until("readiness to recover after the restarts", Duration::from_secs(90), Duration::from_millis(50), || {
        let runs = runs.clone();
        async move {
            let (status, _) = ready_status(port).await?;
            Ok((status == 200 && runs.load(Ordering::SeqCst) >= 3).then_some(()))
        }
    })
    .await?;
    let exposition = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await?.text().await?;
    let restarts: f64 = exposition
        .lines()
        .find_map(|l| l.strip_prefix("service_task_restarts_total{task=\"flaky\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(restarts >= 2.0, "at least the error and the panic are counted: {exposition}");
    assert!(exposition.contains("service_task_up{task=\"flaky\"} 1"), "{exposition}");

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(20), running).await???;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_stops_last_and_publishes_what_the_last_message_committed() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    let topic = stack::unique_name("lifecycle");
    ensure_topics(&KAFKA.addr(), &[&topic], 1).await?;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).set("enable.idempotence", "true").create()?;

    // Stands for a consumer that, told to stop, finishes the message in hand:
    // its transaction commits an event into the outbox after the signal.
    let metrics = Metrics::new("lifecycle");
    let (pool, event_id, key) = (db.pool.clone(), Uuid::new_v4(), Uuid::new_v4().to_string());
    let (t, k) = (topic.clone(), key.clone());
    let builder = ServiceBuilder::new("lifecycle", &metrics, &http())
        .task("last-message", move |mut stop| {
            let (pool, topic, key) = (pool.clone(), t.clone(), k.clone());
            async move {
                let _ = stop.wait_for(|s| *s).await;
                // Slower than the relay's idle poll: a relay stopped together
                // with this task would be gone before the row exists.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut tx = pool.begin().await?;
                let msg = OutboxMessage { event_id, topic, key, event_type: "test.last".into(), payload: "{}".into() };
                enqueue_pg(&mut tx, &msg).await?;
                tx.commit().await?;
                Ok(())
            }
        })
        .relay(OutboxDb::Postgres(db.pool.clone()), producer, RelayConfig::default());
    let app = build(builder).await?;
    let shutdown = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());
    // Let the relay start polling, then stop the service.
    poll::until("the service to serve", Duration::from_secs(10), Duration::from_millis(20), || async {
        Ok(metrics.encode().contains("service_task_up{task=\"outbox-relay\"} 1").then_some(()))
    })
    .await?;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await???;

    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&db.pool).await?;
    assert_eq!(unsent, 0, "the event committed during shutdown was published before the service stopped");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", KAFKA.addr())
        .set("group.id", stack::unique_name("lifecycle-reader"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
    assert_eq!(msg.key(), Some(key.as_bytes()));
    db.drop_db().await
}
