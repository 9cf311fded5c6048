//! The Order service's typed settings (`config/base.yaml`, then
//! `<APP_ENVIRONMENT>.yaml`, then `APP_<SECTION>__<KEY>` variables).

use glasshouse_platform::auth::AuthSettings;
use glasshouse_platform::http_client::ClientSettings;
use glasshouse_telemetry::TelemetryConfig;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    /// Inventory's HTTP API, for SKU existence and prices.
    pub inventory: ClientSettings,
    pub auth: AuthSettings,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub drain_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Holds the password: never logged.
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// Partitions of the topics this service creates if they are missing.
    pub partitions: i32,
    /// Prepended to every topic name (`orders.v1` -> `<prefix>orders.v1`), so
    /// parallel tests or several stacks can share one broker. Empty in production.
    #[serde(default)]
    pub topic_prefix: String,
}

impl KafkaSettings {
    /// The full name of a contract topic.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }
}
