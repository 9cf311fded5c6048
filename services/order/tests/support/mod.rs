//! `spawn_app()`: the real Order service in-process on port 0, against a
//! fresh PostgreSQL database, the stack's Kafka (topics under a prefix of its
//! own) and a stand-in for Inventory's catalog on loopback.
#![allow(dead_code)]

use std::time::Duration;

use glasshouse_order::inventory::generated::types as catalog;
use glasshouse_order::{Application, Settings};
use glasshouse_platform::app::Shutdown;
use glasshouse_platform::auth::Role;
use glasshouse_platform::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevClaims, SigningKey};
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::ScratchPg;
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Inventory's catalog as Order sees it: `GET /items?skus=A,B` answered from
/// fixed prices as the contract's types (those Order's client is generated
/// with from `services/inventory/openapi.yaml`; unknown SKUs left out), on
/// loopback. `tests/tests/inventory_client.rs` runs the client against the
/// real Inventory; both services together run in `tests/tests/saga.rs`.
pub struct Catalog {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn catalog(prices: &[(&str, i64, &str)]) -> anyhow::Result<Catalog> {
    use poem::web::{Data, Json, Query};
    use poem::{EndpointExt, Route, get, handler};

    #[derive(serde::Deserialize)]
    struct Skus {
        skus: String,
    }

    #[handler]
    fn items(Query(q): Query<Skus>, Data(known): Data<&Vec<catalog::Item>>) -> Json<catalog::ItemPage> {
        let wanted: Vec<&str> = q.skus.split(',').collect();
        let items = known.iter().filter(|i| wanted.contains(&i.sku.as_str())).cloned().collect();
        Json(catalog::ItemPage { items, next_cursor: None })
    }

    let known = prices
        .iter()
        .map(|(sku, amount, currency)| -> anyhow::Result<catalog::Item> {
            // `parse`: the contract may constrain `sku` and `currency` (newtypes then).
            Ok(catalog::Item {
                sku: sku.parse()?,
                name: format!("{sku} item"),
                price: catalog::Price { amount_minor: *amount, currency: currency.parse()? },
                stock: 100,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
    let app = Route::new().at("/items", get(items)).data(known);
    let task = tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok(Catalog { url, task })
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
