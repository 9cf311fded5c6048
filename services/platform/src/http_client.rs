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

use crate::breaker::{BreakerConfig, BreakerOpen, BreakerState, CallError, CircuitBreaker, StateChange};

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
            Self::Status { .. } | Self::Decode { .. } => ClientOutcome::error,
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

    /// `GET {base}{path_and_query}` as JSON; retried on timeouts, connection
    /// errors and 5xx (GET is idempotent), never when the breaker is open.
    pub async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&url).await {
                Ok(body) => {
                    return serde_json::from_slice(&body)
                        .map_err(|e| ClientError::Decode { peer: self.peer.clone(), reason: e.to_string() });
                }
                Err(e) if e.retryable() && attempt < self.settings.max_attempts => {
                    let pause = crate::backoff::delay(attempt, Duration::from_millis(self.settings.retry_base_ms), Duration::from_secs(2));
                    tracing::debug!(peer = %self.peer, error = %e, attempt, ?pause, "retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(&self, url: &str) -> Result<bytes::Bytes, ClientError> {
        let span = glasshouse_telemetry::http::client_span(&self.peer, "GET", url);
        let start = Instant::now();
        let result = async {
            let mut headers = reqwest::header::HeaderMap::new();
            glasshouse_telemetry::http::inject_current(&mut headers);
            let peer = &self.peer;
            let timeout = Duration::from_millis(self.settings.timeout_ms);
            let sent = self
                .breaker
                .call(|| async {
                    let resp = self.http.get(url).headers(headers).send().await.map_err(|e| transport_error(peer, timeout, e))?;
                    let status = resp.status().as_u16();
                    tracing::Span::current().record("http.response.status_code", i64::from(status));
                    let body = resp.bytes().await.map_err(|e| transport_error(peer, timeout, e))?;
                    if status >= 500 {
                        return Err(ClientError::Status {
                            peer: peer.clone(),
                            status,
                            body: String::from_utf8_lossy(&body).chars().take(512).collect(),
                        });
                    }
                    // 4xx: the peer works; the request was wrong. Not a breaker failure.
                    Ok((status, body))
                })
                .await;
            match sent {
                Ok((status, body)) if status >= 400 => Err(ClientError::Status {
                    peer: peer.clone(),
                    status,
                    body: String::from_utf8_lossy(&body).chars().take(512).collect(),
                }),
                Ok((_, body)) => Ok(body),
                Err(CallError::Open(open)) => Err(ClientError::Open(open)),
                Err(CallError::Inner(e)) => Err(e),
            }
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
