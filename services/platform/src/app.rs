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

/// Serves `app` on an already bound listener until `shutdown`, then waits up
/// to `drain` for in-flight requests to finish.
pub async fn serve<E>(listener: std::net::TcpListener, app: E, shutdown: Shutdown, drain: Duration) -> std::io::Result<()>
where
    E: poem::Endpoint + 'static,
{
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, async move { shutdown.wait().await }, Some(drain))
        .await
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
