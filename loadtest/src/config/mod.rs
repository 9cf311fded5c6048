//! The scenario file: typed, validated, with the CLI's overrides applied.
//!
//! Parsing happens in two passes on purpose: serde reads the YAML into the
//! `Raw*` structs of [`raw`] (unknown fields are refused, so a typo never
//! silently falls back to a default), then [`validate`] checks every value,
//! fills in [`defaults`] and builds the [`Config`] the runner uses. Every
//! refusal is a [`ConfigError`] whose message names the offending key and
//! value; the CLI turns it into exit code 2 before any request is sent.
//!
//! - [`duration`]: the duration grammar (`250ms`, `1m30s`) shared with the CLI.
//! - [`steps`]: one step's options, checked per kind.
//! - [`targets`]: base URLs and the loopback-or-allowed rule.
//! - [`tokens`]: where bearer tokens come from, read only when a run starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::threshold::Threshold;

mod defaults;
mod duration;
mod raw;
mod steps;
mod targets;
mod tokens;
mod validate;

pub use duration::{format_duration, parse_duration};
pub use targets::{host_allowed, parse_target};
pub use tokens::load_tokens;

/// A configuration problem; the message names the key and the bad value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `<key>: <msg>`.
    fn at(key: &str, msg: impl std::fmt::Display) -> Self {
        ConfigError(format!("{key}: {msg}"))
    }
}

/// A validated scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Scenario name: a label on every metric and the report's title.
    pub scenario: String,
    /// Free text shown in the report.
    pub description: Option<String>,
    /// Named base URLs; steps refer to them by name so one file serves any port layout.
    pub targets: BTreeMap<String, Target>,
    /// Non-loopback hosts the operator explicitly allowed (lower-case).
    pub allow_hosts: Vec<String>,
    /// How arrivals are generated.
    pub load: Load,
    /// Per-request limits; a request that exceeds them is an error of class timeout/connect.
    pub http: HttpSettings,
    /// Where bearer tokens come from (needed by steps that call authenticated APIs).
    pub auth: Option<AuthSource>,
    /// SKUs to order when a flow has no catalog step (or the catalog is empty).
    pub skus: Vec<String>,
    /// The flows, picked per iteration by weight.
    pub flows: Vec<Flow>,
    /// Pass/fail rules evaluated after the run.
    pub thresholds: Vec<Threshold>,
    /// Report settings.
    pub report: ReportSettings,
    /// Prometheus endpoint settings.
    pub metrics: MetricsSettings,
}

/// One target service: parsed once so the hot path never re-parses URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// As written (for messages).
    pub url: String,
    /// Host as written (name or IP literal), lower-case.
    pub host: String,
    /// TCP port (default 80).
    pub port: u16,
    /// Value of the `Host` header.
    pub authority: String,
    /// Path prefix without a trailing slash (`""` for the root).
    pub base_path: String,
}

/// The workload model.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Open model, fixed arrival rate (iterations per second) for `duration`.
    ConstantRate { rate: f64, duration: Duration, max_in_flight: u32, graceful_stop: Duration },
    /// Open model, arrival rate ramped linearly through stages.
    RampingRate { start_rate: f64, stages: Vec<Stage>, max_in_flight: u32, graceful_stop: Duration },
    /// Closed model: `vus` loops, each starting its next iteration when the last ends.
    Closed { vus: u32, duration: Duration, graceful_stop: Duration },
}

/// A ramp: reach `target` iterations per second linearly over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

impl Load {
    /// Scheduled duration (without the graceful stop).
    pub fn duration(&self) -> Duration {
        match self {
            Load::ConstantRate { duration, .. } | Load::Closed { duration, .. } => *duration,
            Load::RampingRate { stages, .. } => stages.iter().map(|s| s.duration).sum(),
        }
    }

    /// How long in-flight iterations may finish after the schedule ends.
    pub fn graceful_stop(&self) -> Duration {
        match self {
            Load::ConstantRate { graceful_stop, .. } | Load::RampingRate { graceful_stop, .. } | Load::Closed { graceful_stop, .. } => {
                *graceful_stop
            }
        }
    }

    /// Short name used in the report: `constant_rate`, `ramping_rate`, `closed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Load::ConstantRate { .. } => "constant_rate",
            Load::RampingRate { .. } => "ramping_rate",
            Load::Closed { .. } => "closed",
        }
    }

    /// Open models: how many iterations may run at once before arrivals are dropped.
    pub fn max_in_flight(&self) -> Option<u32> {
        match self {
            Load::ConstantRate { max_in_flight, .. } | Load::RampingRate { max_in_flight, .. } => Some(*max_in_flight),
            Load::Closed { .. } => None,
        }
    }

    /// Whether latency is measured from the intended start (open models).
    pub fn is_open(&self) -> bool {
        !matches!(self, Load::Closed { .. })
    }
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

/// A token written in the config; its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where tokens come from. Tokens are secrets: never logged, never in a report.
#[derive(Debug, Clone)]
pub enum AuthSource {
    Literal(Secret),
    File(PathBuf),
    Env(String),
}

/// Report settings.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// A trace's page in a trace UI, with `{trace_id}` where the id goes
    /// (`ReportSettings::trace_url` fills it in); the report links every slow request to it.
    pub trace_ui_url: String,
    /// How many slowest requests to keep per step.
    pub slowest: usize,
    /// Width of a time-series bucket; `None` picks one from the duration.
    pub interval: Option<Duration>,
    /// Jaeger query API base (`GET <base>/api/traces/<id>`); `None`: no waterfalls.
    pub jaeger_query: Option<Target>,
    /// VictoriaLogs base (`<base>/select/logsql/query`); `None`: no log lines.
    pub victorialogs: Option<Target>,
    /// Total time the end of the run polls for the slowest requests' traces.
    pub trace_wait: Duration,
}

/// The placeholder of `report.trace_ui_url` that a trace id replaces.
pub const TRACE_ID: &str = "{trace_id}";

impl ReportSettings {
    /// The trace UI's page of one trace: `trace_ui_url` with the id in place of `{trace_id}`.
    pub fn trace_url(&self, trace_id: &str) -> String {
        self.trace_ui_url.replace(TRACE_ID, trace_id)
    }
}

/// Prometheus settings.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `None` = do not register; `Some(Auto)` = find the local stack; `Some(Dir)` = that directory.
    pub targets_dir: Option<TargetsDir>,
    /// Keep serving `/metrics` this long after the run so a last scrape sees the totals.
    pub linger: Duration,
}

/// Where to write the Prometheus file-SD registration.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetsDir {
    Auto,
    Dir(PathBuf),
}

/// A weighted sequence of steps run as one iteration.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub weight: u32,
    pub steps: Vec<Step>,
}

/// Inclusive integer range, e.g. quantities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: u32,
    pub max: u32,
}

/// A step of a flow. Every step that sends requests has a `name`, which is
/// the `step` label on metrics and the key thresholds refer to.
#[derive(Debug, Clone)]
pub enum Step {
    /// `GET /items?limit=N` on the inventory; remembers the SKUs for later steps.
    ListCatalog { name: String, target: String, limit: u32 },
    /// `POST /orders` with a bearer token and a fresh `Idempotency-Key`; expects 202.
    PlaceOrder { name: String, target: String, lines: Range, quantity: Range },
    /// `GET /orders/{id}` every `interval` until a final state, at most `timeout`.
    PollOrder { name: String, target: String, interval: Duration, timeout: Duration },
    /// `GET /notifications?order_id=<id>` with the bearer token.
    ReadNotifications { name: String, target: String, min_items: u32 },
    /// Pause (think time): not a request, part of the iteration duration.
    Think { duration: Duration, jitter: Duration },
    /// Any request; for simple scenarios and benchmarks.
    Http {
        name: String,
        target: String,
        method: http::Method,
        path: String,
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
        json: Option<Vec<u8>>,
        expect_status: Vec<u16>,
        auth: bool,
    },
}

impl Step {
    /// The metric/threshold name of a request step; `None` for think.
    pub fn name(&self) -> Option<&str> {
        match self {
            Step::ListCatalog { name, .. }
            | Step::PlaceOrder { name, .. }
            | Step::PollOrder { name, .. }
            | Step::ReadNotifications { name, .. }
            | Step::Http { name, .. } => Some(name),
            Step::Think { .. } => None,
        }
    }

    /// The target a request step calls; `None` for think.
    pub fn target(&self) -> Option<&str> {
        match self {
            Step::ListCatalog { target, .. }
            | Step::PlaceOrder { target, .. }
            | Step::PollOrder { target, .. }
            | Step::ReadNotifications { target, .. }
            | Step::Http { target, .. } => Some(target),
            Step::Think { .. } => None,
        }
    }

    /// Whether the step sends a bearer token.
    pub(crate) fn needs_auth(&self) -> bool {
        match self {
            Step::PlaceOrder { .. } | Step::PollOrder { .. } | Step::ReadNotifications { .. } => true,
            Step::Http { auth, .. } => *auth,
            _ => false,
        }
    }
}

/// Command-line overrides, applied on top of the file before validation.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--duration`: for constant rate and closed models.
    pub duration: Option<Duration>,
    /// `--rate`: switches the model to constant rate at this rate.
    pub rate: Option<f64>,
    /// `--vus`: switches the model to closed with this many VUs.
    pub vus: Option<u32>,
    /// `--max-in-flight`.
    pub max_in_flight: Option<u32>,
    /// `--target NAME=URL`.
    pub targets: Vec<(String, String)>,
    /// `--metrics-port`: loopback port for `/metrics`.
    pub metrics_port: Option<u16>,
    /// `--no-metrics`.
    pub no_metrics: bool,
    /// `--allow-host NAME`: added to the file's `allow_hosts` (e.g. a Service name in a cluster).
    pub allow_hosts: Vec<String>,
}

impl Config {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base, overrides).map_err(|e| ConfigError(format!("config {}: {}", path.display(), e.0)))
    }

    /// Parses YAML text; relative paths (token files) resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        validate::config(raw, base_dir, overrides)
    }

    /// Names of every request step, in first-seen order (metric label values).
    pub fn step_names(&self) -> Vec<String> {
        first_seen(self.flows.iter().flat_map(|f| &f.steps).filter_map(Step::name))
    }

    /// Names of the targets some step calls, in first-seen order (the client's origins).
    pub fn used_targets(&self) -> Vec<String> {
        first_seen(self.flows.iter().flat_map(|f| &f.steps).filter_map(Step::target))
    }
}

/// Distinct values in the order they first appear.
fn first_seen<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.iter().any(|x| x == item) {
            out.push(item.to_string());
        }
    }
    out
}
