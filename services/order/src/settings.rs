//! The Order service's typed settings (`config/base.yaml`, then
//! `<APP_ENVIRONMENT>.yaml`, then `APP_<SECTION>__<KEY>` variables).

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use glasshouse_platform::auth::AuthSettings;
use glasshouse_platform::http_client::ClientSettings;
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
    /// Inventory's HTTP API, for SKU existence and prices.
    pub inventory: ClientSettings,
    pub auth: AuthSettings,
    /// The saga deadline (`crate::timeout`).
    #[serde(default)]
    pub saga: SagaSettings,
    /// Demo and chaos fault flags: the outbox relay's (`relay_paused`,
    /// `kafka_produce_error_rate`; see `glasshouse_platform::faults`).
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
}

/// `saga:` — how long an order may wait for Inventory's verdict.
///
/// Zero is refused for every value (a zero deadline would reject every order
/// at once, a zero interval would spin, a zero batch would never sweep).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SagaSettings {
    /// A `PENDING` order older than this (by the database clock) is rejected
    /// with reason `timeout` and compensated, seconds. Keep it well above the
    /// saga's normal completion time (the completion SLO's threshold is 30 s):
    /// a verdict that arrives after it is ignored.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: NonZeroU64,
    /// Pause between sweeps when the last one found less than a full batch,
    /// milliseconds. An order is resolved at most this long after its deadline.
    #[serde(default = "default_sweep_interval_ms")]
    pub sweep_interval_ms: NonZeroU64,
    /// Orders claimed (and resolved in one transaction) per sweep.
    #[serde(default = "default_batch_size")]
    pub batch_size: NonZeroU32,
}

fn default_timeout_seconds() -> NonZeroU64 {
    NonZeroU64::new(120).unwrap_or(NonZeroU64::MIN)
}

fn default_sweep_interval_ms() -> NonZeroU64 {
    NonZeroU64::new(5_000).unwrap_or(NonZeroU64::MIN)
}

fn default_batch_size() -> NonZeroU32 {
    NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN)
}

impl Default for SagaSettings {
    fn default() -> Self {
        Self {
            timeout_seconds: default_timeout_seconds(),
            sweep_interval_ms: default_sweep_interval_ms(),
            batch_size: default_batch_size(),
        }
    }
}

impl SagaSettings {
    /// The deadline as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.get())
    }

    /// The pause between sweeps.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms.get())
    }
}

#[cfg(test)]
mod tests {
    use glasshouse_platform::config::SettingsLoader;

    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

    fn load(vars: &[(&str, &str)]) -> Result<Settings, glasshouse_platform::config::ConfigError> {
        SettingsLoader::with_vars(DIR, vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).load()
    }

    #[test]
    fn the_committed_config_has_the_saga_deadline() {
        let s = load(&[]).unwrap();
        assert_eq!(s.saga.timeout(), Duration::from_secs(120));
        assert_eq!((s.saga.sweep_interval(), s.saga.batch_size.get()), (Duration::from_secs(5), 100));
        assert_eq!(s.faults.file.as_deref(), Some(std::path::Path::new("etc/order/faults.json")), "relative to GLASSHOUSE_HOME");
    }

    #[test]
    fn the_deadline_is_overridable_and_zero_is_refused_by_name() {
        let s = load(&[("APP_SAGA__TIMEOUT_SECONDS", "30"), ("APP_SAGA__SWEEP_INTERVAL_MS", "250")]).unwrap();
        assert_eq!((s.saga.timeout(), s.saga.sweep_interval()), (Duration::from_secs(30), Duration::from_millis(250)));
        let err = load(&[("APP_SAGA__TIMEOUT_SECONDS", "0")]).unwrap_err().to_string();
        assert!(err.contains("timeout_seconds") && err.contains("nonzero"), "{err}");
        assert!(load(&[("APP_SAGA__TIMEOUT_SECONDS", "soon")]).is_err());
        assert!(load(&[("APP_SAGA__TIMEOUT", "30")]).is_err(), "an unknown key must not be ignored");
    }

    #[test]
    fn a_config_without_a_saga_section_gets_the_defaults() {
        let s: SagaSettings = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(s.timeout(), Duration::from_secs(120));
    }
}
