//! The scenario file: typed, validated, with the CLI's overrides applied.
//!
//! Parsing happens in two passes on purpose: serde reads the YAML into `Raw*`
//! structs (unknown fields are refused, so a typo never silently falls back to
//! a default), then [`Config::from_raw`] checks every value and builds the
//! [`Config`] the runner uses. Every refusal is a [`ConfigError`] whose message
//! names the offending key and value; the CLI turns it into exit code 2 before
//! any request is sent.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::threshold::Threshold;

/// A configuration problem; the message names the key and the bad value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn at(key: &str, msg: impl std::fmt::Display) -> Self {
        ConfigError(format!("{key}: {msg}"))
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h`, `1m30s`, `1.5s`, `750us`.
///
/// Written by hand because the grammar is tiny and a dependency for it would
/// accept more spellings than the README documents.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. 500ms, 5s, 2m)".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(|| format!("`{text}` has no unit (use ms, s, m or h)"))?;
        if num_len == 0 {
            return Err(format!("`{text}` is not a duration (expected e.g. 500ms, 5s, 2m)"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| format!("`{text}` has a bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "us" | "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!("`{text}` has unknown unit `{unit}` (use us, ms, s, m or h)"));
            }
        };
        total += secs;
    }
    if !total.is_finite() || total > 86_400.0 * 7.0 {
        return Err(format!("`{text}` is too long (at most 7 days)"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way [`parse_duration`] reads it, for messages and reports.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 1000.0 && (ms / 1000.0).fract() == 0.0 {
        format!("{}s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{}ms", (ms * 1000.0).round() / 1000.0)
    } else {
        format!("{}us", (ms * 1000.0).round())
    }
}

/// A duration as written; parsed during validation so the error names its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
struct DurText(String);

/// Parses an optional duration, naming `key` in the error.
fn dur(v: &Option<DurText>, key: &str) -> Result<Option<Duration>, ConfigError> {
    v.as_ref().map(|d| parse_duration(&d.0).map_err(|m| ConfigError::at(key, m))).transpose()
}

// ---------------------------------------------------------------------------
// Raw (as written in YAML)
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    scenario: String,
    #[serde(default)]
    description: Option<String>,
    targets: BTreeMap<String, String>,
    #[serde(default)]
    allow_hosts: Vec<String>,
    load: RawLoad,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    data: RawData,
    flows: Vec<RawFlow>,
    #[serde(default)]
    thresholds: Vec<String>,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    model: String,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    duration: Option<DurText>,
    #[serde(default)]
    start_rate: Option<f64>,
    #[serde(default)]
    stages: Option<Vec<RawStage>>,
    #[serde(default)]
    vus: Option<u32>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    graceful_stop: Option<DurText>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawStage {
    duration: DurText,
    target: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    timeout: Option<DurText>,
    #[serde(default)]
    connect_timeout: Option<DurText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    #[serde(default)]
    skus: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: String,
    #[serde(default = "one")]
    weight: u32,
    steps: Vec<RawStep>,
}

fn one() -> u32 {
    1
}

/// One step as written: `step:` names the kind, the other keys are its options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    step: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    target: Option<String>,
    // list_catalog
    #[serde(default)]
    limit: Option<u32>,
    // place_order
    #[serde(default)]
    lines: Option<RawRange>,
    #[serde(default)]
    quantity: Option<RawRange>,
    // poll_order
    #[serde(default)]
    interval: Option<DurText>,
    #[serde(default)]
    timeout: Option<DurText>,
    // read_notifications
    #[serde(default)]
    min_items: Option<u32>,
    // think
    #[serde(default)]
    duration: Option<DurText>,
    #[serde(default)]
    jitter: Option<DurText>,
    // http
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    json: Option<serde_json::Value>,
    #[serde(default)]
    expect_status: Option<Vec<u16>>,
    #[serde(default)]
    auth: Option<bool>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawRange {
    min: u32,
    max: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    #[serde(default = "default_jaeger")]
    jaeger_url: String,
    #[serde(default = "default_slowest")]
    slowest: usize,
    #[serde(default)]
    interval: Option<DurText>,
}

impl Default for RawReport {
    fn default() -> Self {
        RawReport { jaeger_url: default_jaeger(), slowest: default_slowest(), interval: None }
    }
}

fn default_jaeger() -> String {
    "http://127.0.0.1:16686".into()
}
fn default_slowest() -> usize {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_metrics_listen")]
    listen: String,
    #[serde(default = "default_sd")]
    prometheus_targets_dir: String,
    #[serde(default)]
    linger: Option<DurText>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics { enabled: true, listen: default_metrics_listen(), prometheus_targets_dir: default_sd(), linger: None }
    }
}

fn yes() -> bool {
    true
}
fn default_metrics_listen() -> String {
    "127.0.0.1:0".into()
}
fn default_sd() -> String {
    "auto".into()
}

// ---------------------------------------------------------------------------
// Validated
// ---------------------------------------------------------------------------

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
    /// Jaeger UI base; the report links `<jaeger_url>/trace/<trace_id>`.
    pub jaeger_url: String,
    /// How many slowest requests to keep per step.
    pub slowest: usize,
    /// Width of a time-series bucket; `None` picks one from the duration.
    pub interval: Option<Duration>,
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

    fn target(&self) -> Option<&str> {
        match self {
            Step::ListCatalog { target, .. }
            | Step::PlaceOrder { target, .. }
            | Step::PollOrder { target, .. }
            | Step::ReadNotifications { target, .. }
            | Step::Http { target, .. } => Some(target),
            Step::Think { .. } => None,
        }
    }

    fn needs_auth(&self) -> bool {
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
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        Config::from_raw(raw, base_dir, overrides)
    }

    fn from_raw(mut raw: RawConfig, base_dir: &Path, ov: &Overrides) -> Result<Config, ConfigError> {
        if raw.scenario.trim().is_empty() || !raw.scenario.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::at(
                "scenario",
                format!("`{}` must be non-empty and use only letters, digits, `-`, `_`", raw.scenario),
            ));
        }

        for (name, url) in &ov.targets {
            if !raw.targets.contains_key(name) {
                return Err(ConfigError::at(
                    "--target",
                    format!("no target named `{name}` in the config (known: {})", join_keys(&raw.targets)),
                ));
            }
            raw.targets.insert(name.clone(), url.clone());
        }
        let allow_hosts: Vec<String> = raw.allow_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
        if raw.targets.is_empty() {
            return Err(ConfigError::at("targets", "at least one target is required"));
        }
        let mut targets = BTreeMap::new();
        for (name, url) in &raw.targets {
            let t = parse_target(url).map_err(|m| ConfigError::at(&format!("targets.{name}"), m))?;
            if !host_allowed(&t.host, &allow_hosts) {
                return Err(ConfigError::at(
                    &format!("targets.{name}"),
                    format!(
                        "host `{}` is neither loopback nor listed in allow_hosts; the runner only loads hosts it was explicitly allowed to",
                        t.host
                    ),
                ));
            }
            targets.insert(name.clone(), t);
        }

        let load = build_load(&raw.load, ov)?;

        let timeout = dur(&raw.http.timeout, "http.timeout")?.unwrap_or(Duration::from_secs(5));
        let connect_timeout = dur(&raw.http.connect_timeout, "http.connect_timeout")?.unwrap_or(Duration::from_secs(2));
        if timeout.is_zero() {
            return Err(ConfigError::at("http.timeout", "must be greater than 0"));
        }
        if connect_timeout.is_zero() {
            return Err(ConfigError::at("http.connect_timeout", "must be greater than 0"));
        }
        let http = HttpSettings { timeout, connect_timeout };

        if raw.flows.is_empty() {
            return Err(ConfigError::at("flows", "at least one flow is required"));
        }
        let mut flows = Vec::new();
        let mut step_names: Vec<String> = Vec::new();
        for (fi, f) in raw.flows.iter().enumerate() {
            let key = format!("flows[{fi}]");
            if f.name.trim().is_empty() {
                return Err(ConfigError::at(&format!("{key}.name"), "must not be empty"));
            }
            if flows.iter().any(|x: &Flow| x.name == f.name) {
                return Err(ConfigError::at(&format!("{key}.name"), format!("duplicate flow `{}`", f.name)));
            }
            if f.steps.is_empty() {
                return Err(ConfigError::at(&format!("{key}.steps"), "a flow needs at least one step"));
            }
            let mut steps = Vec::new();
            for (si, s) in f.steps.iter().enumerate() {
                let skey = format!("{key}.steps[{si}]");
                let step = build_step(s, &skey)?;
                if let Some(t) = step.target()
                    && !targets.contains_key(t)
                {
                    return Err(ConfigError::at(
                        &format!("{skey}.target"),
                        format!("no target named `{t}` (known: {})", join_keys(&targets)),
                    ));
                }
                if let Some(n) = step.name()
                    && !step_names.iter().any(|x| x == n)
                {
                    step_names.push(n.to_string());
                }
                steps.push(step);
            }
            check_flow_order(&steps, &key, !raw.data.skus.is_empty())?;
            if !steps.iter().any(|s| s.name().is_some()) {
                return Err(ConfigError::at(&format!("{key}.steps"), "a flow needs at least one request step"));
            }
            flows.push(Flow { name: f.name.clone(), weight: f.weight, steps });
        }
        if flows.iter().all(|f| f.weight == 0) {
            return Err(ConfigError::at("flows", "at least one flow needs a weight above 0"));
        }

        let needs_auth = flows.iter().flat_map(|f| &f.steps).any(|s| s.needs_auth());
        let auth = match &raw.auth {
            None => None,
            Some(a) => {
                let n = a.token.is_some() as u8 + a.token_file.is_some() as u8 + a.token_env.is_some() as u8;
                if n != 1 {
                    return Err(ConfigError::at("auth", "set exactly one of token, token_file, token_env"));
                }
                Some(if let Some(t) = &a.token {
                    AuthSource::Literal(Secret(t.clone()))
                } else if let Some(p) = &a.token_file {
                    AuthSource::File(if p.is_absolute() { p.clone() } else { base_dir.join(p) })
                } else {
                    AuthSource::Env(a.token_env.clone().unwrap_or_default())
                })
            }
        };
        if needs_auth && auth.is_none() {
            return Err(ConfigError::at(
                "auth",
                "the flows call authenticated APIs but no token source is set (token, token_file or token_env)",
            ));
        }

        let thresholds = raw
            .thresholds
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let th = Threshold::parse(t).map_err(|m| ConfigError::at(&format!("thresholds[{i}]"), m))?;
                if let Some(step) = &th.step
                    && !step_names.iter().any(|n| n == step)
                {
                    return Err(ConfigError::at(
                        &format!("thresholds[{i}]"),
                        format!("`{t}` names step `{step}`, which no flow has (steps: {})", step_names.join(", ")),
                    ));
                }
                Ok(th)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let jaeger_url = raw.report.jaeger_url.trim_end_matches('/').to_string();
        if !(jaeger_url.starts_with("http://") || jaeger_url.starts_with("https://")) {
            return Err(ConfigError::at("report.jaeger_url", format!("`{jaeger_url}` is not an http(s) URL")));
        }
        if raw.report.slowest > 1000 {
            return Err(ConfigError::at("report.slowest", "at most 1000"));
        }
        let report_interval = dur(&raw.report.interval, "report.interval")?;
        if let Some(i) = report_interval {
            if i < Duration::from_millis(100) {
                return Err(ConfigError::at("report.interval", "at least 100ms"));
            }
            // Each bucket holds a histogram per step: keep their number bounded.
            let buckets = (load.duration() + load.graceful_stop()).as_secs_f64() / i.as_secs_f64();
            if buckets > 3600.0 {
                return Err(ConfigError::at(
                    "report.interval",
                    format!("{} makes {buckets:.0} buckets for this run; at most 3600", format_duration(i)),
                ));
            }
        }

        let mut listen: SocketAddr =
            raw.metrics.listen.parse().map_err(|_| {
                ConfigError::at("metrics.listen", format!("`{}` is not an address like 127.0.0.1:9464", raw.metrics.listen))
            })?;
        if let Some(p) = ov.metrics_port {
            listen.set_port(p);
        }
        if !listen.ip().is_loopback() {
            return Err(ConfigError::at(
                "metrics.listen",
                format!("`{listen}` is not a loopback address; the runner's /metrics stays on loopback"),
            ));
        }
        let targets_dir = match raw.metrics.prometheus_targets_dir.as_str() {
            "off" | "" => None,
            "auto" => Some(TargetsDir::Auto),
            p => Some(TargetsDir::Dir(PathBuf::from(p))),
        };
        let metrics = MetricsSettings {
            enabled: raw.metrics.enabled && !ov.no_metrics,
            listen,
            targets_dir,
            linger: dur(&raw.metrics.linger, "metrics.linger")?.unwrap_or(Duration::ZERO),
        };

        Ok(Config {
            scenario: raw.scenario,
            description: raw.description,
            targets,
            allow_hosts,
            load,
            http,
            auth,
            skus: raw.data.skus,
            flows,
            thresholds,
            report: ReportSettings { jaeger_url, slowest: raw.report.slowest, interval: report_interval },
            metrics,
        })
    }

    /// Names of every request step, in first-seen order (metric label values).
    pub fn step_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in self.flows.iter().flat_map(|f| &f.steps) {
            if let Some(n) = s.name()
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_string());
            }
        }
        names
    }
}

/// Reads the token(s) for the configured source; at least one must be found.
///
/// Kept out of [`Config::parse`] so that `parse` stays free of environment
/// and file reads other than the config itself; the CLI calls it before load.
pub fn load_tokens(source: &AuthSource) -> Result<Vec<String>, ConfigError> {
    let tokens: Vec<String> = match source {
        AuthSource::Literal(secret) => vec![secret.0.clone()],
        AuthSource::File(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| ConfigError::at("auth.token_file", format!("cannot read {}: {e}", p.display())))?;
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
        }
        AuthSource::Env(name) => match std::env::var(name) {
            Ok(v) => v.split_whitespace().map(String::from).collect(),
            Err(_) => {
                return Err(ConfigError::at(
                    "auth.token_env",
                    format!(
                        "environment variable `{name}` is not set (minting tokens with the local dev key is not built yet; see loadtest/README.md)"
                    ),
                ));
            }
        },
    };
    let tokens: Vec<String> = tokens.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        return Err(ConfigError::at("auth", "the token source yielded no token"));
    }
    if let Some(bad) = tokens.iter().position(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).is_err()) {
        return Err(ConfigError::at("auth", format!("token #{} contains characters not allowed in a header", bad + 1)));
    }
    Ok(tokens)
}

fn join_keys<V>(m: &BTreeMap<String, V>) -> String {
    m.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn parse_target(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!("`{url}`: https is not supported yet (the runner speaks plain HTTP/1.1)"));
        }
        _ => return Err(format!("`{url}` must start with http://")),
    }
    let auth = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
    if auth.as_str().contains('@') {
        return Err(format!("`{url}`: credentials in URLs are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: a base URL cannot have a query"));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    let port = auth.port_u16().unwrap_or(80);
    Ok(Target {
        url: url.to_string(),
        host,
        port,
        authority: auth.as_str().to_string(),
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

/// Loopback literals and `localhost` are always allowed; anything else must be
/// named in `allow_hosts` (exact, case-insensitive).
pub fn host_allowed(host: &str, allow: &[String]) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && ip.is_loopback()
    {
        return true;
    }
    allow.iter().any(|a| a == host)
}

fn build_load(raw: &RawLoad, ov: &Overrides) -> Result<Load, ConfigError> {
    let mut model = raw.model.as_str();
    if ov.rate.is_some() && ov.vus.is_some() {
        return Err(ConfigError::at("--rate/--vus", "give one of them, not both"));
    }
    if ov.rate.is_some() {
        model = "constant_rate";
    }
    if ov.vus.is_some() {
        model = "closed";
    }
    let max_in_flight = ov.max_in_flight.or(raw.max_in_flight).unwrap_or(100);
    if max_in_flight == 0 {
        return Err(ConfigError::at("load.max_in_flight", "must be at least 1"));
    }
    let graceful_stop = dur(&raw.graceful_stop, "load.graceful_stop")?.unwrap_or(Duration::from_secs(30));
    let raw_duration = dur(&raw.duration, "load.duration")?;
    let duration = |what: &str| -> Result<Duration, ConfigError> {
        let d = ov.duration.or(raw_duration).ok_or_else(|| ConfigError::at("load.duration", format!("required for model {what}")))?;
        if d.is_zero() {
            return Err(ConfigError::at("load.duration", "must be greater than 0"));
        }
        Ok(d)
    };
    let check_rate = |key: &str, r: f64| -> Result<f64, ConfigError> {
        if !r.is_finite() || r <= 0.0 || r > 1_000_000.0 {
            return Err(ConfigError::at(key, format!("{r} is not a rate in (0, 1000000] per second")));
        }
        Ok(r)
    };
    match model {
        "constant_rate" => {
            let rate = ov.rate.or(raw.rate).ok_or_else(|| ConfigError::at("load.rate", "required for model constant_rate"))?;
            let key = if ov.rate.is_some() { "--rate" } else { "load.rate" };
            Ok(Load::ConstantRate { rate: check_rate(key, rate)?, duration: duration("constant_rate")?, max_in_flight, graceful_stop })
        }
        "ramping_rate" => {
            if ov.duration.is_some() {
                return Err(ConfigError::at("--duration", "does not apply to ramping_rate (edit the stages)"));
            }
            let stages = raw
                .stages
                .as_ref()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ConfigError::at("load.stages", "required (non-empty) for model ramping_rate"))?;
            let start_rate = raw.start_rate.unwrap_or(0.0);
            if !start_rate.is_finite() || !(0.0..=1_000_000.0).contains(&start_rate) {
                return Err(ConfigError::at("load.start_rate", format!("{start_rate} is out of range")));
            }
            let mut out = Vec::new();
            for (i, s) in stages.iter().enumerate() {
                let d = dur(&Some(s.duration.clone()), &format!("load.stages[{i}].duration"))?.unwrap_or_default();
                if d.is_zero() {
                    return Err(ConfigError::at(&format!("load.stages[{i}].duration"), "must be greater than 0"));
                }
                if !s.target.is_finite() || !(0.0..=1_000_000.0).contains(&s.target) {
                    return Err(ConfigError::at(&format!("load.stages[{i}].target"), format!("{} is out of range", s.target)));
                }
                out.push(Stage { duration: d, target: s.target });
            }
            if start_rate == 0.0 && out.iter().all(|s| s.target == 0.0) {
                return Err(ConfigError::at("load.stages", "every rate is 0: nothing would run"));
            }
            Ok(Load::RampingRate { start_rate, stages: out, max_in_flight, graceful_stop })
        }
        "closed" => {
            let vus = ov.vus.or(raw.vus).ok_or_else(|| ConfigError::at("load.vus", "required for model closed"))?;
            if vus == 0 || vus > 100_000 {
                return Err(ConfigError::at("load.vus", format!("{vus} is not in 1..=100000")));
            }
            Ok(Load::Closed { vus, duration: duration("closed")?, graceful_stop })
        }
        other => Err(ConfigError::at("load.model", format!("unknown model `{other}` (use constant_rate, ramping_rate or closed)"))),
    }
}

fn build_step(s: &RawStep, key: &str) -> Result<Step, ConfigError> {
    let name = |default: &str| -> Result<String, ConfigError> {
        let n = s.name.clone().unwrap_or_else(|| default.to_string());
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ConfigError::at(&format!("{key}.name"), format!("`{n}` must use only letters, digits, `_`, `-`")));
        }
        Ok(n)
    };
    let target = |default: &str| s.target.clone().unwrap_or_else(|| default.to_string());
    // Options that belong to another kind are refused rather than ignored.
    let allowed: &[&str] = match s.step.as_str() {
        "list_catalog" => &["name", "target", "limit"],
        "place_order" => &["name", "target", "lines", "quantity"],
        "poll_order" => &["name", "target", "interval", "timeout"],
        "read_notifications" => &["name", "target", "min_items"],
        "think" => &["duration", "jitter"],
        "http" => &["name", "target", "method", "path", "headers", "json", "expect_status", "auth"],
        other => {
            return Err(ConfigError::at(
                &format!("{key}.step"),
                format!("unknown step `{other}` (use list_catalog, place_order, poll_order, read_notifications, think, http)"),
            ));
        }
    };
    let present: [(&str, bool); 16] = [
        ("name", s.name.is_some()),
        ("target", s.target.is_some()),
        ("limit", s.limit.is_some()),
        ("lines", s.lines.is_some()),
        ("quantity", s.quantity.is_some()),
        ("interval", s.interval.is_some()),
        ("timeout", s.timeout.is_some()),
        ("min_items", s.min_items.is_some()),
        ("duration", s.duration.is_some()),
        ("jitter", s.jitter.is_some()),
        ("method", s.method.is_some()),
        ("path", s.path.is_some()),
        ("headers", !s.headers.is_empty()),
        ("json", s.json.is_some()),
        ("expect_status", s.expect_status.is_some()),
        ("auth", s.auth.is_some()),
    ];
    for (field, is_set) in present {
        if is_set && !allowed.contains(&field) {
            return Err(ConfigError::at(key, format!("option `{field}` does not apply to step `{}`", s.step)));
        }
    }
    let interval = dur(&s.interval, &format!("{key}.interval"))?;
    let timeout = dur(&s.timeout, &format!("{key}.timeout"))?;
    let duration = dur(&s.duration, &format!("{key}.duration"))?;
    let jitter = dur(&s.jitter, &format!("{key}.jitter"))?;
    let range = |r: Option<RawRange>, what: &str| -> Result<Range, ConfigError> {
        let r = r.unwrap_or(RawRange { min: 1, max: 1 });
        if r.min == 0 || r.min > r.max || r.max > 1000 {
            return Err(ConfigError::at(
                &format!("{key}.{what}"),
                format!("min {} / max {} must satisfy 1 <= min <= max <= 1000", r.min, r.max),
            ));
        }
        Ok(Range { min: r.min, max: r.max })
    };
    Ok(match s.step.as_str() {
        "list_catalog" => {
            let limit = s.limit.unwrap_or(20);
            if limit == 0 || limit > 1000 {
                return Err(ConfigError::at(&format!("{key}.limit"), format!("{limit} is not in 1..=1000")));
            }
            Step::ListCatalog { name: name("list_catalog")?, target: target("inventory"), limit }
        }
        "place_order" => Step::PlaceOrder {
            name: name("place_order")?,
            target: target("order"),
            lines: range(s.lines, "lines")?,
            quantity: range(s.quantity, "quantity")?,
        },
        "poll_order" => {
            let interval = interval.unwrap_or(Duration::from_millis(250));
            let timeout = timeout.unwrap_or(Duration::from_secs(10));
            if interval.is_zero() || timeout < interval {
                return Err(ConfigError::at(key, "poll_order needs 0 < interval <= timeout"));
            }
            Step::PollOrder { name: name("poll_order")?, target: target("order"), interval, timeout }
        }
        "read_notifications" => Step::ReadNotifications {
            name: name("read_notifications")?,
            target: target("notification"),
            min_items: s.min_items.unwrap_or(0),
        },
        "think" => {
            let duration = duration.ok_or_else(|| ConfigError::at(&format!("{key}.duration"), "required for think"))?;
            Step::Think { duration, jitter: jitter.unwrap_or(Duration::ZERO) }
        }
        "http" => {
            if s.name.is_none() {
                return Err(ConfigError::at(&format!("{key}.name"), "required for http steps"));
            }
            let n = name("")?;
            let target = s.target.clone().ok_or_else(|| ConfigError::at(&format!("{key}.target"), "required for http steps"))?;
            let method_text = s.method.clone().unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
            let method = http::Method::from_bytes(method_text.as_bytes())
                .map_err(|_| ConfigError::at(&format!("{key}.method"), format!("`{method_text}` is not an HTTP method")))?;
            let path = s.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
                return Err(ConfigError::at(&format!("{key}.path"), format!("`{path}` must be a path starting with /")));
            }
            let mut headers = Vec::new();
            for (k, v) in &s.headers {
                let hn = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| ConfigError::at(&format!("{key}.headers"), format!("`{k}` is not a header name")))?;
                let hv = http::HeaderValue::from_str(v)
                    .map_err(|_| ConfigError::at(&format!("{key}.headers.{k}"), "value has characters not allowed in a header"))?;
                headers.push((hn, hv));
            }
            let expect_status = s.expect_status.clone().unwrap_or_else(|| vec![200]);
            if expect_status.is_empty() || expect_status.iter().any(|c| !(100..=599).contains(c)) {
                return Err(ConfigError::at(&format!("{key}.expect_status"), format!("{expect_status:?} must be HTTP status codes")));
            }
            Step::Http {
                name: n,
                target,
                method,
                path,
                headers,
                json: s.json.as_ref().map(|v| serde_json::to_vec(v).unwrap_or_default()),
                expect_status,
                auth: s.auth.unwrap_or(false),
            }
        }
        _ => unreachable!("kinds checked above"),
    })
}

/// Steps that consume data must follow the step that produces it.
fn check_flow_order(steps: &[Step], key: &str, have_skus: bool) -> Result<(), ConfigError> {
    let mut catalog = have_skus;
    let mut order = false;
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::ListCatalog { .. } => catalog = true,
            Step::PlaceOrder { .. } => {
                if !catalog {
                    return Err(ConfigError::at(
                        &format!("{key}.steps[{i}]"),
                        "place_order needs SKUs: put a list_catalog step before it or set data.skus",
                    ));
                }
                order = true;
            }
            Step::PollOrder { .. } | Step::ReadNotifications { .. } if !order => {
                return Err(ConfigError::at(&format!("{key}.steps[{i}]"), "this step needs an order: put a place_order step before it"));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_refuse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("750us").unwrap(), Duration::from_micros(750));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn hosts_must_be_loopback_or_allowed() {
        assert!(host_allowed("127.0.0.1", &[]));
        assert!(host_allowed("127.9.9.9", &[]));
        assert!(host_allowed("::1", &[]));
        assert!(host_allowed("localhost", &[]));
        assert!(!host_allowed("10.0.0.1", &[]));
        assert!(!host_allowed("example.com", &[]));
        assert!(host_allowed("staging.example.com", &["staging.example.com".into()]));
    }

    #[test]
    fn targets_parse() {
        let t = parse_target("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.base_path.as_str()), ("127.0.0.1", 8080, "/api"));
        let t = parse_target("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.authority.as_str()), ("::1", "[::1]:9000"));
        assert!(parse_target("https://127.0.0.1").unwrap_err().contains("https"));
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("not a url").is_err());
    }
}
