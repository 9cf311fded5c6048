//! Glasshouse telemetry: the only crate that knows about exporters.
//!
//! A service calls [`init`] once at start-up and keeps the returned
//! [`TelemetryGuard`] until it stops; business code then only names spans
//! (`#[instrument]`, [`kafka::producer_span`]), fields and its own metrics.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let telemetry = glasshouse_telemetry::init("order", &Default::default())?;
//! let metrics = telemetry.metrics().clone();
//! // ... route.with(glasshouse_telemetry::http::ServerTelemetry::new(&metrics)) ...
//! telemetry.shutdown().await; // flush traces and logs
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`TelemetryConfig`], the part of a service's settings that says
//!   which exporters run and where.
//! - [`context`]: the current trace as business code sees it (ids for log
//!   lines, the exemplar for latency histograms); depends on no other module.
//! - [`traces`]: the OTLP tracer provider (batch export, parent-based ratio
//!   sampler, resource attributes).
//! - [`propagation`]: W3C trace context + baggage over HTTP, Kafka headers and a
//!   database column (the outbox).
//! - [`contract`]: `telemetry/METRICS.md` read as data, the one parser every
//!   contract check (tests, alerts, dashboards, load runner) uses.
//! - [`metrics`]: the standard Prometheus families of `telemetry/METRICS.md`,
//!   the registry for a service's own, OpenMetrics encoding with exemplars.
//! - [`http`]: poem middleware (server span + RED metrics), `/metrics`, client injection.
//! - [`kafka`]: producer and consumer spans.
//! - [`db`]: database client spans for drivers that emit none (sqlx, MongoDB).
//! - [`logs`]: JSON records with trace ids to stdout, Loki and Elasticsearch,
//!   never blocking, drops counted.
//! - [`health`]: `/health/live` and `/health/ready` with pluggable checks.
#![forbid(unsafe_code)]

pub mod config;
pub mod context;
pub mod contract;
pub mod db;
pub mod health;
pub mod http;
pub mod kafka;
pub mod logs;
pub mod metrics;
pub mod propagation;
pub mod traces;

use std::sync::Arc;
use std::time::Duration;

pub use config::TelemetryConfig;
pub use metrics::Metrics;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Targets whose own logs would feed back into the pipeline that ships them
/// (the exporters' HTTP/gRPC stacks) stay at `warn` whatever the filter says.
const QUIET_TARGETS: &str = "h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,reqwest=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";

/// Keeps the exporters alive; flushes and stops them on [`TelemetryGuard::shutdown`]
/// (or, less gracefully, on drop).
pub struct TelemetryGuard {
    metrics: Metrics,
    tracer_provider: Option<SdkTracerProvider>,
    sinks: Vec<logs::ship::SinkHandle>,
}

impl TelemetryGuard {
    /// The process's metrics (standard families + registry for the service's own).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sends what the log shippers hold, without stopping them (tests use this
    /// before they look for a line in a backend).
    pub async fn flush_logs(&self) {
        for sink in &self.sinks {
            sink.flush(Duration::from_secs(10)).await;
        }
    }

    /// Exports every finished span now, waiting at most the export timeout.
    pub async fn flush_traces(&self) {
        if let Some(p) = self.tracer_provider.clone() {
            // The batch processor's flush blocks its caller: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || p.force_flush()).await;
        }
    }

    /// Graceful stop: flush logs and traces, then shut the exporters down.
    pub async fn shutdown(mut self) {
        self.flush_logs().await;
        if let Some(p) = self.tracer_provider.take() {
            let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.tracer_provider.take() {
            // Best effort when shutdown() was not awaited.
            let _ = p.shutdown();
        }
    }
}

/// Installs the process-wide telemetry for `service`: tracing subscriber
/// (filter, JSON or pretty stdout, log shippers, OpenTelemetry bridge),
/// the global propagator, and the metrics registry.
///
/// Call once, inside a Tokio runtime (the OTLP gRPC client and the log
/// shippers run on it). A second call fails: the subscriber is global.
pub fn init(service: &str, config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    config.validate().map_err(anyhow::Error::msg)?;
    let metrics = Metrics::new(service);
    propagation::install_global();
    propagation::trust::set_key(config.traces.trust_key.clone());

    let origin = Arc::new(logs::Origin {
        service: service.to_owned(),
        version: config.service_version.clone(),
        environment: config.environment.clone(),
    });
    let l = &config.logs;
    let mut sinks = Vec::new();
    if l.loki.enabled {
        sinks.push(logs::ship::spawn(
            logs::ship::SinkSettings {
                kind: logs::ship::SinkKind::Loki,
                url: l.loki.url.clone(),
                index: String::new(),
                date_suffix: false,
                buffer: l.buffer,
                batch_size: l.batch_size,
                flush_interval: l.flush_interval,
            },
            origin.clone(),
            metrics.standard.clone(),
        )?);
    }
    if l.elasticsearch.enabled {
        sinks.push(logs::ship::spawn(
            logs::ship::SinkSettings {
                kind: logs::ship::SinkKind::Elasticsearch,
                url: l.elasticsearch.url.clone(),
                index: l.elasticsearch.index.clone(),
                date_suffix: l.elasticsearch.date_suffix,
                buffer: l.buffer,
                batch_size: l.batch_size,
                flush_interval: l.flush_interval,
            },
            origin.clone(),
            metrics.standard.clone(),
        )?);
    }

    let json_stdout = l.stdout_format == config::StdoutFormat::Json;
    let log_layer = logs::LogLayer::new(origin, json_stdout, sinks.clone(), metrics.standard.clone());
    let pretty = (!json_stdout).then(tracing_subscriber::fmt::layer);
    let filter = EnvFilter::try_new(format!("{},{QUIET_TARGETS}", l.filter))
        .map_err(|e| anyhow::anyhow!("telemetry.logs.filter {:?} is not a valid filter: {e}", l.filter))?;

    let tracer_provider = if config.traces.enabled { Some(traces::provider(service, config, &metrics.standard)?) } else { None };
    // One tracer: the HTTP server spans use it directly, the bridge for `tracing` spans.
    let otel_layer = tracer_provider.as_ref().map(|p| {
        let tracer = traces::tracer(p, service);
        traces::set_request_tracer(tracer.clone());
        traces::layer(tracer)
    });

    tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(log_layer)
        .with(pretty)
        .try_init()
        .map_err(|e| anyhow::anyhow!("telemetry already initialised in this process: {e}"))?;

    Ok(TelemetryGuard { metrics, tracer_provider, sinks })
}
