//! `spawn_app()`: the real Order service in-process on port 0, against a
//! fresh PostgreSQL database, the stack's Kafka (topics under a prefix of its
//! own) and a catalog service on loopback.
#![allow(dead_code)]

use std::time::Duration;

use glasshouse_order::{Application, Settings};
use glasshouse_platform::app::Shutdown;
use glasshouse_platform::auth::Role;
use glasshouse_platform::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevClaims, SigningKey};
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::{ScratchMySql, ScratchPg};
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The real Inventory service, in-process, as Order's catalog: its own
/// scratch MariaDB database, items put through its admin API. It listens on a
/// topic prefix of its own, so it never reacts to the events an Order test
/// produces by hand; the saga with both services is in `tests/tests/saga.rs`.
pub struct Catalog {
    pub url: String,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    db: Option<ScratchMySql>,
    _dir: tempdir::Dir,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(db) = self.db.take() {
            // The scratch database goes too; dropping needs async, so on a thread of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    let _ = rt.block_on(db.drop_db());
                }
            })
            .join();
        }
    }
}

pub async fn catalog(prices: &[(&str, i64, &str)]) -> anyhow::Result<Catalog> {
    stack::require(KAFKA).await?;
    let db = ScratchMySql::new().await?;
    let key = SigningKey::generate_es256()?;
    let dir = std::env::temp_dir().join(stack::unique_name("catalog"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("jwks.json"), serde_json::to_string(&key.jwks())?)?;
    let settings: glasshouse_inventory::Settings = serde_json::from_value(serde_json::json!({
        "http": { "host": "127.0.0.1", "port": 0, "drain_ms": 1000, "cursor_key": "test-cursor-key" },
        "database": { "url": db.url, "max_connections": 5 },
        "kafka": { "brokers": KAFKA.addr(), "group_id": stack::unique_name("catalog"), "partitions": 1,
                   "topic_prefix": format!("{}.", stack::unique_name("catalog")) },
        "auth": { "issuer": DEV_ISSUER, "audience": DEV_AUDIENCE, "jwks": { "file": dir.join("jwks.json") } },
    }))?;
    let app = glasshouse_inventory::Application::build(settings, Metrics::new("inventory")).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.run_until_stopped());
    let admin = key.mint(&DevClaims::new("catalog-admin", vec![Role::Admin], Duration::from_secs(600)))?;
    let http = reqwest::Client::new();
    for (sku, amount, currency) in prices {
        let resp = http
            .put(format!("{url}/items/{sku}"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "name": format!("{sku} item"), "price": { "amount_minor": amount, "currency": currency }, "stock": 100 }))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "put {sku} into the catalog: {}", resp.text().await?);
    }
    Ok(Catalog { url, shutdown, task: Some(task), db: Some(db), _dir: tempdir::Dir(dir) })
}

/// A running Order service.
pub struct TestApp {
    pub base: String,
    pub db: ScratchPg,
    pub key: SigningKey,
    pub prefix: String,
    pub metrics: Metrics,
    pub shutdown: Shutdown,
    pub running: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    _jwks_dir: tempdir::Dir,
}

/// A scratch directory (removed on drop) for the JWKS file.
pub mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub async fn spawn_app(inventory_url: &str) -> anyhow::Result<TestApp> {
    spawn_app_with(inventory_url, |_| {}).await
}

pub async fn spawn_app_with(inventory_url: &str, tweak: impl FnOnce(&mut Settings)) -> anyhow::Result<TestApp> {
    stack::require(KAFKA).await?;
    let db = ScratchPg::new().await?;
    let key = SigningKey::generate_es256()?;
    let dir = std::env::temp_dir().join(stack::unique_name("order-jwks"));
    std::fs::create_dir_all(&dir)?;
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, serde_json::to_string(&key.jwks())?)?;
    let prefix = format!("{}.", stack::unique_name("t"));
    let mut settings: Settings = serde_json::from_value(serde_json::json!({
        "http": { "host": "127.0.0.1", "port": 0, "drain_ms": 5000, "cursor_key": "test-cursor-key" },
        "database": { "url": db.url, "max_connections": 10 },
        "kafka": { "brokers": KAFKA.addr(), "group_id": stack::unique_name("order"), "partitions": 2, "topic_prefix": prefix },
        "inventory": { "base_url": inventory_url, "timeout_ms": 500, "max_attempts": 2, "retry_base_ms": 10,
                       "breaker": { "failure_threshold": 3, "open_seconds": 30, "half_open_trials": 1 } },
        "auth": { "issuer": DEV_ISSUER, "audience": DEV_AUDIENCE, "jwks": { "file": jwks } },
    }))?;
    tweak(&mut settings);
    let metrics = Metrics::new("order");
    let app = Application::build(settings, metrics.clone()).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());
    Ok(TestApp { base, db, key, prefix, metrics, shutdown, running, http: reqwest::Client::new(), _jwks_dir: tempdir::Dir(dir) })
}

impl TestApp {
    pub fn token(&self, customer: &str, roles: Vec<Role>) -> String {
        self.key.mint(&DevClaims::new(customer, roles, Duration::from_secs(600))).expect("mint")
    }

    pub fn customer(&self, customer: &str) -> String {
        self.token(customer, vec![Role::Customer])
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `POST /orders` with a token, key and lines `[(sku, qty)]`.
    pub async fn place(&self, token: &str, key: &str, lines: &[(&str, i64)]) -> anyhow::Result<reqwest::Response> {
        let body =
            serde_json::json!({ "lines": lines.iter().map(|(s, q)| serde_json::json!({ "sku": s, "quantity": q })).collect::<Vec<_>>() });
        Ok(self.http.post(format!("{}/orders", self.base)).bearer_auth(token).header("Idempotency-Key", key).json(&body).send().await?)
    }

    pub async fn get_order(&self, token: &str, id: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self.http.get(format!("{}/orders/{id}", self.base)).bearer_auth(token).send().await?)
    }

    /// Polls until the order has `status`.
    pub async fn wait_status(&self, token: &str, id: &str, status: &str) -> anyhow::Result<serde_json::Value> {
        poll::until(&format!("order {id} to be {status}"), Duration::from_secs(30), Duration::from_millis(100), || async {
            let o: serde_json::Value = self.get_order(token, id).await?.json().await?;
            Ok((o["status"] == status).then_some(o))
        })
        .await
    }

    /// Rows in `orders`.
    pub async fn order_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&self.db.pool).await?)
    }

    pub async fn outbox_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&self.db.pool).await?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.running).await???;
        self.db.drop_db().await
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create().expect("producer")
}

pub async fn produce(topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
    producer()
        .send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce to {topic}: {e}"))?;
    Ok(())
}

/// Reads `n` messages of `topic` from the start: `(key, payload as JSON)`.
pub async fn read(topic: &str, n: usize) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", KAFKA.addr())
        .set("group.id", stack::unique_name("reader"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .map_err(|_| anyhow::anyhow!("only {} of {n} messages on {topic}", out.len()))??;
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let v = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(serde_json::Value::Null);
        out.push((key, v));
    }
    Ok(out)
}
