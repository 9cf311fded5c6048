//! The runner's own Prometheus metrics (`loadtest_*`, see telemetry/METRICS.md),
//! the loopback `/metrics` endpoint, and the file-SD registration that makes
//! the local stack's Prometheus scrape it.
//!
//! Families are registered once and every per-step handle is created before
//! the run, so recording a sample never hashes a label set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::TargetsDir;
use crate::sample::{Outcome, TraceId};

/// Bucket bounds (seconds) of `loadtest_request_duration_seconds`.
pub const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

type Labels = Vec<(String, String)>;

/// Exemplar label: the trace of the request, so a slow bucket links to Jaeger.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabel {
    trace_id: String,
}

/// Handles to the `loadtest_*` families.
pub struct Metrics {
    registry: Registry,
    /// `[step][outcome]`.
    requests: Vec<[Counter; 7]>,
    durations: Vec<HistogramWithExemplars<TraceLabel>>,
    dropped: Counter,
    target_rate: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Registers the families for `scenario` and pre-creates one series per step (and outcome).
    pub fn new(scenario: &str, steps: &[String]) -> Metrics {
        let mut registry = Registry::default();
        let requests_f = Family::<Labels, Counter>::default();
        let durations_f = Family::<Labels, HistogramWithExemplars<TraceLabel>>::new_with_constructor(
            (|| HistogramWithExemplars::new(BUCKETS.into_iter())) as fn() -> HistogramWithExemplars<TraceLabel>,
        );
        let dropped_f = Family::<Labels, Counter>::default();
        let rate_f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register("loadtest_requests", "Requests the load runner completed, by step and outcome", requests_f.clone());
        registry.register(
            "loadtest_request_duration_seconds",
            "Request latency seen by the load runner (from the intended start in open models)",
            durations_f.clone(),
        );
        registry.register(
            "loadtest_dropped_iterations",
            "Iterations the open model could not start because max_in_flight was reached",
            dropped_f.clone(),
        );
        registry.register(
            "loadtest_target_rate",
            "Iterations per second the open model is asked to start now (0 for the closed model)",
            rate_f.clone(),
        );
        let l = |pairs: &[(&str, &str)]| -> Labels { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let requests = steps
            .iter()
            .map(|step| {
                Outcome::ALL.map(|o| requests_f.get_or_create_owned(&l(&[("scenario", scenario), ("step", step), ("outcome", o.as_str())])))
            })
            .collect();
        let durations = steps.iter().map(|step| durations_f.get_or_create_owned(&l(&[("scenario", scenario), ("step", step)]))).collect();
        let dropped = dropped_f.get_or_create_owned(&l(&[("scenario", scenario)]));
        let target_rate = rate_f.get_or_create_owned(&l(&[("scenario", scenario)]));
        Metrics { registry, requests, durations, dropped, target_rate }
    }

    /// Counts and times one request.
    pub fn observe(&self, step: usize, outcome: Outcome, latency: Duration, trace: TraceId) {
        self.requests[step][outcome.index()].inc();
        self.durations[step].observe(latency.as_secs_f64(), Some(TraceLabel { trace_id: trace.to_string() }), None);
    }

    /// Counts one dropped iteration.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// Sets the current target rate.
    pub fn set_target_rate(&self, rate: f64) {
        self.target_rate.set(rate);
    }

    /// OpenMetrics text of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The running `/metrics` endpoint; stops when dropped or on [`MetricsServer::stop`].
pub struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // Stops accepting even when the run ends early with an error.
        let _ = self.stop.send(true);
    }
}

impl MetricsServer {
    /// Binds `listen` (loopback; port 0 picks one) and serves `GET /metrics`.
    pub async fn start(listen: SocketAddr, metrics: Arc<Metrics>) -> Result<MetricsServer, String> {
        let listener = TcpListener::bind(listen).await.map_err(|e| format!("metrics.listen: cannot bind {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("metrics.listen: {e}"))?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let m = metrics.clone();
                        tokio::spawn(async move {
                            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                                let m = m.clone();
                                async move { Ok::<_, std::convert::Infallible>(answer(&req, &m)) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                }
            }
        });
        Ok(MetricsServer { addr, stop, task })
    }

    /// The bound address (the port is the real one when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; connections in progress finish on their own.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

fn answer(req: &http::Request<hyper::body::Incoming>, m: &Metrics) -> Response<Full<Bytes>> {
    let mut builder = Response::builder();
    if req.uri().path() == "/metrics" && req.method() == http::Method::GET {
        builder =
            builder.status(StatusCode::OK).header(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8");
        builder.body(Full::new(Bytes::from(m.encode()))).unwrap_or_default()
    } else {
        builder.status(StatusCode::NOT_FOUND).body(Full::new(Bytes::from_static(b"not found\n"))).unwrap_or_default()
    }
}

/// A file-SD registration; the file is removed when this is dropped.
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
}

impl Registration {
    /// Path of the written file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Finds the directory to register in: an explicit one, or for `auto` the
/// local stack's `etc/prometheus/targets/loadtest` (from `$GLASSHOUSE_HOME`,
/// else `deploy/local/stack home` found from the working directory upwards).
/// `None` when there is no stack; the run goes on without registering.
pub fn resolve_targets_dir(setting: &TargetsDir) -> Option<PathBuf> {
    match setting {
        TargetsDir::Dir(p) => Some(p.clone()),
        TargetsDir::Auto => {
            let home = std::env::var_os("GLASSHOUSE_HOME").map(PathBuf::from).or_else(stack_home)?;
            let dir = home.join("etc/prometheus/targets/loadtest");
            dir.is_dir().then_some(dir)
        }
    }
}

fn stack_home() -> Option<PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let script = dir.join("deploy/local/stack");
        if script.is_file() {
            let out = std::process::Command::new("bash").arg(&script).arg("home").output().ok()?;
            let home = String::from_utf8(out.stdout).ok()?.trim().to_string();
            return (out.status.success() && !home.is_empty()).then(|| PathBuf::from(home));
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Writes `<dir>/<scenario>-<pid>.json` (Prometheus file-SD format) atomically.
pub fn register(dir: &Path, addr: SocketAddr, scenario: &str) -> Result<Registration, String> {
    let path = dir.join(format!("{scenario}-{}.json", std::process::id()));
    // No target labels: the series carry `scenario` themselves, and a target
    // label of the same name would rename theirs to `exported_scenario`.
    let body = serde_json::json!([{ "targets": [addr.to_string()], "labels": {} }]);
    let tmp = dir.join(format!(".{scenario}-{}.json.tmp", std::process::id()));
    std::fs::write(&tmp, body.to_string())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write Prometheus target file {}: {e}", path.display()))?;
    Ok(Registration { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_contract_families() {
        let m = Metrics::new("s", &["place_order".into()]);
        m.observe(0, Outcome::Success, Duration::from_millis(12), TraceId(7));
        m.observe(0, Outcome::Timeout, Duration::from_secs(5), TraceId(8));
        m.dropped();
        m.set_target_rate(5.0);
        let text = m.encode();
        for needle in [
            "# TYPE loadtest_requests counter",
            "loadtest_requests_total{scenario=\"s\",step=\"place_order\",outcome=\"success\"} 1",
            "loadtest_requests_total{scenario=\"s\",step=\"place_order\",outcome=\"timeout\"} 1",
            "# TYPE loadtest_request_duration_seconds histogram",
            "loadtest_request_duration_seconds_bucket{le=\"0.025\",scenario=\"s\",step=\"place_order\"} 1 # {trace_id=\"00000000000000000000000000000007\"} 0.012",
            "loadtest_dropped_iterations_total{scenario=\"s\"} 1",
            "loadtest_target_rate{scenario=\"s\"} 5.0",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    /// The "Load runner families" table of telemetry/METRICS.md is what `/metrics` serves:
    /// every family with its type and exactly its labels.
    #[test]
    fn matches_the_naming_contract() {
        use glasshouse_telemetry::contract::{METRICS_MD, MetricKind, parse_metrics_md};
        let specs = parse_metrics_md(METRICS_MD).expect("telemetry/METRICS.md is a readable contract");
        let rows: Vec<_> = specs.iter().filter(|s| s.name.starts_with("loadtest_")).collect();
        assert_eq!(rows.len(), 4, "METRICS.md lists four loadtest families: {rows:?}");
        let m = Metrics::new("s", &["a".into()]);
        m.observe(0, Outcome::Success, Duration::from_millis(1), TraceId(1));
        let text = m.encode();
        for spec in rows {
            let (name, family, kind) = (&spec.name, spec.family_name(), spec.kind.as_str());
            assert!(text.contains(&format!("# TYPE {family} {kind}\n")), "{name}: no `# TYPE {family} {kind}` in\n{text}");
            let series = if spec.kind == MetricKind::Histogram { format!("{name}_count{{") } else { format!("{name}{{") };
            let line = text.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no series of {name}"));
            let inside = &line[series.len()..line.find('}').unwrap()];
            let mut got: Vec<String> = inside.split(',').map(|kv| kv.split('=').next().unwrap().to_string()).collect();
            let want: Vec<String> = spec.label_names().into_iter().collect();
            got.sort();
            assert_eq!(got, want, "{name}: labels");
        }
    }
}
