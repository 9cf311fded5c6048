//! Running a service: the shutdown signal, the draining HTTP server, and the
//! lifecycle every service shares ([`ServiceBuilder`] -> [`App`]).
//!
//! A service's `app.rs` only builds its parts (its API, its consumers, its
//! relay, its fault flags, its own background tasks) and hands them to a [`ServiceBuilder`];
//! [`App::run_until_stopped`] runs them under supervision
//! ([`crate::supervise`]: a task that dies fails readiness, is logged,
//! counted and restarted) and stops them in this order:
//!
//! 1. the [`Shutdown`] signal flips (SIGTERM/SIGINT via [`run_main`], or a test);
//! 2. the HTTP server stops accepting and drains in-flight requests (bounded
//!    by `http.drain_ms`);
//! 3. the work tasks (consumer loops, watchers) see the same signal: a
//!    consumer finishes the message in hand, commits its transaction and its
//!    offset, and returns;
//! 4. only then are the *last* tasks (the outbox relay) told to stop, so the
//!    events committed by the last requests and the last consumed messages
//!    are published before the process exits, not at its next start;
//! 5. the `on_stop` hooks run (closing pools), then telemetry is flushed by `run_main`.
//!
//! Each step is bounded: a task still running [`STOP_GRACE`] after its stop
//! signal is abandoned with an error log (its work is redone at the next start:
//! offsets and outbox rows are only advanced after the work they stand for).
//!
//! # Migrate mode
//!
//! `glasshouse-<service> migrate` (the chart's pre-install/pre-upgrade Job) runs
//! the service's start-up preparations and exits 0 without serving: its `build`
//! connects, applies the migrations (sqlx; notification's MongoDB indexes),
//! ensures the Kafka topics, then [`ServiceBuilder::build`] stops before binding
//! the port ([`MigrationsDone`]) and [`run_main`] exits 0. Nothing listens and no
//! background task starts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::health::{HealthCheck, HealthChecks};
use poem::Response;
use poem::endpoint::BoxEndpoint;
use poem_openapi::{OpenApi, OpenApiService};
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::consumer::{ConsumerConfig, ConsumerLoop, MessageHandler};
use crate::faults::{FaultMetrics, FaultSettings, FaultWatcher, Faults};
use crate::outbox::{OutboxDb, Relay, RelayConfig};
use crate::prune::{PruneTable, Pruner};
use crate::settings::HttpSettings;
use crate::supervise::{TaskFn, TaskHealth, supervise};

/// A cloneable shutdown signal: `trigger()` once, every `wait()` returns.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self { tx: watch::channel(false).0 }
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A receiver for loops that `select!` on `changed()`.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Resolves once triggered (immediately if it already was).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Triggers on SIGTERM or SIGINT (Ctrl-C): call once from `main`.
    pub fn on_signals(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = tokio::signal::ctrl_c().await;
                        me.trigger();
                        return;
                    }
                };
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            me.trigger();
        });
    }
}

/// The body of every service's `main`: settings from `config_dir` (exit 64
/// naming the key when invalid), telemetry for `name`, build, run until
/// SIGTERM/SIGINT, then flush telemetry, whatever happened.
pub async fn run_main<S, A, B, Fut>(
    name: &str,
    config_dir: &str,
    telemetry_of: impl FnOnce(&S) -> &glasshouse_telemetry::TelemetryConfig,
    build: B,
) -> anyhow::Result<()>
where
    S: serde::de::DeserializeOwned,
    A: Into<App>,
    B: FnOnce(S, glasshouse_telemetry::Metrics) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<A>>,
{
    let mode = parse_mode(std::env::args().skip(1)).unwrap_or_else(|msg| {
        eprintln!("{name}: {msg}");
        std::process::exit(crate::config::EX_USAGE);
    });
    MIGRATE_ONLY.store(mode == Mode::Migrate, Ordering::SeqCst);
    let settings: S = crate::config::load_or_exit(config_dir);
    let telemetry = glasshouse_telemetry::init(name, telemetry_of(&settings))?;
    let app: App = match build(settings, telemetry.metrics().clone()).await {
        Ok(app) => app.into(),
        Err(e) if e.chain().any(|c| c.is::<MigrationsDone>()) => {
            tracing::info!(service = name, "migrate mode: migrations applied; exiting without serving");
            telemetry.shutdown().await;
            return Ok(());
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), service = name, "failed to start");
            telemetry.shutdown().await;
            return Err(e);
        }
    };
    app.shutdown_handle().on_signals();
    let result = app.run_until_stopped().await;
    telemetry.shutdown().await;
    result
}

/// What the process was asked to do (its command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No argument: serve until SIGTERM/SIGINT.
    Serve,
    /// `migrate`: migrate, then exit 0 without serving (module doc).
    Migrate,
}

/// The mode from the arguments after the program name; `Err` names the bad one.
pub fn parse_mode<I: IntoIterator<Item = String>>(args: I) -> Result<Mode, String> {
    let args: Vec<String> = args.into_iter().collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => Ok(Mode::Serve),
        ["migrate"] => Ok(Mode::Migrate),
        _ => Err(format!("unexpected arguments {args:?}; usage: no argument (serve) or `migrate` (apply migrations, then exit)")),
    }
}

/// Set once by [`run_main`] in [`Mode::Migrate`]; read by [`ServiceBuilder::build`].
static MIGRATE_ONLY: AtomicBool = AtomicBool::new(false);

/// Returned (as an error) by [`ServiceBuilder::build`] in migrate mode: the
/// service's `build` has run its migrations and must not serve. [`run_main`]
/// turns it into exit 0; a service's `build` passes it on with `?`.
#[derive(Debug, thiserror::Error)]
#[error("migrate mode: migrations applied, not serving")]
pub struct MigrationsDone;

/// How long a task may take to stop after its stop signal before it is
/// abandoned (logged; its unfinished work is redone at the next start).
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// When a background task is told to stop (see the module doc for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Stops with the HTTP server: consumers, watchers, gauges.
    Work,
    /// Stops after every work task has returned: the outbox relay.
    Last,
}

struct TaskSpec {
    name: String,
    stage: Stage,
    body: Arc<TaskFn>,
}

/// Collects a service's parts; [`ServiceBuilder::build`] binds the port and
/// returns the runnable [`App`]. Nothing runs before `run_until_stopped`.
pub struct ServiceBuilder {
    name: &'static str,
    metrics: Metrics,
    http: HttpSettings,
    checks: HealthChecks,
    tasks: Vec<TaskSpec>,
    on_stop: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl ServiceBuilder {
    /// `name` is the service name in logs; `metrics` the process registry;
    /// `http` where to listen and how long to drain.
    pub fn new(name: &'static str, metrics: &Metrics, http: &HttpSettings) -> Self {
        Self { name, metrics: metrics.clone(), http: http.clone(), checks: HealthChecks::new(), tasks: Vec::new(), on_stop: Vec::new() }
    }

    /// Adds a readiness check (database ping, Kafka metadata).
    pub fn check(mut self, check: impl HealthCheck + 'static) -> Self {
        self.checks = self.checks.with(check);
        self
    }

    /// A supervised background task stopped together with the HTTP server.
    /// `body` is called again for each restart after the task died.
    pub fn task<F, Fut>(self, name: impl Into<String>, body: F) -> Self
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.add(name.into(), Stage::Work, body)
    }

    /// A supervised task stopped last, after every [`ServiceBuilder::task`]
    /// and consumer returned: the outbox relay, which must publish what the
    /// last requests and consumed messages committed.
    pub fn last_task<F, Fut>(self, name: impl Into<String>, body: F) -> Self
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.add(name.into(), Stage::Last, body)
    }

    fn add<F, Fut>(mut self, name: String, stage: Stage, body: F) -> Self
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let body: TaskFn = Box::new(move |stop| Box::pin(body(stop)));
        self.tasks.push(TaskSpec { name, stage, body: Arc::new(body) });
        self
    }

    /// A Kafka consumer loop over `config.topics` with `handler`. The first
    /// loop is created (and subscribed) now, so bad settings fail the start;
    /// a restart after the loop died creates a fresh one.
    pub fn consumer(self, config: ConsumerConfig, handler: Arc<dyn MessageHandler>) -> anyhow::Result<Self> {
        let standard = self.metrics.standard.clone();
        let first = ConsumerLoop::new(config.clone(), handler.clone(), standard.clone())?;
        let slot = Mutex::new(Some(first));
        let name = format!("consumer {}", config.topics.join(","));
        Ok(self.task(name, move |stop| {
            let ready = slot.lock().ok().and_then(|mut s| s.take());
            let made = match ready {
                Some(c) => Ok(c),
                None => ConsumerLoop::new(config.clone(), handler.clone(), standard.clone()),
            };
            async move { made?.run(stop).await }
        }))
    }

    /// The outbox relay over `db`, stopped last (see the module doc).
    pub fn relay(self, db: OutboxDb, producer: rdkafka::producer::FutureProducer, config: RelayConfig) -> Self {
        let standard = self.metrics.standard.clone();
        self.last_task("outbox-relay", move |stop| {
            let relay = Relay::new(db.clone(), producer.clone(), standard.clone(), config.clone());
            async move { relay.run(stop).await }
        })
    }

    /// Keeps `faults` (the service's flag handle, [`Faults::new`] over its
    /// specs) in step with the flag file of `settings`: registers
    /// `fault_flag_active` and `fault_flags_file`, loads the file once now (so
    /// the flags hold from the first request; an unresolvable path fails the
    /// start), and, when a file is configured, watches it in a supervised
    /// `fault-flag-watcher` task (a restart after it died builds a fresh
    /// watcher from the settings). Call once per service.
    pub fn faults(self, settings: &FaultSettings, faults: Faults) -> anyhow::Result<Self> {
        let metrics = FaultMetrics::register(&self.metrics);
        let first = FaultWatcher::from_settings(settings, faults.clone(), metrics.clone())?;
        if !first.has_file() {
            return Ok(self);
        }
        let (settings, slot) = (settings.clone(), Mutex::new(Some(first)));
        Ok(self.task("fault-flag-watcher", move |stop| {
            let ready = slot.lock().ok().and_then(|mut s| s.take());
            let watcher = match ready {
                Some(w) => Ok(w),
                None => FaultWatcher::from_settings(&settings, faults.clone(), metrics.clone()),
            };
            async move { watcher?.run(stop).await }
        }))
    }

    /// A [`Pruner`] over `tables` of `db` (see [`crate::prune`] for the
    /// retentions and why a batch never holds a long lock).
    pub fn pruner(self, db: OutboxDb, tables: Vec<PruneTable>) -> Self {
        let standard = self.metrics.standard.clone();
        self.task("pruner", move |stop| Pruner::new(db.clone(), standard.clone(), tables.clone()).run(stop))
    }

    /// Runs after every task has stopped (close pools, flush caches).
    pub fn on_stop(mut self, hook: impl Future<Output = ()> + Send + 'static) -> Self {
        self.on_stop.push(Box::pin(hook));
        self
    }

    /// Binds the port and assembles the HTTP surface around `api`
    /// ([`crate::service::http_app`], with the `tasks` readiness check added).
    pub fn build<T: OpenApi + crate::contract::ApiContract + 'static>(
        self,
        api: OpenApiService<T, ()>,
        authenticator: Authenticator,
    ) -> anyhow::Result<App> {
        if MIGRATE_ONLY.load(Ordering::SeqCst) {
            // Everything before this (connect, migrate, topics, indexes) has run; bind nothing.
            return Err(MigrationsDone.into());
        }
        let health = TaskHealth::register(&self.metrics);
        let checks = self.checks.with(health.clone());
        let endpoint = crate::service::http_app(api, checks, &self.metrics, authenticator, &self.http);
        let listener = self.http.bind()?;
        let port = listener.local_addr()?.port();
        Ok(App {
            name: self.name,
            listener,
            port,
            endpoint,
            tasks: self.tasks,
            on_stop: self.on_stop,
            health,
            shutdown: Shutdown::new(),
            drain: self.http.drain(),
        })
    }
}

/// A built, not yet running, service: the bound port, the HTTP surface, the
/// supervised tasks. Each service's `Application` wraps one.
pub struct App {
    name: &'static str,
    listener: std::net::TcpListener,
    port: u16,
    endpoint: BoxEndpoint<'static, Response>,
    tasks: Vec<TaskSpec>,
    on_stop: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
    health: TaskHealth,
    shutdown: Shutdown,
    drain: Duration,
}

impl App {
    /// The bound HTTP port (the one picked when the settings said 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Trigger it to stop the service (`run_main` wires SIGTERM/SIGINT to it).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The state of the background tasks (also behind `/health/ready`).
    pub fn task_health(&self) -> TaskHealth {
        self.health.clone()
    }

    /// Runs until shutdown, then stops in the order of the module doc.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { name, listener, endpoint, tasks, on_stop, health, shutdown, drain, .. } = self;
        let last = Shutdown::new();
        let (mut work, mut final_tasks) = (Vec::new(), Vec::new());
        for t in tasks {
            let stop = if t.stage == Stage::Work { shutdown.subscribe() } else { last.subscribe() };
            let handle = tokio::spawn(supervise(t.name.clone(), t.body, stop, health.clone()));
            if t.stage == Stage::Work { work.push((t.name, handle)) } else { final_tasks.push((t.name, handle)) }
        }
        tracing::info!(port = listener.local_addr()?.port(), service = name, "listening");
        let served = serve(listener, endpoint, shutdown.clone(), drain).await;
        // The server returns on shutdown (or a fatal accept error): stop the rest too.
        shutdown.trigger();
        join_within(work).await;
        last.trigger();
        join_within(final_tasks).await;
        for hook in on_stop {
            hook.await;
        }
        tracing::info!(service = name, "stopped");
        served.map_err(Into::into)
    }
}

/// Waits for every task, each at most [`STOP_GRACE`] after this call.
async fn join_within(tasks: Vec<(String, tokio::task::JoinHandle<()>)>) {
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for (name, mut handle) in tasks {
        if tokio::time::timeout_at(deadline, &mut handle).await.is_err() {
            tracing::error!(task = %name, grace = ?STOP_GRACE, "task did not stop in time; abandoned");
            handle.abort();
        }
    }
}

/// Gives a service's `Application(App)` newtype the lifecycle every service
/// exposes to `main` and to tests: `port()`, `shutdown_handle()`,
/// `run_until_stopped()`, and `Into<App>` for [`run_main`]. The newtype
/// exists so each service can add accessors of its own (a pool, a store).
#[macro_export]
macro_rules! service_application {
    ($ty:ident) => {
        impl $ty {
            /// The bound HTTP port (the one picked when the settings said 0).
            pub fn port(&self) -> u16 {
                self.0.port()
            }

            /// Trigger it to stop the service (`main` wires SIGTERM/SIGINT to it).
            pub fn shutdown_handle(&self) -> $crate::app::Shutdown {
                self.0.shutdown_handle()
            }

            /// Runs until shutdown, then stops in order (see `glasshouse_platform::app`).
            pub async fn run_until_stopped(self) -> ::anyhow::Result<()> {
                self.0.run_until_stopped().await
            }
        }

        impl From<$ty> for $crate::app::App {
            fn from(app: $ty) -> Self {
                app.0
            }
        }
    };
}
pub use crate::service_application;

/// The whole `main` of the service crate `$svc`, which exports `SERVICE`,
/// `Settings` (with its `telemetry` section) and `Application` (see
/// [`service_application!`]): [`run_main`] with the crate's `config/` directory.
#[macro_export]
macro_rules! service_main {
    ($svc:ident) => {
        /// mimalloc instead of glibc's malloc: allocation was the largest
        /// single cost of the request path (telemetry/METRICS.md). Run with
        /// `MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0` (the image
        /// and `deploy/local/services.sh` set them), else idle RSS nearly
        /// doubles (docs/performance.md, "Allocator").
        #[global_allocator]
        static GLOBAL: $crate::mimalloc::MiMalloc = $crate::mimalloc::MiMalloc;

        #[::tokio::main]
        async fn main() -> ::anyhow::Result<()> {
            $crate::app::run_main(
                $svc::SERVICE,
                concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
                |s: &$svc::Settings| &s.telemetry,
                $svc::Application::build,
            )
            .await
        }
    };
}
pub use crate::service_main;

/// Serves `app` on an already bound listener until `shutdown`, then waits up
/// to `drain` for in-flight requests to finish.
pub async fn serve<E>(listener: std::net::TcpListener, app: E, shutdown: Shutdown, drain: Duration) -> std::io::Result<()>
where
    E: poem::Endpoint + 'static,
{
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
    poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(app, async move { shutdown.wait().await }, Some(drain)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_returns_after_trigger_even_if_late() {
        let s = Shutdown::new();
        assert!(!s.is_triggered());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        s.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
        // A waiter that arrives after the trigger returns at once.
        tokio::time::timeout(Duration::from_secs(5), s.wait()).await.unwrap();
    }

    #[test]
    fn the_mode_comes_from_the_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse_mode(args(&[])), Ok(Mode::Serve));
        assert_eq!(parse_mode(args(&["migrate"])), Ok(Mode::Migrate));
        assert!(parse_mode(args(&["migrat"])).unwrap_err().contains("\"migrat\""));
        assert!(parse_mode(args(&["migrate", "now"])).is_err());
    }
}
