//! The JSON summary (schema `glasshouse-loadtest/summary`, version 1; documented
//! field by field in loadtest/README.md) and threshold evaluation.
//!
//! The summary is the single source of the reports: the HTML report is
//! rendered from it alone (see [`crate::html`]), so what the page shows and
//! what CI reads cannot disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Load};
use crate::sample::Outcome;
use crate::stats::{Bucket, Results, SlowRequest, hist_u64};
use crate::threshold::{Metric, Stat, Threshold};
use crate::trace::{self, Backends, TraceDetails};

/// `schema` value of every summary.
pub const SCHEMA: &str = "glasshouse-loadtest/summary";
/// Bumped on any incompatible change of the summary's fields.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// The whole run, as written to `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub schema: String,
    pub schema_version: u32,
    pub scenario: String,
    pub description: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
    pub interrupted: bool,
    pub load: LoadSummary,
    pub latency_origin: String,
    pub targets: BTreeMap<String, String>,
    pub totals: Totals,
    pub http_req_duration_ms: Option<Percentiles>,
    pub iteration_duration_ms: Option<Percentiles>,
    pub scheduling_lag_ms: Option<Percentiles>,
    pub steps: Vec<StepSummary>,
    pub checks: Vec<CheckSummary>,
    pub counters: BTreeMap<String, u64>,
    pub thresholds: Vec<ThresholdResult>,
    pub thresholds_passed: bool,
    pub slowest: Vec<SlowSummary>,
    pub timeseries: TimeSeries,
    pub warnings: Vec<String>,
    pub exit_code: i32,
    /// The run's HDR histograms, serialized (what `glasshouse-loadtest merge` combines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<SerializedHistograms>,
    /// `merge` only: the part files this summary was merged from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// The histograms behind the summary's percentiles, each HdrHistogram's V2
/// "deflate" encoding in standard base64 (the `HISTFAAA...` strings other
/// HdrHistogram implementations read too). Values are microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SerializedHistograms {
    /// Always [`HISTOGRAM_ENCODING`].
    pub encoding: String,
    /// Always `us`.
    pub unit: String,
    /// Per step: request latency (3 significant digits).
    pub steps: BTreeMap<String, String>,
    /// Whole-iteration latency.
    pub iteration_duration: String,
    /// Open model: scheduling lag.
    pub scheduling_lag: String,
    /// Per time bucket (as in `timeseries.points`), per step that had requests:
    /// latency (2 significant digits).
    pub timeseries: Vec<BTreeMap<String, String>>,
}

/// `histograms.encoding` of every summary.
pub const HISTOGRAM_ENCODING: &str = "hdrhistogram-v2-deflate-base64";

/// A histogram as [`SerializedHistograms`] stores it.
pub fn encode_histogram<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Result<String, String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
    let mut buf = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut buf).map_err(|e| format!("cannot encode a histogram: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// The inverse of [`encode_histogram`]; the error says what is wrong with the text.
pub fn decode_histogram<T: hdrhistogram::Counter>(text: &str) -> Result<Histogram<T>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| format!("not base64: {e}"))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 encoding: {e}"))
}

fn serialize_histograms(r: &Results) -> Result<SerializedHistograms, String> {
    let steps =
        r.step_names.iter().zip(&r.steps).map(|(n, s)| Ok((n.clone(), encode_histogram(&s.latency)?))).collect::<Result<_, String>>()?;
    let timeseries = r
        .buckets
        .iter()
        .map(|b| {
            (b.steps.iter().zip(&r.step_names))
                .filter(|((h, _), _)| !h.is_empty())
                .map(|((h, _), n)| Ok((n.clone(), encode_histogram(h)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()
        })
        .collect::<Result<_, String>>()?;
    Ok(SerializedHistograms {
        encoding: HISTOGRAM_ENCODING.to_string(),
        unit: "us".to_string(),
        steps,
        iteration_duration: encode_histogram(&r.iterations)?,
        scheduling_lag: encode_histogram(&r.lag)?,
        timeseries,
    })
}

/// The workload model as run (after CLI overrides).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSummary {
    pub model: String,
    pub rate: Option<f64>,
    pub start_rate: Option<f64>,
    pub stages: Vec<StageSummary>,
    pub vus: Option<u32>,
    pub duration_s: f64,
    pub max_in_flight: Option<u32>,
    pub graceful_stop_s: f64,
}

/// One ramp stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageSummary {
    pub duration_s: f64,
    pub target: f64,
}

/// Run-wide counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub throughput_rps: f64,
    pub iterations_started: u64,
    pub iterations_completed: u64,
    pub iterations_failed: u64,
    pub iterations_interrupted: u64,
    pub dropped_iterations: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub check_failure_rate: f64,
}

/// Per-step results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepSummary {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub throughput_rps: f64,
    pub latency_ms: Option<Percentiles>,
    pub outcomes: BTreeMap<String, u64>,
    pub status_codes: BTreeMap<String, u64>,
    pub error_examples: BTreeMap<String, String>,
    pub slowest: Vec<SlowSummary>,
}

/// A slow request with the link to its trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowSummary {
    pub step: String,
    pub latency_ms: f64,
    pub trace_id: String,
    pub trace_url: String,
    pub status: Option<u16>,
    pub outcome: String,
    pub at_s: f64,
    /// The trace's waterfall and log lines (run-wide `slowest` only, and only
    /// when `report.jaeger_query_url` or `report.victorialogs_url` is set).
    #[serde(default)]
    pub trace: Option<TraceDetails>,
}

/// Pass/fail counts of one check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckSummary {
    pub step: String,
    pub name: String,
    pub passes: u64,
    pub fails: u64,
}

/// One evaluated threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub expression: String,
    pub metric: String,
    pub step: Option<String>,
    pub stat: String,
    pub op: String,
    pub limit: f64,
    pub unit: String,
    pub observed: Option<f64>,
    pub passed: bool,
}

/// Latency and throughput per time bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeSeries {
    pub interval_s: f64,
    pub points: Vec<Point>,
}

/// One bucket of the time series (by response end time; starts/drops by intended time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub t_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub iterations_started: u64,
    pub dropped: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub steps: BTreeMap<String, StepPoint>,
}

/// One step within a bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepPoint {
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Facts about the run that are not in [`Results`].
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Wall time from the first scheduled start to the end of the drain.
    pub elapsed: Duration,
    pub interrupted: bool,
    pub iterations_interrupted: u64,
    pub warnings: Vec<String>,
}

fn ms<T: hdrhistogram::Counter>(h: &Histogram<T>, q: f64) -> f64 {
    round3(h.value_at_quantile(q) as f64 / 1000.0)
}

pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub(crate) fn percentiles(h: &Histogram<u64>) -> Option<Percentiles> {
    let s = |stat| stat_of(h, stat).unwrap_or_default();
    (!h.is_empty()).then(|| Percentiles {
        count: h.len(),
        min: s(Stat::Min),
        mean: s(Stat::Mean),
        p50: s(Stat::Quantile(0.5)),
        p90: s(Stat::Quantile(0.9)),
        p95: s(Stat::Quantile(0.95)),
        p99: s(Stat::Quantile(0.99)),
        p99_9: s(Stat::Quantile(0.999)),
        max: s(Stat::Max),
    })
}

fn stat_of(h: &Histogram<u64>, stat: Stat) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        Stat::Quantile(q) => ms(h, q),
        Stat::Max => round3(h.max() as f64 / 1000.0),
        Stat::Min => round3(h.min() as f64 / 1000.0),
        Stat::Mean => round3(h.mean() / 1000.0),
        Stat::Value => return None,
    })
}

pub(crate) fn rate(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

impl Summary {
    /// Builds the summary and evaluates the thresholds.
    pub fn build(config: &Config, r: &Results, facts: RunFacts) -> Summary {
        let elapsed = facts.elapsed.as_secs_f64().max(1e-9);
        let slow = |s: &SlowRequest| SlowSummary {
            step: r.step_names[s.step].clone(),
            latency_ms: round3(s.latency_us as f64 / 1000.0),
            trace_id: s.trace_id.to_string(),
            trace_url: config.report.trace_url(&s.trace_id.to_string()),
            status: s.status,
            outcome: s.outcome.as_str().to_string(),
            at_s: s.at_s_millis as f64 / 1000.0,
            trace: None,
        };
        let steps: Vec<StepSummary> = (0..r.steps.len()).map(|i| step_summary(r, i, elapsed, &slow)).collect();
        let mut all = hist_u64();
        for s in &r.steps {
            let _ = all.add(&s.latency);
        }
        let mut slowest: Vec<SlowRequest> = (0..r.steps.len()).flat_map(|i| r.slowest(i)).collect();
        slowest.sort_by(|a, b| b.cmp(a));
        slowest.truncate(config.report.slowest);
        let checks: Vec<CheckSummary> = r
            .checks
            .iter()
            .map(|((step, name), c)| CheckSummary {
                step: r.step_names[*step].clone(),
                name: name.to_string(),
                passes: c.passes,
                fails: c.fails,
            })
            .collect();
        let iterations = Iterations {
            started: r.iterations_started,
            completed: r.iterations_completed,
            failed: r.iterations_failed,
            interrupted: facts.iterations_interrupted,
            dropped: r.dropped,
        };
        let totals = totals(&steps, &checks, elapsed, iterations);
        let view = View {
            step_names: &r.step_names,
            step_latency: r.steps.iter().map(|s| &s.latency).collect(),
            all: &all,
            iterations: &r.iterations,
        };
        let thresholds: Vec<ThresholdResult> = config.thresholds.iter().map(|t| evaluate(t, observe(t, &view, &totals, &steps))).collect();
        let thresholds_passed = thresholds.iter().all(|t| t.passed);
        let mut warnings = facts.warnings;
        let histograms =
            serialize_histograms(r).map_err(|e| warnings.push(format!("{e}; summary.json has no histograms, so it cannot be merged"))).ok();
        Summary {
            schema: SCHEMA.to_string(),
            schema_version: SCHEMA_VERSION,
            scenario: config.scenario.clone(),
            description: config.description.clone(),
            started_at: facts.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: facts.finished_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            duration_s: round3(elapsed),
            interrupted: facts.interrupted,
            load: load_summary(&config.load),
            latency_origin: if config.load.is_open() { "intended_start" } else { "actual_start" }.to_string(),
            targets: config.targets.iter().map(|(k, t)| (k.clone(), t.url.clone())).collect(),
            totals,
            http_req_duration_ms: percentiles(&all),
            iteration_duration_ms: percentiles(&r.iterations),
            scheduling_lag_ms: percentiles(&r.lag),
            steps,
            checks,
            counters: r.counters.clone(),
            thresholds,
            thresholds_passed,
            slowest: slowest.iter().map(slow).collect(),
            timeseries: timeseries(r.interval.as_secs_f64(), &r.buckets, &r.step_names),
            warnings,
            exit_code: if thresholds_passed { 0 } else { 1 },
            histograms,
            merged_from: Vec::new(),
        }
    }

    /// Fetches the run-wide slowest requests' traces and log lines from the
    /// configured backends and attaches them; never fails (a request whose
    /// trace could not be fetched says why). A no-op when neither backend is set.
    pub async fn attach_traces(&mut self, backends: &Backends) {
        if backends.is_empty() || self.slowest.is_empty() {
            return;
        }
        let ids: Vec<String> = self.slowest.iter().map(|s| s.trace_id.clone()).collect();
        let mut details = trace::fetch(backends, &ids).await;
        for s in &mut self.slowest {
            s.trace = details.get(&s.trace_id).cloned();
        }
        details.clear();
    }

    /// Thresholds that failed, for messages.
    pub fn breached(&self) -> Vec<&ThresholdResult> {
        self.thresholds.iter().filter(|t| !t.passed).collect()
    }
}

fn step_summary(r: &Results, i: usize, elapsed: f64, slow: &impl Fn(&SlowRequest) -> SlowSummary) -> StepSummary {
    let s = &r.steps[i];
    let (requests, errors) = (s.requests(), s.errors());
    StepSummary {
        name: r.step_names[i].clone(),
        requests,
        errors,
        error_rate: rate(errors, requests),
        throughput_rps: round3(requests as f64 / elapsed),
        latency_ms: percentiles(&s.latency),
        outcomes: Outcome::ALL
            .iter()
            .filter(|o| s.outcomes[o.index()] > 0)
            .map(|o| (o.as_str().to_string(), s.outcomes[o.index()]))
            .collect(),
        status_codes: s.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        error_examples: s.error_examples.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect(),
        slowest: r.slowest(i).iter().map(slow).collect(),
    }
}

/// Iteration counts of a run (or the sums over merged parts).
pub(crate) struct Iterations {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub interrupted: u64,
    pub dropped: u64,
}

/// The run's totals: requests, errors and checks summed over `steps` and
/// `checks` (so a run and a merge of parts derive them the same way).
pub(crate) fn totals(steps: &[StepSummary], checks: &[CheckSummary], elapsed: f64, it: Iterations) -> Totals {
    let requests: u64 = steps.iter().map(|s| s.requests).sum();
    let errors: u64 = steps.iter().map(|s| s.errors).sum();
    let checks_passed: u64 = checks.iter().map(|c| c.passes).sum();
    let checks_failed: u64 = checks.iter().map(|c| c.fails).sum();
    Totals {
        requests,
        errors,
        error_rate: rate(errors, requests),
        throughput_rps: round3(requests as f64 / elapsed),
        iterations_started: it.started,
        iterations_completed: it.completed,
        iterations_failed: it.failed,
        iterations_interrupted: it.interrupted,
        dropped_iterations: it.dropped,
        checks_passed,
        checks_failed,
        check_failure_rate: rate(checks_failed, checks_passed + checks_failed),
    }
}

pub(crate) fn evaluate(t: &Threshold, observed: Option<f64>) -> ThresholdResult {
    ThresholdResult {
        expression: t.expression.clone(),
        metric: t.metric.as_str().to_string(),
        step: t.step.clone(),
        stat: t.stat.to_string(),
        op: t.op.as_str().to_string(),
        limit: t.limit,
        unit: t.unit().to_string(),
        observed,
        // No data is a failure: a rule about a step that never ran proves nothing.
        passed: observed.is_some_and(|v| t.holds(v)),
    }
}

/// One point per time bucket, all steps merged, plus each step that had requests.
pub(crate) fn timeseries(interval: f64, buckets: &[Bucket], step_names: &[String]) -> TimeSeries {
    let point = |i: usize, b: &Bucket| {
        let merged = b.merged();
        let some = !merged.is_empty();
        let steps = (b.steps.iter().zip(step_names))
            .filter(|((h, _), _)| !h.is_empty())
            .map(|((h, e), name)| {
                (name.clone(), StepPoint { requests: h.len(), errors: *e, p50_ms: Some(ms(h, 0.5)), p99_ms: Some(ms(h, 0.99)) })
            })
            .collect();
        Point {
            t_s: round3(i as f64 * interval),
            requests: merged.len(),
            errors: b.steps.iter().map(|(_, e)| e).sum(),
            rps: round3(merged.len() as f64 / interval),
            iterations_started: b.iterations_started,
            dropped: b.dropped,
            p50_ms: some.then(|| ms(&merged, 0.5)),
            p90_ms: some.then(|| ms(&merged, 0.9)),
            p99_ms: some.then(|| ms(&merged, 0.99)),
            max_ms: some.then(|| round3(merged.max() as f64 / 1000.0)),
            steps,
        }
    };
    TimeSeries { interval_s: interval, points: buckets.iter().enumerate().map(|(i, b)| point(i, b)).collect() }
}

/// The histograms a threshold is evaluated on.
pub(crate) struct View<'a> {
    pub step_names: &'a [String],
    /// Indexed like `step_names`.
    pub step_latency: Vec<&'a Histogram<u64>>,
    /// Every step's latency together.
    pub all: &'a Histogram<u64>,
    pub iterations: &'a Histogram<u64>,
}

pub(crate) fn observe(t: &Threshold, v: &View<'_>, totals: &Totals, steps: &[StepSummary]) -> Option<f64> {
    let step_idx = t.step.as_ref().and_then(|s| v.step_names.iter().position(|n| n == s));
    if t.step.is_some() && step_idx.is_none() {
        return None;
    }
    match t.metric {
        Metric::HttpReqDuration => match step_idx {
            Some(i) => stat_of(v.step_latency[i], t.stat),
            None => stat_of(v.all, t.stat),
        },
        Metric::IterationDuration => stat_of(v.iterations, t.stat),
        Metric::ErrorRate => match step_idx {
            Some(i) => (steps[i].requests > 0).then_some(steps[i].error_rate),
            None => (totals.requests > 0).then_some(totals.error_rate),
        },
        Metric::CheckFailureRate => (totals.checks_passed + totals.checks_failed > 0).then_some(totals.check_failure_rate),
        Metric::DroppedIterations => Some(totals.dropped_iterations as f64),
        Metric::HttpReqs => match step_idx {
            Some(i) => Some(steps[i].throughput_rps),
            None => Some(totals.throughput_rps),
        },
    }
}

pub(crate) fn load_summary(load: &Load) -> LoadSummary {
    let (rate, start_rate, stages, vus) = match load {
        Load::ConstantRate { rate, .. } => (Some(*rate), None, vec![], None),
        Load::RampingRate { start_rate, stages, .. } => {
            let stages = stages.iter().map(|s| StageSummary { duration_s: s.duration.as_secs_f64(), target: s.target }).collect();
            (None, Some(*start_rate), stages, None)
        }
        Load::Closed { vus, .. } => (None, None, vec![], Some(*vus)),
    };
    LoadSummary {
        model: load.kind().into(),
        rate,
        start_rate,
        stages,
        vus,
        duration_s: load.duration().as_secs_f64(),
        max_in_flight: load.max_in_flight(),
        graceful_stop_s: load.graceful_stop().as_secs_f64(),
    }
}
