//! Traces: the OTLP tracer provider (the current trace as business code sees
//! it lives in [`crate::context`], re-exported here).

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};

use crate::config::{OtlpProtocol, TelemetryConfig};
pub use crate::context::{current_context, current_exemplar, current_ids};
use crate::metrics::{Exporter, Signal, StandardMetrics};

/// Sets the string attribute `key` on the OpenTelemetry span behind `span`.
///
/// For attributes the `tracing` span did not declare: `tracing` silently drops
/// a `record()` of an undeclared field, so business code that learns a domain
/// id inside a span opened elsewhere (the HTTP server span of
/// [`crate::http`]) sets it here. Names follow the OpenTelemetry semantic
/// conventions where one exists (`enduser.id`), else `<domain>.<field>`
/// (`order.id`). A disabled span (not sampled, no tracer) ignores it.
pub fn set_attribute(span: &tracing::Span, key: &'static str, value: String) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    span.set_attribute(key, value);
}

pub(crate) fn resource(service: &str, config: &TelemetryConfig) -> Resource {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "unknown".into());
    Resource::builder()
        .with_service_name(service.to_owned())
        .with_attributes([
            KeyValue::new("service.version", config.service_version.clone()),
            KeyValue::new("deployment.environment", config.environment.clone()),
            KeyValue::new("host.name", host),
        ])
        .build()
}

/// Builds the tracer provider: OTLP exporter (counted drops), batch processor,
/// parent-based ratio sampler. Must run inside a Tokio runtime (tonic needs one).
pub(crate) fn provider(service: &str, config: &TelemetryConfig, metrics: &StandardMetrics) -> anyhow::Result<SdkTracerProvider> {
    let t = &config.traces;
    let exporter = match t.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(t.endpoint.clone())
            .with_timeout(t.export_timeout)
            .build()?,
        OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(ReqwestOtlpClient(reqwest::Client::builder().timeout(t.export_timeout).build()?))
            .with_endpoint(format!("{}/v1/traces", t.endpoint.trim_end_matches('/')))
            .with_timeout(t.export_timeout)
            .build()?,
    };
    let exporter = CountingExporter { inner: exporter, metrics: Arc::new(metrics.clone()) };
    Ok(SdkTracerProvider::builder()
        .with_resource(resource(service, config))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(t.sample_ratio))))
        .with_batch_exporter(exporter)
        .build())
}

pub(crate) fn tracer(provider: &SdkTracerProvider, service: &str) -> opentelemetry_sdk::trace::SdkTracer {
    provider.tracer(service.to_owned())
}

/// Counts the spans of every batch the backend did not take, as
/// `telemetry_dropped_total{signal="traces",exporter="otlp"}`: the batch
/// processor itself only logs them.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    metrics: Arc<StandardMetrics>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_err() {
            self.metrics.add_dropped(Signal::traces, Exporter::otlp, n);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// OTLP/HTTP through the workspace's reqwest, so the exporter does not bring
/// a second HTTP client stack into every service.
#[derive(Debug, Clone)]
struct ReqwestOtlpClient(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ReqwestOtlpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<bytes::Bytes>,
    ) -> Result<opentelemetry_http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self.0.request(parts.method, parts.uri.to_string()).body(body);
        for (name, value) in parts.headers.iter() {
            req = req.header(name, value);
        }
        let resp = req.send().await?;
        let mut builder = http::Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            builder = builder.header(name, value);
        }
        let body = resp.bytes().await?;
        Ok(builder.body(body)?)
    }
}
