//! The Order service's typed settings (`config/base.yaml`, then
//! `<APP_ENVIRONMENT>.yaml`, then `APP_<SECTION>__<KEY>` variables).

use glasshouse_platform::auth::AuthSettings;
use glasshouse_platform::http_client::ClientSettings;
pub use glasshouse_platform::settings::{HttpSettings, KafkaSettings};
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
pub struct DatabaseSettings {
    /// Holds the password: never logged.
    pub url: SecretString,
    pub max_connections: u32,
}
