//! The settings sections every service has, in one shape: where it listens
//! and how it talks to Kafka. Each service's own `Settings` embeds these next
//! to what is its own (its database, its peers).

use serde::Deserialize;

/// `http:` — where the service listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Longest wait for in-flight requests at shutdown, milliseconds.
    pub drain_ms: u64,
}

impl HttpSettings {
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
    /// Attempts at a transiently failing message before it is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_max_attempts() -> u32 {
    8
}

impl KafkaSettings {
    /// The full name of a contract topic (`glasshouse_contracts::topics::ORDERS`).
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The consumer configuration for `topics` (full names) with these settings.
    pub fn consumer(&self, topics: &[&str]) -> crate::consumer::ConsumerConfig {
        let mut c = crate::consumer::ConsumerConfig::new(&self.brokers, &self.group_id, topics);
        c.max_attempts = self.max_attempts;
        c
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
