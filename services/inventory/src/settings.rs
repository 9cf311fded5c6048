//! The Inventory service's typed settings (`config/base.yaml`, then
//! `<APP_ENVIRONMENT>.yaml`, then `APP_<SECTION>__<KEY>` variables).

use glasshouse_platform::auth::AuthSettings;
pub use glasshouse_platform::settings::{FaultSettings, HttpSettings, KafkaSettings};
use glasshouse_telemetry::TelemetryConfig;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub auth: AuthSettings,
    /// The `inventory_stock_low_items` gauge.
    #[serde(default)]
    pub stock: StockSettings,
    /// Demo and chaos fault flags (see the crate README and
    /// `glasshouse_platform::faults`).
    #[serde(default)]
    pub faults: FaultSettings,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Holds the password: never logged.
    pub url: SecretString,
    pub max_connections: u32,
    /// `innodb_lock_wait_timeout` of this service's sessions, seconds. A
    /// reservation waits at most this long for a row lock before its
    /// transaction fails with error 1205, which the consumer retries; the
    /// server default (50 s) would stall a partition far longer than a retry.
    #[serde(default = "default_lock_wait")]
    pub lock_wait_timeout_seconds: u32,
}

fn default_lock_wait() -> u32 {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockSettings {
    /// An item with `stock <= low_threshold` counts in `inventory_stock_low_items`.
    #[serde(default = "default_low_threshold")]
    pub low_threshold: u32,
    /// The gauge is recomputed this often even when nothing here changed stock
    /// (another replica may have), seconds.
    #[serde(default = "default_low_refresh")]
    pub low_refresh_seconds: u64,
}

fn default_low_threshold() -> u32 {
    5
}
fn default_low_refresh() -> u64 {
    15
}

impl Default for StockSettings {
    fn default() -> Self {
        Self { low_threshold: default_low_threshold(), low_refresh_seconds: default_low_refresh() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glasshouse_platform::config::SettingsLoader;
    use secrecy::ExposeSecret;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

    #[test]
    fn the_committed_config_has_the_fixed_points() {
        let s: Settings = SettingsLoader::with_vars(DIR, []).load().unwrap();
        assert_eq!(s.http.port, 8082);
        assert_eq!(s.database.url.expose_secret(), "mysql://glasshouse:glasshouse@127.0.0.1:3306/inventory");
        assert_eq!((s.kafka.group_id.as_str(), s.kafka.topic_prefix.as_str()), ("inventory", ""));
        assert_eq!(s.kafka.topic(glasshouse_contracts::topics::ORDERS), "orders.v1");
        assert_eq!((s.stock.low_threshold, s.database.lock_wait_timeout_seconds), (5, 5));
        assert_eq!((s.kafka.retry_base_ms.get(), s.kafka.retry_cap_ms.get(), s.kafka.dlq_retention_days.get()), (50, 30_000, 14));
        assert_eq!(s.faults.file.as_deref(), Some(std::path::Path::new("etc/inventory/faults.json")), "relative to GLASSHOUSE_HOME");
    }

    #[test]
    fn environment_variables_override_and_typos_are_refused() {
        let vars = [("APP_KAFKA__TOPIC_PREFIX", "t1."), ("APP_FAULTS__POLL_MS", "250"), ("APP_HTTP__PORT", "0")];
        let s: Settings = SettingsLoader::with_vars(DIR, vars.map(|(k, v)| (k.to_owned(), v.to_owned()))).load().unwrap();
        assert_eq!((s.kafka.topic("inventory.v1"), s.faults.poll_ms, s.http.port), ("t1.inventory.v1".to_owned(), 250, 0));
        let typo = SettingsLoader::with_vars(DIR, [("APP_STOCK__LOW_TRESHOLD".to_owned(), "3".to_owned())]).load::<Settings>();
        assert!(typo.is_err(), "an unknown key must not be ignored");
    }
}
