//! What a service tells the telemetry crate: which exporters, where, how much.
//!
//! Services embed [`TelemetryConfig`] in their own typed settings (so the
//! usual `APP_TELEMETRY__...` environment overrides apply); every field has a
//! default that works against the local stack.

use std::time::Duration;

use serde::Deserialize;

/// Everything [`crate::init`] needs besides the service name.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `deployment.environment` resource attribute and `environment` log label.
    pub environment: String,
    /// `service.version`; defaults to the crate version of the caller if it sets it.
    pub service_version: String,
    pub traces: TracesConfig,
    pub logs: LogsConfig,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            environment: "local".into(),
            service_version: env!("CARGO_PKG_VERSION").into(),
            traces: TracesConfig::default(),
            logs: LogsConfig::default(),
        }
    }
}

/// OTLP trace export.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    pub enabled: bool,
    pub protocol: OtlpProtocol,
    /// gRPC: `http://host:4317`; HTTP: `http://host:4318` (`/v1/traces` is appended).
    pub endpoint: String,
    /// Probability of sampling a trace that has no sampled parent (0.0..=1.0);
    /// a parent's decision is always followed.
    pub sample_ratio: f64,
    /// Longest time one export may take before it counts as failed.
    #[serde(with = "millis")]
    pub export_timeout: Duration,
    /// Key the services share to mark the trace context they send each other
    /// (`crate::propagation::trust`): only a request whose `traceparent` is
    /// signed with it continues the caller's trace; any other starts a new
    /// trace linked to the caller's. Unset: no caller is trusted. A secret.
    pub trust_key: Option<secrecy::SecretString>,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            protocol: OtlpProtocol::Grpc,
            endpoint: "http://127.0.0.1:4317".into(),
            sample_ratio: 1.0,
            export_timeout: Duration::from_secs(5),
            trust_key: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

/// Log sinks. Stdout is always on; the shippers are each switchable.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// `tracing_subscriber::EnvFilter` directive, e.g. `info,sqlx=warn`.
    pub filter: String,
    /// `json` (one JSON object per line) or `pretty` (for a human at a terminal).
    pub stdout_format: StdoutFormat,
    pub loki: LokiConfig,
    pub elasticsearch: ElasticsearchConfig,
    /// Log records held for the shippers before new ones are dropped (and counted).
    pub buffer: usize,
    /// Records sent per request, at most.
    pub batch_size: usize,
    /// How long a record may wait for a batch to fill.
    #[serde(with = "millis")]
    pub flush_interval: Duration,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            stdout_format: StdoutFormat::Json,
            loki: LokiConfig::default(),
            elasticsearch: ElasticsearchConfig::default(),
            buffer: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdoutFormat {
    Json,
    Pretty,
}

/// Loki push API (`POST {url}/loki/api/v1/push`, JSON body).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LokiConfig {
    pub enabled: bool,
    /// Base URL; for VictoriaLogs `http://127.0.0.1:9428/insert`.
    pub url: String,
}

impl Default for LokiConfig {
    fn default() -> Self {
        Self { enabled: true, url: "http://127.0.0.1:9428/insert".into() }
    }
}

/// Elasticsearch / OpenSearch bulk API with ECS field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    pub enabled: bool,
    pub url: String,
    /// Index name prefix; the record's UTC date is appended (`glasshouse-logs-2026.11.28`)
    /// unless `date_suffix` is false.
    pub index: String,
    pub date_suffix: bool,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        Self { enabled: true, url: "http://127.0.0.1:9200".into(), index: "glasshouse-logs".into(), date_suffix: true }
    }
}

impl TelemetryConfig {
    /// The configuration with every exporter off: stdout logs and local metrics
    /// only. For unit tests and tools.
    pub fn stdout_only() -> Self {
        let mut c = Self::default();
        c.traces.enabled = false;
        c.logs.loki.enabled = false;
        c.logs.elasticsearch.enabled = false;
        c
    }

    /// Rejects values that would make an exporter misbehave, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.traces.sample_ratio) {
            return Err(format!("telemetry.traces.sample_ratio must be within 0..=1, got {}", self.traces.sample_ratio));
        }
        if self.logs.buffer == 0 {
            return Err("telemetry.logs.buffer must be at least 1".into());
        }
        if self.logs.batch_size == 0 {
            return Err("telemetry.logs.batch_size must be at least 1".into());
        }
        for (name, url, on) in [
            ("telemetry.traces.endpoint", &self.traces.endpoint, self.traces.enabled),
            ("telemetry.logs.loki.url", &self.logs.loki.url, self.logs.loki.enabled),
            ("telemetry.logs.elasticsearch.url", &self.logs.elasticsearch.url, self.logs.elasticsearch.enabled),
        ] {
            if on && reqwest::Url::parse(url).is_err() {
                return Err(format!("{name} is not a URL: {url:?}"));
            }
        }
        Ok(())
    }
}

/// Durations in configuration files are whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_point_at_the_local_stack() {
        let c = TelemetryConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.traces.endpoint, "http://127.0.0.1:4317");
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = TelemetryConfig::default();
        c.traces.sample_ratio = 1.5;
        assert!(c.validate().unwrap_err().contains("sample_ratio"));
        let mut c = TelemetryConfig::default();
        c.logs.loki.url = "not a url".into();
        assert!(c.validate().unwrap_err().contains("telemetry.logs.loki.url"));
    }

    #[test]
    fn partial_json_keeps_other_defaults() {
        let c: TelemetryConfig =
            serde_json::from_str(r#"{"traces":{"sample_ratio":0.25,"export_timeout":1500},"logs":{"loki":{"enabled":false}}}"#).unwrap();
        assert_eq!(c.traces.sample_ratio, 0.25);
        assert_eq!(c.traces.export_timeout, Duration::from_millis(1500));
        assert!(!c.logs.loki.enabled);
        assert!(c.logs.elasticsearch.enabled);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_json::from_str::<TelemetryConfig>(r#"{"trace":{}}"#).unwrap_err();
        assert!(e.to_string().contains("trace"));
    }
}
