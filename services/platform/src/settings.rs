//! The settings sections every service has, in one shape: where it listens,
//! how it talks to Kafka, where its fault flags are ([`FaultSettings`], defined
//! next to the flags in [`crate::faults`]). Each service's own `Settings` embeds these next
//! to what is its own (its database, its peers).

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

pub use crate::faults::FaultSettings;

/// `http:` — where the service listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Longest wait for in-flight requests at shutdown, milliseconds.
    pub drain_ms: u64,
    /// Largest request body accepted, bytes; a larger one is refused with 413
    /// before it is read (`crate::edge::BodyLimit`). Default 65536.
    #[serde(default = "HttpSettings::default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// HMAC-SHA256 key that signs the list endpoints' `next_cursor`
    /// (`crate::cursor`), so a cursor the API did not give out is a 422, never
    /// a query. A secret: never logged. Every replica of a service needs the same.
    pub cursor_key: SecretString,
}

impl HttpSettings {
    /// Default of `max_body_bytes`: 64 KiB, far above the largest valid
    /// request (an order of 50 lines is under 4 KiB).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 65_536;

    fn default_max_body_bytes() -> usize {
        Self::DEFAULT_MAX_BODY_BYTES
    }

    /// Settings for tests: loopback, a free port, a short drain, the default
    /// body limit and a fixed cursor key.
    pub fn for_tests() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            drain_ms: 2_000,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            cursor_key: SecretString::from("test-cursor-key"),
        }
    }

    pub fn drain(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.drain_ms)
    }

    /// Binds the listener (before anything else starts, so a taken port fails fast).
    pub fn bind(&self) -> anyhow::Result<std::net::TcpListener> {
        std::net::TcpListener::bind((self.host.as_str(), self.port)).map_err(|e| anyhow::anyhow!("bind {}:{}: {e}", self.host, self.port))
    }
}

/// `kafka:` — brokers, consumer group, topic naming.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// Partitions of the topics the service creates if they are missing.
    pub partitions: i32,
    /// Prepended to every topic name (`orders.v1` -> `<prefix>orders.v1`), so
    /// parallel tests or several stacks can share one broker. Empty in production.
    #[serde(default)]
    pub topic_prefix: String,
    /// First backoff after a transient consumer failure, milliseconds; doubles
    /// per attempt up to `retry_cap_ms` (full jitter). Default 50.
    #[serde(default = "KafkaSettings::default_retry_base_ms")]
    pub retry_base_ms: NonZeroU64,
    /// Longest backoff between two attempts at one message, milliseconds.
    /// Default 30000. A transiently failing message is retried for as long as
    /// it takes, never dead-lettered (`glasshouse_platform::consumer`).
    #[serde(default = "KafkaSettings::default_retry_cap_ms")]
    pub retry_cap_ms: NonZeroU64,
    /// `retention.ms` given to the `<topic>.dlq` topics this service creates,
    /// in days. Default 14. Existing topics keep theirs.
    #[serde(default = "KafkaSettings::default_dlq_retention_days")]
    pub dlq_retention_days: NonZeroU32,
}

impl KafkaSettings {
    /// Default of `retry_base_ms`.
    pub const DEFAULT_RETRY_BASE_MS: NonZeroU64 = NonZeroU64::new(50).unwrap();
    /// Default of `retry_cap_ms`.
    pub const DEFAULT_RETRY_CAP_MS: NonZeroU64 = NonZeroU64::new(30_000).unwrap();
    /// Default of `dlq_retention_days`.
    pub const DEFAULT_DLQ_RETENTION_DAYS: NonZeroU32 = NonZeroU32::new(14).unwrap();

    fn default_retry_base_ms() -> NonZeroU64 {
        Self::DEFAULT_RETRY_BASE_MS
    }

    fn default_retry_cap_ms() -> NonZeroU64 {
        Self::DEFAULT_RETRY_CAP_MS
    }

    fn default_dlq_retention_days() -> NonZeroU32 {
        Self::DEFAULT_DLQ_RETENTION_DAYS
    }

    /// The Kafka name of a contract topic (`glasshouse_contracts::topics::ORDERS`).
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The consumer configuration for `topics` (logical names, e.g.
    /// `glasshouse_contracts::topics::ORDERS`) with these settings: the loop
    /// subscribes under `topic_prefix` and hands handlers the logical name.
    pub fn consumer(&self, topics: &[&str]) -> crate::consumer::ConsumerConfig {
        let mut c = crate::consumer::ConsumerConfig::new(&self.brokers, &self.group_id, topics);
        c.topic_prefix = self.topic_prefix.clone();
        c.retry_base = Duration::from_millis(self.retry_base_ms.get());
        c.retry_cap = Duration::from_millis(self.retry_cap_ms.get());
        c
    }

    /// Creates `topics` (logical names) under `topic_prefix`, and their
    /// dead-letter topics, if missing; the latter with `dlq_retention_days`.
    pub async fn ensure_topics(&self, topics: &[&str]) -> anyhow::Result<()> {
        let retention = Duration::from_secs(u64::from(self.dlq_retention_days.get()) * 24 * 3600);
        let full: Vec<String> = topics.iter().map(|t| self.topic(t)).collect();
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        crate::consumer::ensure_topics_with(&self.brokers, &full, self.partitions, retention).await
    }

    /// The outbox relay's configuration: defaults, publishing under `topic_prefix`.
    pub fn relay(&self) -> crate::outbox::RelayConfig {
        crate::outbox::RelayConfig { topic_prefix: self.topic_prefix.clone(), ..Default::default() }
    }

    /// The producer every service's outbox relay uses: idempotent, acks from
    /// all replicas, a short linger to batch.
    pub fn producer(&self) -> anyhow::Result<rdkafka::producer::FutureProducer> {
        Ok(rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "10000")
            .create()?)
    }
}
