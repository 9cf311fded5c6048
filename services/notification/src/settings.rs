//! The Notification service's typed settings (`config/base.yaml`, then
//! `<APP_ENVIRONMENT>.yaml`, then `APP_<SECTION>__<KEY>` variables).

use std::time::Duration;

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
    /// Demo and chaos fault flags (`consumer_error_rate`; see
    /// `crate::events::FLAGS` and `glasshouse_platform::faults`).
    #[serde(default)]
    pub faults: FaultSettings,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// MongoDB connection string; may hold credentials, so never logged.
    pub url: SecretString,
    /// Database holding the `notifications` collection. Tests use a unique
    /// name each, so they never see each other's documents.
    pub name: String,
    /// How long an operation waits for a usable server before failing
    /// (transient for the consumer, 500 for the API, not-ready for health).
    /// The driver's default of 30 s would stall a partition for that long
    /// per attempt; a few seconds keeps retries and readiness responsive.
    #[serde(default = "default_server_selection_timeout_ms")]
    pub server_selection_timeout_ms: u64,
}

fn default_server_selection_timeout_ms() -> u64 {
    5_000
}

impl DatabaseSettings {
    pub fn server_selection_timeout(&self) -> Duration {
        Duration::from_millis(self.server_selection_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use glasshouse_platform::config::SettingsLoader;

    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

    #[test]
    fn the_committed_config_reads_its_fault_flags_under_the_stack_home() {
        let s: Settings = SettingsLoader::with_vars(DIR, []).load().unwrap();
        assert_eq!(s.faults.file.as_deref(), Some(std::path::Path::new("etc/notification/faults.json")), "relative to GLASSHOUSE_HOME");
        assert_eq!(s.faults.poll_ms, 1000);
        let typo = SettingsLoader::with_vars(DIR, [("APP_FAULTS__POLL".to_owned(), "5".to_owned())]).load::<Settings>();
        assert!(typo.is_err(), "an unknown key must not be ignored");
    }
}
