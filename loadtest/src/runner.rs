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

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Client;
use crate::config::{Config, Load};
use crate::metrics::{self, Metrics, MetricsServer};
use crate::report::{RunFacts, Summary};
use crate::scenario::Plan;
use crate::schedule::Schedule;
use crate::stats::Recorder;

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
    // --- before any load -------------------------------------------------
    let used: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for s in config.flows.iter().flat_map(|f| &f.steps) {
            if let Some(t) = step_target(s)
                && !v.iter().any(|x| x == t)
            {
                v.push(t.to_string());
            }
        }
        v
    };
    let origins: Vec<(String, crate::config::Target)> = used.iter().map(|n| (n.clone(), config.targets[n].clone())).collect();
    let client =
        Client::resolve(&origins, &config.allow_hosts, config.http.timeout, config.http.connect_timeout).await.map_err(RunError::Setup)?;
    client.preflight().await.map_err(RunError::Setup)?;

    let step_names = config.step_names();
    let metrics = config.metrics.enabled.then(|| Arc::new(Metrics::new(&config.scenario, &step_names)));
    let server = match &metrics {
        Some(m) => Some(MetricsServer::start(config.metrics.listen, m.clone()).await.map_err(RunError::Setup)?),
        None => None,
    };
    // Last check before load, so a failed one above leaves no directory behind.
    prepare_out_dir(&opts.out_dir).map_err(RunError::Setup)?;
    let mut warnings = Vec::new();
    let registration = match (&server, &config.metrics.targets_dir) {
        (Some(srv), Some(setting)) => match metrics::resolve_targets_dir(setting) {
            Some(dir) => match metrics::register(&dir, srv.addr(), &config.scenario) {
                Ok(r) => Some(r),
                Err(e) => {
                    warnings.push(format!("not registered with Prometheus: {e}"));
                    None
                }
            },
            None => None,
        },
        _ => None,
    };
    if let (Some(srv), Some(cb)) = (&server, opts.on_metrics.take()) {
        cb(srv.addr());
    }

    // --- load ------------------------------------------------------------
    let schedule = Schedule::from_load(&config.load);
    let duration = config.load.duration();
    let interval = config.report.interval.unwrap_or_else(|| auto_interval(duration));
    let t0 = Instant::now();
    let started_at = chrono::Utc::now();
    let recorder = Arc::new(Recorder::new(t0, interval, step_names, config.report.slowest, metrics.clone()));
    let plan = Arc::new(Plan::new(config, &used, &opts.tokens, client, recorder.clone()));

    let stop = Arc::new(Stop { flag: AtomicBool::new(false), notify: Notify::new() });
    if let Some(fut) = opts.stop.take() {
        let stop = stop.clone();
        tokio::spawn(async move {
            fut.await;
            stop.trigger();
        });
    }
    let done = Arc::new(AtomicBool::new(false));
    let progress = Progress::new(opts.progress, duration);
    let ticker = {
        let (recorder, progress, done, metrics, schedule) =
            (recorder.clone(), progress.clone(), done.clone(), metrics.clone(), schedule.clone());
        let max_in_flight = match &config.load {
            Load::ConstantRate { max_in_flight, .. } | Load::RampingRate { max_in_flight, .. } => *max_in_flight,
            Load::Closed { .. } => 0,
        };
        tokio::spawn(async move {
            let mut warned_drops = 0u64;
            while !done.load(Ordering::Relaxed) {
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(t0);
                if let (Some(m), Some(s)) = (&metrics, &schedule) {
                    m.set_target_rate(s.rate_at(elapsed));
                }
                let live = recorder.live(now);
                if live.dropped > warned_drops {
                    if warned_drops == 0 {
                        progress.warn(&format!(
                            "warning: the target rate cannot be met: iterations are being dropped because {max_in_flight} are in flight (load.max_in_flight); latencies of dropped iterations are not measured"
                        ));
                    }
                    warned_drops = live.dropped;
                }
                progress.update(elapsed, &live);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if let Some(m) = &metrics {
                m.set_target_rate(0.0);
            }
        })
    };

    let exec = match (&config.load, &schedule) {
        (Load::ConstantRate { max_in_flight, graceful_stop, .. }, Some(s))
        | (Load::RampingRate { max_in_flight, graceful_stop, .. }, Some(s)) => {
            run_open(plan.clone(), s, t0, *max_in_flight as u64, *graceful_stop, &stop).await
        }
        (Load::Closed { vus, duration, graceful_stop }, _) => run_closed(plan.clone(), t0, *vus, *duration, *graceful_stop, &stop).await,
        _ => unreachable!("open loads always have a schedule"),
    };
    let elapsed = Instant::now().saturating_duration_since(t0);
    done.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    progress.finish();

    // --- outputs ---------------------------------------------------------
    let results = recorder.snapshot();
    if results.dropped > 0 {
        warnings.push(format!(
            "{} iterations were dropped: the target rate could not be met with load.max_in_flight; raise it or lower the rate",
            results.dropped
        ));
    }
    if exec.interrupted_iterations > 0 {
        warnings.push(format!("{} iterations were still running after load.graceful_stop and were cancelled", exec.interrupted_iterations));
    }
    if let Some(lag) = results.lag.len().gt(&0).then(|| results.lag.value_at_quantile(0.99)) {
        // The runner itself is late: its latencies include its own delay (still honest, but say so).
        if lag > 50_000 {
            warnings.push(format!(
                "the runner started iterations up to {} ms late (p99): it may be short of CPU; latencies include this delay",
                lag / 1000
            ));
        }
    }
    let facts = RunFacts {
        started_at,
        finished_at: chrono::Utc::now(),
        elapsed,
        interrupted: exec.stopped_early,
        iterations_interrupted: exec.interrupted_iterations,
        warnings,
    };
    let summary = Summary::build(config, &results, facts);
    let (json_path, html_path) = write_outputs(&opts.out_dir, &summary).map_err(RunError::Output)?;

    let metrics_addr = server.as_ref().map(MetricsServer::addr);
    if let Some(srv) = server {
        if !config.metrics.linger.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(config.metrics.linger) => {}
                _ = stop.notify.notified(), if !stop.stopped() => {}
            }
        }
        srv.stop().await;
    }
    let registered = registration.as_ref().map(|r| r.path().to_path_buf());
    drop(registration);
    Ok(RunOutcome { summary, json_path, html_path, metrics_addr, registered })
}

fn step_target(s: &crate::config::Step) -> Option<&str> {
    use crate::config::Step;
    match s {
        Step::ListCatalog { target, .. }
        | Step::PlaceOrder { target, .. }
        | Step::PollOrder { target, .. }
        | Step::ReadNotifications { target, .. }
        | Step::Http { target, .. } => Some(target),
        Step::Think { .. } => None,
    }
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

fn write_outputs(dir: &Path, s: &Summary) -> anyhow::Result<(PathBuf, PathBuf)> {
    use anyhow::Context;
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

/// Decrements the in-flight count however the iteration ends.
struct InFlight(Arc<Recorder>);
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
    let recorder = plan.recorder.clone();
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
        recorder.in_flight.fetch_add(1, Ordering::Relaxed);
        let (plan, guard) = (plan.clone(), InFlight(recorder.clone()));
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
                plan.recorder.in_flight.fetch_add(1, Ordering::Relaxed);
                let _guard = InFlight(plan.recorder.clone());
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

    fn update(&self, elapsed: Duration, live: &crate::stats::Live) {
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
