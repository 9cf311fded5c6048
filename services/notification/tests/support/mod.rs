//! `spawn_app()`: the real Notification service in-process on port 0, against
//! the stack's FerretDB and Kafka, with everything unique to the test (a
//! database, a topic prefix, a consumer group, signing keys), so tests run in
//! parallel without seeing each other.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;
use std::time::Duration;

use glasshouse_contracts::Event;
use glasshouse_notification::settings::{DatabaseSettings, FaultSettings, HttpSettings, KafkaSettings};
use glasshouse_notification::store::Store;
use glasshouse_notification::{Application, SERVICE, Settings};
use glasshouse_platform::app::Shutdown;
use glasshouse_platform::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevClaims, SigningKey};
use glasshouse_platform::auth::{AuthSettings, JwksSource, Role};
use glasshouse_telemetry::Metrics;
use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, FERRETDB, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub http: reqwest::Client,
    /// Signs the tokens the service accepts (its JWKS file holds the public half).
    pub key: SigningKey,
    /// `<prefix>orders.v1`, where the test produces events.
    pub orders_topic: String,
    pub store: Store,
    pub metrics: Metrics,
    producer: FutureProducer,
    /// The service's fault flag file (absent: every flag off); see [`TestApp::set_faults`].
    pub faults_file: PathBuf,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    scratch: PathBuf,
}

/// Settings pointing at the local stack, unique names everywhere, port 0.
pub fn test_settings(jwks: PathBuf, faults_file: PathBuf) -> Settings {
    Settings {
        http: HttpSettings::for_tests(),
        database: DatabaseSettings {
            url: format!("mongodb://{}/", FERRETDB.addr()).into(),
            name: stack::unique_name("notif"),
            server_selection_timeout_ms: 5_000,
        },
        kafka: KafkaSettings {
            brokers: KAFKA.addr(),
            group_id: stack::unique_name("notification"),
            // One partition: the tests rely on "the marker event is processed
            // after the ones produced before it", whatever their keys.
            partitions: 1,
            topic_prefix: format!("{}.", stack::unique_name("t")),
            retry_base_ms: KafkaSettings::DEFAULT_RETRY_BASE_MS,
            retry_cap_ms: KafkaSettings::DEFAULT_RETRY_CAP_MS,
            dlq_retention_days: KafkaSettings::DEFAULT_DLQ_RETENTION_DAYS,
        },
        auth: AuthSettings {
            issuer: DEV_ISSUER.into(),
            audience: DEV_AUDIENCE.into(),
            jwks: JwksSource::File(jwks),
            leeway_seconds: 30,
            jwks_refresh_seconds: 300,
            jwks_min_refetch_seconds: 10,
        },
        faults: FaultSettings { file: Some(faults_file), poll_ms: 50 },
        telemetry: Default::default(),
    }
}

pub async fn spawn_app() -> anyhow::Result<TestApp> {
    stack::require(FERRETDB).await?;
    stack::require(KAFKA).await?;
    let key = SigningKey::generate_es256()?;
    let scratch = std::env::temp_dir().join(stack::unique_name("notification-test"));
    std::fs::create_dir_all(&scratch)?;
    let jwks = scratch.join("jwks.json");
    std::fs::write(&jwks, serde_json::to_vec(&key.jwks())?)?;

    let faults_file = scratch.join("faults.json");
    let settings = test_settings(jwks, faults_file.clone());
    let orders_topic = settings.kafka.topic(glasshouse_contracts::topics::ORDERS);
    let metrics = Metrics::new(SERVICE);
    let app = Application::build(settings, metrics.clone()).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.run_until_stopped());
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).set("message.timeout.ms", "10000").create()?;
    Ok(TestApp {
        base,
        http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?,
        key,
        orders_topic,
        store,
        metrics,
        producer,
        faults_file,
        shutdown,
        task,
        scratch,
    })
}

impl TestApp {
    /// A token for `sub` with `roles`, valid for ten minutes.
    pub fn token(&self, sub: &str, roles: Vec<Role>) -> String {
        self.key.mint(&DevClaims::new(sub, roles, Duration::from_secs(600))).expect("minting a dev token cannot fail with a generated key")
    }

    /// `GET <path_and_query>`, with a bearer token when given.
    pub async fn get(&self, path_and_query: &str, token: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.get(format!("{}{path_and_query}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Ok(req.send().await?)
    }

    /// `GET` answering 200; the JSON body.
    pub async fn get_ok(&self, path_and_query: &str, token: &str) -> anyhow::Result<serde_json::Value> {
        let resp = self.get(path_and_query, Some(token)).await?;
        let status = resp.status();
        let body = resp.text().await?;
        anyhow::ensure!(status == 200, "GET {path_and_query}: {status} {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// Produces `event` to the orders topic as Order's relay would (key = order id).
    pub async fn produce(&self, event: &Event) -> anyhow::Result<()> {
        self.produce_raw(&event.key(), &event.to_vec()?).await
    }

    pub async fn produce_raw(&self, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.producer
            .send(FutureRecord::to(&self.orders_topic).key(key).payload(payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce to {}: {e}", self.orders_topic))?;
        Ok(())
    }

    /// Waits until `GET path_and_query` (as `token`) lists at least `n` items; returns the page.
    pub async fn wait_for_items(&self, path_and_query: &str, token: &str, n: usize) -> anyhow::Result<serde_json::Value> {
        poll::until(&format!("{n} notifications at {path_and_query}"), Duration::from_secs(60), Duration::from_millis(100), || async {
            let page = self.get_ok(path_and_query, token).await?;
            let len = page["items"].as_array().map_or(0, Vec::len);
            Ok((len >= n).then_some(page))
        })
        .await
    }

    /// Replaces the fault flag file whole (temp file + rename), so the
    /// watcher never reads half of it.
    pub fn set_faults(&self, json: &str) -> anyhow::Result<()> {
        let tmp = self.faults_file.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.faults_file)?;
        Ok(())
    }

    /// The `/metrics` exposition.
    pub async fn scrape(&self) -> anyhow::Result<String> {
        Ok(self.get("/metrics", None).await?.text().await?)
    }

    /// Stops the service (graceful), drops the database and the key files.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        let stopped = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        self.store.database().drop().await?;
        let _ = std::fs::remove_dir_all(&self.scratch);
        stopped??
    }
}

/// Asserts `resp` is a problem+json answer with `status` and type slug `slug`; returns the body.
pub async fn assert_problem(resp: reqwest::Response, status: u16, slug: &str) -> anyhow::Result<serde_json::Value> {
    let got = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: serde_json::Value = resp.json().await?;
    anyhow::ensure!(got == status, "status {got}, expected {status}: {body}");
    anyhow::ensure!(content_type.starts_with("application/problem+json"), "content-type {content_type:?}: {body}");
    anyhow::ensure!(body["type"] == format!("https://glasshouse.dev/problems/{slug}"), "type {}, expected {slug}: {body}", body["type"]);
    anyhow::ensure!(body["status"] == status, "{body}");
    Ok(body)
}
