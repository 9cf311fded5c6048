//! `/health/live` and `/health/ready` with pluggable checks.
//!
//! Live: the process answers (never depends on a backend, so an orchestrator
//! does not restart a healthy pod because its database blinked). Ready: every
//! check passes within its timeout; otherwise 503 with what failed.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::{EndpointExt, Response, Route, get, handler, web::Data};
use serde_json::{Map, Value, json};

/// One readiness check (database ping, Kafka metadata, ...).
#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync {
    /// Short name shown in the readiness answer (`postgres`, `kafka`).
    fn name(&self) -> &str;
    /// `Ok` when the dependency is usable; `Err` says why not.
    async fn check(&self) -> Result<(), String>;
}

/// A check from a closure returning a future; handy for small services and tests.
pub struct FnCheck<F> {
    name: String,
    f: F,
}

impl<F, Fut> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self { name: name.into(), f }
    }
}

#[async_trait::async_trait]
impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }
    async fn check(&self) -> Result<(), String> {
        (self.f)().await
    }
}

/// The checks behind `/health/ready`.
#[derive(Clone, Default)]
pub struct HealthChecks {
    checks: Vec<Arc<dyn HealthCheck>>,
    timeout: Option<Duration>,
}

impl HealthChecks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, check: impl HealthCheck + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Per-check deadline (default 2 s): a hung dependency is a failed check.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs every check concurrently; `(ready, per-check result)`.
    pub async fn run(&self) -> (bool, Map<String, Value>) {
        let timeout = self.timeout.unwrap_or(Duration::from_secs(2));
        let results = futures::future::join_all(self.checks.iter().map(|c| async move {
            let r = match tokio::time::timeout(timeout, c.check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (c.name().to_owned(), r)
        }))
        .await;
        let all_ok = results.iter().all(|(_, r)| r.is_ok());
        let map = results
            .into_iter()
            .map(|(name, r)| {
                (
                    name,
                    match r {
                        Ok(()) => json!({ "status": "ok" }),
                        Err(e) => json!({ "status": "failing", "error": e }),
                    },
                )
            })
            .collect();
        (all_ok, map)
    }

    /// `Route` with `/live` and `/ready`; nest it at `/health`.
    pub fn routes(self) -> Route {
        Route::new().at("/live", get(live_handler)).at("/ready", get(ready_handler).data(self))
    }
}

#[handler]
fn live_handler() -> Response {
    Response::builder().content_type("application/json").body(json!({ "status": "live" }).to_string())
}

#[handler]
async fn ready_handler(Data(checks): Data<&HealthChecks>) -> Response {
    let (ok, results) = checks.run().await;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(json!({ "status": if ok { "ready" } else { "not_ready" }, "checks": results }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_when_every_check_passes() {
        let checks = HealthChecks::new()
            .with(FnCheck::new("db", || async { Ok(()) }))
            .with(FnCheck::new("kafka", || async { Err("metadata: broker down".to_string()) }))
            .with(FnCheck::new("slow", || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }))
            .timeout(Duration::from_millis(50));
        let (ready, results) = checks.run().await;
        assert!(!ready);
        assert_eq!(results["db"]["status"], "ok");
        assert_eq!(results["kafka"]["error"], "metadata: broker down");
        assert!(results["slow"]["error"].as_str().unwrap().contains("no answer"));

        let (ready, _) = HealthChecks::new().with(FnCheck::new("db", || async { Ok(()) })).run().await;
        assert!(ready);
    }
}
