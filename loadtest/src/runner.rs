//! One run: checks before load, the open or closed executor, live progress,
//! and the outputs.
//!
//! Order matters: everything that can fail because of the config or the
//! environment (name resolution, reachability, the output directory, the
//! metrics port) is done before the first request, so such failures are exit
//! code 2 with nothing sent.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Client;
use crate::config::{Config, Load, Target};
use crate::metrics::{self, Metrics, MetricsServer, Registration};
use crate::report::{RunFacts, Summary};
use crate::scenario::Plan;
use crate::schedule::Schedule;
use crate::stats::{Live, Recorder, Results};

/// How to run, beyond the config.
pub struct RunOptions {
    /// Directory for `summary.json` and `report.html` (created if missing).
    pub out_dir: PathBuf,
    /// Show the live progress bar (the CLI turns it off in CI and without a TTY).
    pub progress: bool,
    /// Bearer tokens (from [`crate::config::load_tokens`]); may be empty when no step needs one.
    pub tokens: Vec<String>,
    /// Resolves when the run should stop early (Ctrl-C); the report is still written.
    pub stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Called with the `/metrics` address once it listens (tests scrape it mid-run).
    pub on_metrics: Option<Box<dyn FnOnce(SocketAddr) + Send>>,
}

impl RunOptions {
    /// Options for a quiet run writing into `out_dir`.
    pub fn new(out_dir: impl Into<PathBuf>) -> RunOptions {
        RunOptions { out_dir: out_dir.into(), progress: false, tokens: Vec::new(), stop: None, on_metrics: None }
    }
}

/// Why a run did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Found before any request was sent (exit code 2).
    #[error("{0}")]
    Setup(String),
    /// Writing the outputs failed after the load (exit code 3).
    #[error("{0:#}")]
    Output(anyhow::Error),
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    pub json_path: PathBuf,
    pub html_path: PathBuf,
    /// Where `/metrics` listened (if enabled).
    pub metrics_addr: Option<SocketAddr>,
    /// The file-SD registration written for the run (already removed).
    pub registered: Option<PathBuf>,
}

impl RunOutcome {
    /// 0 when every threshold passed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        self.summary.exit_code
    }
}

/// Set once to stop scheduling; iterations already running finish.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn stopped(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
    fn trigger(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
    }
}

/// Runs the scenario and writes the reports.
pub async fn run(config: &Config, mut opts: RunOptions) -> Result<RunOutcome, RunError> {
    let used = config.used_targets();
    let mut setup = Setup::prepare(config, &used, &mut opts).await?;

    // --- load ------------------------------------------------------------
    let schedule = Schedule::from_load(&config.load);
    let duration = config.load.duration();
    let interval = config.report.interval.unwrap_or_else(|| auto_interval(duration));
    let t0 = Instant::now();
    let started_at = chrono::Utc::now();
    let recorder = Arc::new(Recorder::new(t0, interval, config.step_names(), config.report.slowest, setup.metrics.clone()));
    let plan = Arc::new(Plan::new(config, &used, &opts.tokens, setup.client, recorder.clone()));
    let stop = Arc::new(Stop::default());
    if let Some(fut) = opts.stop.take() {
        let stop = stop.clone();
        tokio::spawn(async move {
            fut.await;
            stop.trigger();
        });
    }
    let progress = Progress::new(opts.progress, duration);
    let ticker =
        tokio::spawn(tick(recorder.clone(), progress.clone(), setup.metrics.clone(), schedule.clone(), t0, config.load.max_in_flight()));
    let exec = match (&config.load, &schedule) {
        (Load::Closed { vus, duration, graceful_stop }, _) => run_closed(plan, t0, *vus, *duration, *graceful_stop, &stop).await,
        (open, Some(s)) => run_open(plan, s, t0, open.max_in_flight().unwrap_or(0).into(), open.graceful_stop(), &stop).await,
        (_, None) => unreachable!("open loads always have a schedule"),
    };
    let elapsed = Instant::now().saturating_duration_since(t0);
    ticker.abort();
    let _ = ticker.await;
    if let Some(m) = &setup.metrics {
        m.set_target_rate(0.0);
    }
    progress.finish();

    // --- outputs ---------------------------------------------------------
    let results = recorder.snapshot();
    setup.warnings.extend(load_warnings(&results, &exec));
    let facts = RunFacts {
        started_at,
        finished_at: chrono::Utc::now(),
        elapsed,
        interrupted: exec.stopped_early,
        iterations_interrupted: exec.interrupted_iterations,
        warnings: setup.warnings,
    };
    let mut summary = Summary::build(config, &results, facts);
    let backends = crate::trace::Backends::from_settings(&config.report);
    if opts.progress && !backends.is_empty() && !summary.slowest.is_empty() {
        eprintln!("fetching the slowest requests' traces and logs (up to {})", crate::config::format_duration(backends.wait));
    }
    summary.attach_traces(&backends).await;
    let (json_path, html_path) = write_outputs(&opts.out_dir, &summary).map_err(RunError::Output)?;

    let metrics_addr = setup.server.as_ref().map(MetricsServer::addr);
    if let Some(srv) = setup.server {
        if !config.metrics.linger.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(config.metrics.linger) => {}
                _ = stop.notify.notified(), if !stop.stopped() => {}
            }
        }
        srv.stop().await;
    }
    // Dropping the registration removes its file.
    let registered = setup.registration.map(|r| r.path().to_path_buf());
    Ok(RunOutcome { summary, json_path, html_path, metrics_addr, registered })
}

/// Everything that can fail because of the config or the environment, done
/// before the first request.
struct Setup {
    client: Client,
    metrics: Option<Arc<Metrics>>,
    server: Option<MetricsServer>,
    registration: Option<Registration>,
    warnings: Vec<String>,
}

impl Setup {
    /// Resolves and reaches the `used` targets, starts `/metrics`, prepares the
    /// output directory and registers with Prometheus (a failure to register
    /// is only a warning).
    async fn prepare(config: &Config, used: &[String], opts: &mut RunOptions) -> Result<Setup, RunError> {
        let origins: Vec<(String, Target)> = used.iter().map(|n| (n.clone(), config.targets[n].clone())).collect();
        let http = &config.http;
        let client = Client::resolve(&origins, &config.allow_hosts, http.timeout, http.connect_timeout).await.map_err(RunError::Setup)?;
        client.preflight().await.map_err(RunError::Setup)?;
        let metrics = config.metrics.enabled.then(|| Arc::new(Metrics::new(&config.scenario, &config.step_names())));
        let server = match &metrics {
            Some(m) => Some(MetricsServer::start(config.metrics.listen, m.clone()).await.map_err(RunError::Setup)?),
            None => None,
        };
        // Last check before load, so a failed one above leaves no directory behind.
        prepare_out_dir(&opts.out_dir).map_err(RunError::Setup)?;
        let mut warnings = Vec::new();
        let dir = config.metrics.targets_dir.as_ref().filter(|_| server.is_some()).and_then(metrics::resolve_targets_dir);
        let registration = match (&server, dir) {
            (Some(srv), Some(dir)) => match metrics::register(&dir, srv.addr(), &config.scenario) {
                Ok(r) => Some(r),
                Err(e) => {
                    warnings.push(format!("not registered with Prometheus: {e}"));
                    None
                }
            },
            _ => None,
        };
        if let (Some(srv), Some(cb)) = (&server, opts.on_metrics.take()) {
            cb(srv.addr());
        }
        Ok(Setup { client, metrics, server, registration, warnings })
    }
}

/// Four times a second while the load runs: the target-rate gauge, the
/// progress line, and one warning when arrivals start being dropped.
async fn tick(
    recorder: Arc<Recorder>,
    progress: Progress,
    metrics: Option<Arc<Metrics>>,
    schedule: Option<Schedule>,
    t0: Instant,
    max_in_flight: Option<u32>,
) {
    let mut warned = false;
    loop {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(t0);
        if let (Some(m), Some(s)) = (&metrics, &schedule) {
            m.set_target_rate(s.rate_at(elapsed));
        }
        let live = recorder.live(now);
        if live.dropped > 0 && !warned {
            warned = true;
            progress.warn(&format!(
                "warning: the target rate cannot be met: iterations are being dropped because {} are in flight (load.max_in_flight); latencies of dropped iterations are not measured",
                max_in_flight.unwrap_or(0)
            ));
        }
        progress.update(elapsed, &live);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the report should say about how the load went.
fn load_warnings(results: &Results, exec: &ExecResult) -> Vec<String> {
    let mut warnings = Vec::new();
    if results.dropped > 0 {
        warnings.push(format!(
            "{} iterations were dropped: the target rate could not be met with load.max_in_flight; raise it or lower the rate",
            results.dropped
        ));
    }
    if exec.interrupted_iterations > 0 {
        warnings.push(format!("{} iterations were still running after load.graceful_stop and were cancelled", exec.interrupted_iterations));
    }
    // The runner itself is late: its latencies include its own delay (still honest, but say so).
    let lag_p99 = if results.lag.is_empty() { 0 } else { results.lag.value_at_quantile(0.99) };
    if lag_p99 > 50_000 {
        warnings.push(format!(
            "the runner started iterations up to {} ms late (p99): it may be short of CPU; latencies include this delay",
            lag_p99 / 1000
        ));
    }
    warnings
}

/// One-second buckets up to five minutes, then at most ~300 buckets.
fn auto_interval(duration: Duration) -> Duration {
    let secs = (duration.as_secs_f64() / 300.0).ceil().max(1.0);
    Duration::from_secs_f64(secs)
}

fn prepare_out_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--out {}: cannot create the directory: {e}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| format!("--out {}: not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes `summary.json` and `report.html` into `dir` (created if missing).
pub fn write_outputs(dir: &Path, s: &Summary) -> anyhow::Result<(PathBuf, PathBuf)> {
    let json_path = dir.join("summary.json");
    let html_path = dir.join("report.html");
    let json = serde_json::to_string_pretty(s).context("serialize the summary")?;
    std::fs::write(&json_path, json + "\n").with_context(|| format!("write {}", json_path.display()))?;
    std::fs::write(&html_path, crate::html::render(s)).with_context(|| format!("write {}", html_path.display()))?;
    Ok((json_path, html_path))
}

struct ExecResult {
    stopped_early: bool,
    interrupted_iterations: u64,
}

/// Counts an iteration in flight until dropped, however the iteration ends.
struct InFlight(Arc<Recorder>);

impl InFlight {
    fn enter(recorder: &Arc<Recorder>) -> InFlight {
        recorder.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(recorder.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open model: start iteration `i` at `t0 + schedule.arrival(i)` whatever the
/// target does; when `max_in_flight` iterations are running, count it as
/// dropped instead of waiting (waiting would hide the target's slowness).
async fn run_open(
    plan: Arc<Plan>,
    schedule: &Schedule,
    t0: Instant,
    max_in_flight: u64,
    graceful_stop: Duration,
    stop: &Stop,
) -> ExecResult {
    let recorder = &plan.recorder;
    let mut set = JoinSet::new();
    let mut stopped_early = false;
    for (i, offset) in schedule.arrivals().enumerate() {
        if stop.stopped() {
            stopped_early = true;
            break;
        }
        let intended = t0 + offset;
        if intended > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(intended) => {}
                _ = stop.notify.notified() => { stopped_early = true; break; }
            }
        } else if i % 64 == 63 {
            // Behind schedule: let running iterations make progress too.
            tokio::task::yield_now().await;
        }
        while set.try_join_next().is_some() {}
        if recorder.in_flight.load(Ordering::Relaxed) >= max_in_flight {
            recorder.dropped(intended);
            continue;
        }
        let (plan, guard) = (plan.clone(), InFlight::enter(recorder));
        set.spawn(async move {
            let _guard = guard;
            plan.iteration(intended, true).await;
        });
    }
    let interrupted_iterations = drain(&mut set, graceful_stop, stop).await;
    ExecResult { stopped_early, interrupted_iterations }
}

/// Closed model: `vus` loops, each starting its next iteration when the last
/// one ends. Latency is measured from the actual send, so a stalled target
/// makes the loops wait and the stall is under-sampled (coordinated omission);
/// the report says so.
async fn run_closed(plan: Arc<Plan>, t0: Instant, vus: u32, duration: Duration, graceful_stop: Duration, stop: &Stop) -> ExecResult {
    let end = t0 + duration;
    let quit = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    for _ in 0..vus {
        let (plan, quit) = (plan.clone(), quit.clone());
        set.spawn(async move {
            while Instant::now() < end && !quit.load(Ordering::Relaxed) {
                let _guard = InFlight::enter(&plan.recorder);
                plan.iteration(Instant::now(), false).await;
            }
        });
    }
    let mut stopped_early = false;
    tokio::select! {
        _ = tokio::time::sleep_until(end) => {}
        _ = stop.notify.notified() => { stopped_early = true; }
    }
    quit.store(true, Ordering::Relaxed);
    let interrupted_iterations = drain(&mut set, graceful_stop, stop).await;
    ExecResult { stopped_early, interrupted_iterations }
}

/// Waits up to `grace` for running iterations, then cancels the rest and
/// returns how many were cancelled.
async fn drain(set: &mut JoinSet<()>, grace: Duration, stop: &Stop) -> u64 {
    let deadline = Instant::now() + grace;
    loop {
        if set.is_empty() {
            return 0;
        }
        tokio::select! {
            r = set.join_next() => { if r.is_none() { return 0; } }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = stop.notify.notified(), if !stop.stopped() => break,
        }
    }
    let n = set.len() as u64;
    set.abort_all();
    while set.join_next().await.is_some() {}
    n
}

/// The live progress line; a no-op when hidden.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(show: bool, duration: Duration) -> Progress {
        if !show {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(duration.as_millis() as u64), ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Progress { bar: Some(bar) }
    }

    fn update(&self, elapsed: Duration, live: &Live) {
        if let Some(b) = &self.bar {
            b.set_position(elapsed.as_millis() as u64);
            b.set_message(format!(
                "{:.1} req/s  p99 {:.1} ms  errors {}  in flight {}  dropped {}",
                live.recent_rate, live.recent_p99_ms, live.errors, live.in_flight, live.dropped
            ));
        }
    }

    fn warn(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
