//! Test support: a scratch MariaDB database, a unique Kafka topic prefix and
//! consumer group, dev JWT keys in a temp dir, and the real service started
//! in-process on port 0 (once, or several replicas sharing one environment),
//! or as its real binary in a working directory of the test's choosing.
#![allow(dead_code)] // each test file uses a different part of it

use std::path::PathBuf;
use std::time::Duration;

use glasshouse_contracts::{CustomerId, Event, EventType, Money, NonEmpty, OrderCreated, OrderId, OrderLine, Quantity, Sku};
use glasshouse_inventory::settings::{DatabaseSettings, FaultSettings, HttpSettings, KafkaSettings, StockSettings};
use glasshouse_inventory::{Application, Settings};
use glasshouse_platform::app::Shutdown;
use glasshouse_platform::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevClaims, SigningKey};
use glasshouse_platform::auth::{AuthSettings, JwksSource, Role};
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::ScratchMySql;
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::MySqlPool;

/// Everything the replicas of one test share.
pub struct Env {
    pub db: ScratchMySql,
    /// The service's own pool settings on the scratch database.
    pub database: DatabaseSettings,
    pub prefix: String,
    pub group: String,
    pub partitions: i32,
    pub key: SigningKey,
    /// Holds `jwks.json` and the fault flag file.
    pub dir: PathBuf,
    pub faults_file: PathBuf,
}

impl Env {
    pub async fn new(partitions: i32) -> anyhow::Result<Self> {
        stack::require(KAFKA).await?;
        let db = ScratchMySql::new().await?;
        let dir = std::env::temp_dir().join(stack::unique_name("inventory-test"));
        std::fs::create_dir_all(&dir)?;
        let key = SigningKey::generate_es256()?;
        std::fs::write(dir.join("jwks.json"), serde_json::to_vec(&key.jwks())?)?;
        let database = DatabaseSettings { url: db.url.clone().into(), max_connections: 10, lock_wait_timeout_seconds: 5 };
        Ok(Self {
            db,
            database,
            prefix: format!("{}.", stack::unique_name("inv")),
            group: stack::unique_name("inventory"),
            partitions,
            key,
            faults_file: dir.join("faults.json"),
            dir,
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            http: HttpSettings::for_tests(),
            database: self.database.clone(),
            kafka: KafkaSettings {
                brokers: KAFKA.addr(),
                group_id: self.group.clone(),
                partitions: self.partitions,
                topic_prefix: self.prefix.clone(),
                retry_base_ms: KafkaSettings::DEFAULT_RETRY_BASE_MS,
                retry_cap_ms: KafkaSettings::DEFAULT_RETRY_CAP_MS,
                dlq_retention_days: KafkaSettings::DEFAULT_DLQ_RETENTION_DAYS,
            },
            auth: AuthSettings {
                issuer: DEV_ISSUER.into(),
                audience: DEV_AUDIENCE.into(),
                jwks: JwksSource::File(self.dir.join("jwks.json")),
                leeway_seconds: 30,
                jwks_refresh_seconds: 300,
                jwks_min_refetch_seconds: 10,
            },
            stock: StockSettings { low_threshold: 5, low_refresh_seconds: 1 },
            faults: FaultSettings { file: Some(self.faults_file.clone()), poll_ms: 50 },
            telemetry: Default::default(),
        }
    }

    /// Starts one replica.
    pub async fn start(&self) -> anyhow::Result<Running> {
        let metrics = Metrics::new("inventory");
        let app = Application::build(self.settings(), metrics.clone()).await?;
        let port = app.port();
        let shutdown = app.shutdown_handle();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(Running { base: format!("http://127.0.0.1:{port}"), shutdown, metrics, task })
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.db.pool
    }

    pub fn orders_topic(&self) -> String {
        format!("{}{}", self.prefix, glasshouse_contracts::topics::ORDERS)
    }

    pub fn inventory_topic(&self) -> String {
        format!("{}{}", self.prefix, glasshouse_contracts::topics::INVENTORY)
    }

    pub fn token(&self, roles: Vec<Role>) -> String {
        self.key.mint(&DevClaims::new("c-test", roles, Duration::from_secs(600))).expect("mint a dev token")
    }

    pub fn admin(&self) -> String {
        self.token(vec![Role::Admin])
    }

    pub fn customer(&self) -> String {
        self.token(vec![Role::Customer])
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.db.drop_db().await
    }
}

/// One running replica.
pub struct Running {
    pub base: String,
    pub shutdown: Shutdown,
    pub metrics: Metrics,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task).await???;
        Ok(())
    }

    /// The value of one sample line of this replica's `/metrics`, by its exact
    /// name and labels (e.g. `inventory_reservations_total{outcome="reserved"}`).
    pub fn sample(&self, series: &str) -> Option<f64> {
        sample(&self.metrics.encode(), series)
    }
}

/// The value of `series` in an OpenMetrics text, if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.split_whitespace().next()?.parse().ok())
    })
}

/// One environment with one replica: the usual test.
pub struct TestApp {
    pub env: Env,
    pub app: Running,
    pub http: reqwest::Client,
}

pub async fn spawn_app() -> anyhow::Result<TestApp> {
    let env = Env::new(2).await?;
    let app = env.start().await?;
    Ok(TestApp { env, app, http: reqwest::Client::new() })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base)
    }

    /// `PUT /items/{sku}` as admin; panics on anything but 200/201.
    pub async fn put_item(&self, sku: &str, stock: i64) -> anyhow::Result<()> {
        put_item(&self.http, &self.app.base, &self.env.admin(), sku, stock).await
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.app.stop().await?;
        self.env.drop().await
    }
}

pub async fn put_item(http: &reqwest::Client, base: &str, token: &str, sku: &str, stock: i64) -> anyhow::Result<()> {
    let body =
        serde_json::json!({ "name": format!("Test item {sku}"), "price": { "amount_minor": 1250, "currency": "EUR" }, "stock": stock });
    let resp = http.put(format!("{base}/items/{sku}")).bearer_auth(token).json(&body).send().await?;
    anyhow::ensure!(resp.status().is_success(), "PUT /items/{sku}: {} {}", resp.status(), resp.text().await?);
    Ok(())
}

/// An `order.created` for a fresh order id with `(sku, quantity)` lines, as
/// Order's outbox would publish it.
pub fn order_created(lines: &[(&str, u32)]) -> Event {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|(s, q)| OrderLine {
            sku: Sku::parse(s).expect("a valid SKU"),
            quantity: Quantity::new(*q).expect("a valid quantity"),
            unit_price: Money::parse(100, "EUR").expect("a valid price"),
        })
        .collect();
    let payload = OrderCreated::new(CustomerId::parse("c-test").expect("a valid customer"), NonEmpty::new(lines).expect("lines"))
        .expect("a valid order");
    Event::new(OrderId::new(), payload)
}

/// Fails unless every item's stock is what the stock ledger says (the
/// invariant `glasshouse-audit` checks; see `store::ledger_mismatches`).
pub async fn assert_books_balance(pool: &MySqlPool) -> anyhow::Result<()> {
    let off = glasshouse_inventory::store::ledger_mismatches(pool).await?;
    anyhow::ensure!(off.is_empty(), "stock differs from the ledger: {off:?}");
    Ok(())
}

/// Stock of `sku` straight from the database.
pub async fn stock(pool: &MySqlPool, sku: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT stock FROM items WHERE sku = ?").bind(sku).fetch_one(pool).await?)
}

/// Writes the fault flag file whole (temp file + rename), so the watcher never
/// reads half of it.
pub fn write_faults(path: &std::path::Path, json: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn producer() -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).set("enable.idempotence", "true").create()?)
}

/// Produces `event` to `topic` with key = order id, as Order's relay does.
pub async fn send(producer: &FutureProducer, topic: &str, event: &Event) -> anyhow::Result<()> {
    send_bytes(producer, topic, &event.key(), &event.to_vec()?).await
}

pub async fn send_bytes(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
    producer
        .send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce to {topic}: {e}"))?;
    Ok(())
}

/// Reads a topic from the beginning with its own consumer group.
pub struct TopicReader {
    consumer: StreamConsumer,
    pub events: Vec<Event>,
}

impl TopicReader {
    pub fn new(topic: &str) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", KAFKA.addr())
            .set("group.id", stack::unique_name("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[topic])?;
        Ok(Self { consumer, events: Vec::new() })
    }

    /// Reads until `done(all events so far)` holds, or fails after `timeout`
    /// saying what it had.
    pub async fn until(&mut self, what: &str, timeout: Duration, done: impl Fn(&[Event]) -> bool) -> anyhow::Result<&[Event]> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.events) {
            let msg = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(m) => m?,
                Err(_) => anyhow::bail!(
                    "timed out after {timeout:?} waiting for {what}; got {} events: {:?}",
                    self.events.len(),
                    summary(&self.events)
                ),
            };
            let event = Event::from_slice(msg.payload().unwrap_or_default())?;
            anyhow::ensure!(msg.key() == Some(event.key().as_bytes()), "message key is not the order id");
            self.events.push(event);
        }
        Ok(&self.events)
    }

    /// The events about `order`.
    pub fn of(&self, order: OrderId) -> Vec<&Event> {
        self.events.iter().filter(|e| e.order_id() == order).collect()
    }
}

pub fn summary(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| format!("{} {}", e.event_type().as_str(), e.order_id())).collect()
}

pub fn count(events: &[Event], ty: EventType) -> usize {
    events.iter().filter(|e| e.event_type() == ty).count()
}

/// Rows in the outbox for the logical `topic`: every event this service ever emitted there, sent or not.
pub async fn outbox_rows(pool: &MySqlPool, topic: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE topic = ?").bind(topic).fetch_one(pool).await?)
}

/// Waits until consumer group `group` is `Stable` with `members` members.
pub async fn group_stable(group: &str, members: usize) -> anyhow::Result<()> {
    let admin: rdkafka::consumer::BaseConsumer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let admin = std::sync::Arc::new(admin);
    let group = group.to_owned();
    poll::until(
        &format!("consumer group {group} stable with {members} members"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let (admin, group) = (admin.clone(), group.clone());
            async move {
                // GroupList is not Send: look at it on the blocking thread.
                let stable = tokio::task::spawn_blocking(move || {
                    admin
                        .fetch_group_list(Some(&group), Duration::from_secs(5))
                        .map(|list| list.groups().first().is_some_and(|g| g.state() == "Stable" && g.members().len() == members))
                })
                .await??;
                Ok(stable.then_some(()))
            }
        },
    )
    .await
}

/// Polls until `probe` holds (deadline 60 s).
pub async fn eventually<F, Fut>(what: &str, probe: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    poll::until(what, Duration::from_secs(60), Duration::from_millis(50), || {
        let f = probe();
        async move { Ok(f.await?.then_some(())) }
    })
    .await
}

/// The real `glasshouse-inventory` binary, killed on drop. Its output goes to
/// `log`.
pub struct Process {
    pub child: std::process::Child,
    pub base: String,
    pub log: PathBuf,
}

impl Process {
    /// Starts the binary in working directory `cwd` with the environment's
    /// database, topics, consumer group and keys, plus `vars` (nothing else
    /// of the test's own `APP_*` or `GLASSHOUSE_HOME` is passed on).
    pub fn spawn(env: &Env, cwd: &std::path::Path, vars: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = glasshouse_tests::services::free_port();
        let log = env.dir.join(format!("inventory-{port}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_glasshouse-inventory"));
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("APP_") || k == "GLASSHOUSE_HOME") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(cwd)
            .env("APP_HTTP__PORT", port.to_string())
            .env("APP_DATABASE__URL", &env.db.url)
            .env("APP_KAFKA__BROKERS", KAFKA.addr())
            .env("APP_KAFKA__TOPIC_PREFIX", &env.prefix)
            .env("APP_KAFKA__GROUP_ID", &env.group)
            .env("APP_KAFKA__PARTITIONS", env.partitions.to_string())
            .env("APP_AUTH__JWKS__FILE", env.dir.join("jwks.json"))
            .env("APP_FAULTS__POLL_MS", "50")
            .env("APP_TELEMETRY__TRACES__ENABLED", "false")
            .env("APP_TELEMETRY__LOGS__LOKI__ENABLED", "false")
            .env("APP_TELEMETRY__LOGS__ELASTICSEARCH__ENABLED", "false")
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        Ok(Self { child: cmd.spawn()?, base: format!("http://127.0.0.1:{port}"), log })
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/health/ready` answers 200; fails early, with the output,
    /// if the process exits.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let url = format!("{}/health/ready", self.base);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("glasshouse-inventory exited ({status}) before it was ready:\n{}", self.output());
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "glasshouse-inventory not ready in 90 s:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the process to exit by itself (deadline 60 s).
    pub async fn exit(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "glasshouse-inventory still running after 60 s:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
