//! Running a service: a shutdown signal every task listens to, and an HTTP
//! server that stops accepting, finishes in-flight requests, and returns.
//!
//! Shutdown order (see each service's `Application::run_until_stopped`):
//! the signal flips the [`Shutdown`] watch; the HTTP server stops accepting
//! and drains in-flight requests (bounded by a deadline); consumer loops finish
//! the message in hand and commit its offset; the outbox relay finishes its
//! batch; finally telemetry is flushed.

use std::time::Duration;

use tokio::sync::watch;

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

/// What `main` needs of a built service.
pub trait Service: Sized + Send + 'static {
    fn shutdown_handle(&self) -> Shutdown;
    fn run_until_stopped(self) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
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
    A: Service,
    B: FnOnce(S, glasshouse_telemetry::Metrics) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<A>>,
{
    let settings: S = crate::config::load_or_exit(config_dir);
    let telemetry = glasshouse_telemetry::init(name, telemetry_of(&settings))?;
    let app = match build(settings, telemetry.metrics().clone()).await {
        Ok(app) => app,
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
}
