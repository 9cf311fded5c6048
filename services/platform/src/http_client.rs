//! Service-to-service HTTP: a deadline on every attempt, jittered retries
//! for idempotent requests only, a circuit breaker per peer, a client span
//! with the trace context injected, and `http_client_request_duration_seconds`.
//!
//! The breaker counts transport failures and 5xx answers; a 4xx means the
//! peer is working (the request was wrong), so it counts as a success.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glasshouse_telemetry::metrics::{BreakerState as GaugeState, ClientOutcome, StandardMetrics};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::breaker::{BreakerConfig, BreakerOpen, BreakerState, CircuitBreaker, StateChange};

/// Client tuning, part of a service's settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    pub base_url: String,
    /// Deadline of one attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts for idempotent requests (1 = no retry).
    pub max_attempts: u32,
    /// First retry delay ceiling, in milliseconds (doubles per attempt, jittered).
    pub retry_base_ms: u64,
    pub breaker: BreakerConfig,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8082".into(),
            timeout_ms: 1000,
            max_attempts: 3,
            retry_base_ms: 50,
            breaker: BreakerConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not attempted: the breaker is open.
    #[error(transparent)]
    Open(#[from] BreakerOpen),
    #[error("{peer} did not answer within {timeout:?}")]
    Timeout { peer: String, timeout: Duration },
    #[error("cannot reach {peer}: {reason}")]
    Connect { peer: String, reason: String },
    /// The peer answered with an error status.
    #[error("{peer} answered {status}: {body}")]
    Status { peer: String, status: u16, body: String },
    #[error("{peer} sent an answer that does not parse: {reason}")]
    Decode { peer: String, reason: String },
    /// Not sent: the request does not meet the peer's contract (a generated client checks).
    #[error("request to {peer} not sent: {reason}")]
    Request { peer: String, reason: String },
}

impl ClientError {
    /// True when the peer is unavailable (as opposed to refusing the request):
    /// callers answer 503 with `Retry-After` then.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Open(_) | Self::Timeout { .. } | Self::Connect { .. })
            || matches!(self, Self::Status { status, .. } if *status >= 500)
    }

    /// How long a caller should wait before trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Open(o) => o.retry_after.max(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        }
    }

    fn outcome(&self) -> ClientOutcome {
        match self {
            Self::Open(_) => ClientOutcome::circuit_open,
            Self::Timeout { .. } => ClientOutcome::timeout,
            Self::Connect { .. } => ClientOutcome::connect,
            Self::Status { .. } | Self::Decode { .. } | Self::Request { .. } => ClientOutcome::error,
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Connect { .. }) || matches!(self, Self::Status { status, .. } if *status >= 500)
    }
}

/// A client for one peer service.
#[derive(Clone)]
pub struct ServiceClient {
    peer: String,
    base: String,
    http: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
    metrics: StandardMetrics,
    settings: ClientSettings,
}

impl ServiceClient {
    pub fn new(peer: &str, settings: ClientSettings, metrics: StandardMetrics) -> anyhow::Result<Self> {
        settings.breaker.validate().map_err(|e| anyhow::anyhow!("{peer} client breaker: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let gauge = metrics.clone();
        gauge.set_breaker_state(peer, GaugeState::Closed);
        let breaker = CircuitBreaker::new(peer, settings.breaker).on_state_change(move |c: &StateChange<'_>| {
            gauge.set_breaker_state(c.peer, gauge_state(c.to));
            tracing::warn!(peer = c.peer, from = c.from.as_str(), to = c.to.as_str(), "circuit breaker state changed");
        });
        Ok(Self {
            peer: peer.to_owned(),
            base: settings.base_url.trim_end_matches('/').to_owned(),
            http,
            breaker: Arc::new(breaker),
            metrics,
            settings,
        })
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The peer's name (metrics, spans, errors).
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The peer's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The HTTP client every attempt goes through (the per-attempt deadline
    /// is set on it): a generated client is built on it (`new_with_client`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A transport failure of one attempt (`reqwest`'s error) as the client's error.
    pub fn transport_error(&self, e: reqwest::Error) -> ClientError {
        transport_error(&self.peer, Duration::from_millis(self.settings.timeout_ms), e)
    }

    /// `GET {base}{path_and_query}` as JSON (see [`Self::idempotent`]).
    pub async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path_and_query);
        self.idempotent("GET", path_and_query, || async {
            let mut headers = reqwest::header::HeaderMap::new();
            glasshouse_telemetry::http::inject_current(&mut headers);
            let resp = self.http.get(&url).headers(headers).send().await.map_err(|e| self.transport_error(e))?;
            let status = resp.status().as_u16();
            tracing::Span::current().record("http.response.status_code", i64::from(status));
            let body = resp.bytes().await.map_err(|e| self.transport_error(e))?;
            if status >= 400 {
                return Err(ClientError::Status {
                    peer: self.peer.clone(),
                    status,
                    body: String::from_utf8_lossy(&body).chars().take(512).collect(),
                });
            }
            serde_json::from_slice(&body).map_err(|e| ClientError::Decode { peer: self.peer.clone(), reason: e.to_string() })
        })
        .await
    }

    /// One idempotent request, each attempt made by `send` (a hand-built
    /// request, or a generated client's call on [`Self::http`]). Each attempt
    /// runs inside a client span (`send` injects its context, e.g. with
    /// `glasshouse_telemetry::http::inject_current`, and records
    /// `http.response.status_code` on it), through the breaker, and is
    /// observed in `http_client_request_duration_seconds`. Retried on
    /// timeouts, connection errors and 5xx, never when the breaker is open.
    /// The breaker counts those as failures; any other answer (4xx, or a body
    /// that does not parse) means the peer works, and counts as a success.
    pub async fn idempotent<T, F, Fut>(&self, method: &str, path: &str, send: F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let url = format!("{}{}", self.base, path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(method, &url, &send).await {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() && attempt < self.settings.max_attempts => {
                    let pause = crate::backoff::delay(attempt, Duration::from_millis(self.settings.retry_base_ms), Duration::from_secs(2));
                    tracing::debug!(peer = %self.peer, error = %e, attempt, ?pause, "retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt<T, F, Fut>(&self, method: &str, url: &str, send: &F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let span = glasshouse_telemetry::http::client_span(&self.peer, method, url);
        let start = Instant::now();
        let result = async {
            let permit = self.breaker.try_acquire()?;
            let answer = send().await;
            match &answer {
                Err(e) if e.retryable() => permit.failure(),
                // 4xx: the peer works; the request was wrong. Not a breaker failure.
                _ => permit.success(),
            }
            answer
        }
        .instrument(span.clone())
        .await;
        let outcome = match &result {
            Ok(_) => ClientOutcome::success,
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                e.outcome()
            }
        };
        span.in_scope(|| self.metrics.observe_http_client(&self.peer, outcome, start.elapsed().as_secs_f64()));
        result
    }
}

fn transport_error(peer: &str, timeout: Duration, e: reqwest::Error) -> ClientError {
    if e.is_timeout() {
        ClientError::Timeout { peer: peer.to_owned(), timeout }
    } else {
        ClientError::Connect { peer: peer.to_owned(), reason: format!("{e}") }
    }
}

fn gauge_state(s: BreakerState) -> GaugeState {
    match s {
        BreakerState::Closed => GaugeState::Closed,
        BreakerState::HalfOpen => GaugeState::HalfOpen,
        BreakerState::Open => GaugeState::Open,
    }
}
