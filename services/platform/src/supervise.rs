//! Supervision of a service's background tasks (consumer loops, the outbox
//! relay, watchers): a task that ends before shutdown — with an error, a
//! panic, or simply by returning — is a dead task. A dead task is logged once
//! with its cause, counted in `service_task_restarts_total{task}`, shown as
//! `service_task_up{task} 0`, fails `/health/ready` (check `tasks`) and is
//! started again after a capped, jittered backoff.
//!
//! Why restart rather than exit: the tasks hold no state across runs that a
//! restart could corrupt (a consumer resumes from its committed offset, the
//! relay from the unsent outbox rows), and restarting in place keeps the HTTP
//! API answering while, say, a consumer's broker connection is rebuilt.
//! Readiness still goes red while a task is down, so an orchestrator stops
//! routing to a replica whose saga side is not working, and an alert on
//! `service_task_up == 0` says which task it is.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::health::HealthCheck;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

/// A task's body: given the stop signal, a future that runs until it turns
/// true. Called again for every restart, so it builds what it consumes.
pub type TaskFn = Box<dyn Fn(watch::Receiver<bool>) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// Backoff before the first restart; doubles (with jitter) up to [`RESTART_CAP`].
pub const RESTART_BASE: Duration = Duration::from_millis(500);
/// Longest pause between restarts of a task that keeps dying.
pub const RESTART_CAP: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

/// Which tasks are running, for readiness and metrics. Cloned into the
/// readiness check and into every supervisor.
#[derive(Clone)]
pub struct TaskHealth {
    /// Task name -> why it is down (`None` while it runs).
    state: Arc<Mutex<BTreeMap<String, Option<String>>>>,
    up: Family<TaskLabels, Gauge>,
    restarts: Family<TaskLabels, Counter>,
}

impl TaskHealth {
    /// Registers `service_task_up` and `service_task_restarts_total` in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let me = Self { state: Arc::default(), up: Family::default(), restarts: Family::default() };
        metrics.register("service_task_up", "1 while the background task runs, 0 while it is down awaiting restart", me.up.clone());
        metrics.register("service_task_restarts", "Background tasks that ended before shutdown and were restarted", me.restarts.clone());
        me
    }

    fn set(&self, task: &str, down: Option<String>) {
        let labels = TaskLabels { task: task.to_owned() };
        self.up.get_or_create(&labels).set(i64::from(down.is_none()));
        // Create the counter series at 0, so "no restart yet" reads 0, not absent.
        let _ = self.restarts.get_or_create(&labels);
        if let Ok(mut s) = self.state.lock() {
            s.insert(task.to_owned(), down);
        }
    }

    /// The tasks that are down now, with their last error.
    pub fn down(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .map(|s| s.iter().filter_map(|(k, v)| v.as_ref().map(|why| (k.clone(), why.clone()))).collect())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl HealthCheck for TaskHealth {
    fn name(&self) -> &str {
        "tasks"
    }

    async fn check(&self) -> Result<(), String> {
        let down = self.down();
        if down.is_empty() {
            return Ok(());
        }
        Err(down.iter().map(|(task, why)| format!("{task} is down: {why}")).collect::<Vec<_>>().join("; "))
    }
}

/// Runs `body` until `stop` turns true, restarting it whenever it ends
/// earlier. Returns once `stop` is true and the current run has returned.
pub async fn supervise(name: String, body: Arc<TaskFn>, stop: watch::Receiver<bool>, health: TaskHealth) {
    let mut failures: u32 = 0;
    loop {
        health.set(&name, None);
        let run = tokio::spawn((body)(stop.clone()));
        let outcome = match run.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(join) => Some(if join.is_panic() { "panicked".to_owned() } else { format!("{join}") }),
        };
        if *stop.borrow() {
            if let Some(why) = outcome {
                tracing::error!(task = %name, error = %why, "background task failed while stopping");
            }
            return;
        }
        let why = outcome.unwrap_or_else(|| "returned before shutdown".to_owned());
        failures = failures.saturating_add(1);
        let pause = crate::backoff::delay(failures, RESTART_BASE, RESTART_CAP);
        tracing::error!(task = %name, error = %why, restart_in = ?pause, "background task died; readiness fails until it runs again");
        health.restarts.get_or_create(&TaskLabels { task: name.clone() }).inc();
        health.set(&name, Some(why));
        let mut stop_wait = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop_wait.wait_for(|s| *s) => {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn body<F, Fut>(f: F) -> Arc<TaskFn>
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Arc::new(Box::new(move |stop| Box::pin(f(stop))))
    }

    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_task_that_dies_is_reported_down_then_restarted() {
        let metrics = Metrics::new("test");
        let health = TaskHealth::register(&metrics);
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, rx) = watch::channel(false);
        let counted = runs.clone();
        // First run fails at once; the second runs until stopped.
        let task = body(move |mut stop| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    anyhow::bail!("broker went away");
                }
                let _ = stop.wait_for(|s| *s).await;
                Ok(())
            }
        });
        let sup = tokio::spawn(supervise("consumer".into(), task, rx, health.clone()));
        until("the task to be marked down", || !health.down().is_empty()).await;
        assert_eq!(health.down(), vec![("consumer".to_owned(), "broker went away".to_owned())]);
        assert!(health.check().await.unwrap_err().contains("consumer is down: broker went away"));
        assert!(metrics.encode().contains("service_task_up{task=\"consumer\"} 0"));
        until("the restart", || runs.load(Ordering::SeqCst) == 2 && health.down().is_empty()).await;
        assert!(health.check().await.is_ok());
        let text = metrics.encode();
        assert!(text.contains("service_task_restarts_total{task=\"consumer\"} 1"), "{text}");
        assert!(text.contains("service_task_up{task=\"consumer\"} 1"), "{text}");
        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), sup).await.expect("stops").expect("no panic");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "not restarted after the stop");
    }

    #[tokio::test]
    async fn panics_and_early_returns_count_as_deaths() {
        let metrics = Metrics::new("test");
        let health = TaskHealth::register(&metrics);
        let (tx, rx) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let task = body(move |mut stop| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => panic!("bug"),
                    1 => Ok(()),
                    _ => {
                        let _ = stop.wait_for(|s| *s).await;
                        Ok(())
                    }
                }
            }
        });
        let sup = tokio::spawn(supervise("relay".into(), task, rx, health.clone()));
        until("two restarts", || runs.load(Ordering::SeqCst) >= 3).await;
        assert!(metrics.encode().contains("service_task_restarts_total{task=\"relay\"} 2"));
        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), sup).await.expect("stops").expect("no panic");
    }

    #[tokio::test]
    async fn a_stop_during_the_restart_pause_returns_at_once() {
        let metrics = Metrics::new("test");
        let health = TaskHealth::register(&metrics);
        let (tx, rx) = watch::channel(false);
        let task = body(|_stop| async { anyhow::bail!("always fails") });
        let sup = tokio::spawn(supervise("watcher".into(), task, rx, health.clone()));
        until("down", || !health.down().is_empty()).await;
        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(2), sup).await.expect("no wait for the backoff").expect("no panic");
    }
}
