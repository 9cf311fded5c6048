//! The scenario file as written: serde reads the YAML into these `Raw*`
//! structs before anything is checked. Unknown fields are refused here, so a
//! typo never silently falls back to a default; values are checked (and
//! defaults filled in) by [`super::validate`]. Absent `Option` fields are `None`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::defaults;

/// A duration as written; parsed during validation so the error names its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub(super) struct DurText(pub(super) String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) scenario: String,
    pub(super) description: Option<String>,
    pub(super) targets: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) allow_hosts: Vec<String>,
    pub(super) load: RawLoad,
    #[serde(default)]
    pub(super) http: RawHttp,
    pub(super) auth: Option<RawAuth>,
    #[serde(default)]
    pub(super) data: RawData,
    pub(super) flows: Vec<RawFlow>,
    #[serde(default)]
    pub(super) thresholds: Vec<String>,
    #[serde(default)]
    pub(super) report: RawReport,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub(super) model: String,
    pub(super) rate: Option<f64>,
    pub(super) duration: Option<DurText>,
    pub(super) start_rate: Option<f64>,
    pub(super) stages: Option<Vec<RawStage>>,
    pub(super) vus: Option<u32>,
    pub(super) max_in_flight: Option<u32>,
    pub(super) graceful_stop: Option<DurText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    pub(super) duration: DurText,
    pub(super) target: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) timeout: Option<DurText>,
    pub(super) connect_timeout: Option<DurText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    #[serde(default)]
    pub(super) skus: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlow {
    pub(super) name: String,
    #[serde(default = "defaults::weight")]
    pub(super) weight: u32,
    pub(super) steps: Vec<RawStep>,
}

/// One step as written: `step:` names the kind, the other keys are its options
/// (which kind takes which option is checked in [`super::steps`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) step: String,
    pub(super) name: Option<String>,
    pub(super) target: Option<String>,
    // list_catalog
    pub(super) limit: Option<u32>,
    // place_order
    pub(super) lines: Option<RawRange>,
    pub(super) quantity: Option<RawRange>,
    // poll_order
    pub(super) interval: Option<DurText>,
    pub(super) timeout: Option<DurText>,
    // read_notifications
    pub(super) min_items: Option<u32>,
    // think
    pub(super) duration: Option<DurText>,
    pub(super) jitter: Option<DurText>,
    // http
    pub(super) method: Option<String>,
    pub(super) path: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    pub(super) json: Option<serde_json::Value>,
    pub(super) expect_status: Option<Vec<u16>>,
    pub(super) auth: Option<bool>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    pub(super) min: u32,
    pub(super) max: u32,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawReport {
    pub(super) trace_ui_url: String,
    /// The old name of `trace_ui_url` (a Jaeger UI base): refused with a message naming the new key.
    pub(super) jaeger_url: Option<String>,
    pub(super) slowest: usize,
    pub(super) interval: Option<DurText>,
    pub(super) jaeger_query_url: Option<String>,
    pub(super) victorialogs_url: Option<String>,
    pub(super) trace_wait: Option<DurText>,
}

impl Default for RawReport {
    fn default() -> Self {
        RawReport {
            trace_ui_url: defaults::TRACE_UI_URL.into(),
            jaeger_url: None,
            slowest: defaults::SLOWEST,
            interval: None,
            jaeger_query_url: None,
            victorialogs_url: None,
            trace_wait: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) enabled: bool,
    pub(super) listen: String,
    pub(super) prometheus_targets_dir: String,
    pub(super) linger: Option<DurText>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            listen: defaults::METRICS_LISTEN.into(),
            prometheus_targets_dir: defaults::PROMETHEUS_TARGETS_DIR.into(),
            linger: None,
        }
    }
}
