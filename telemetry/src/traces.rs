//! Traces: the OTLP tracer provider (the current trace as business code sees
//! it lives in [`crate::context`], re-exported here).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};

use crate::config::{OtlpProtocol, TelemetryConfig};
pub use crate::context::{current_context, current_exemplar, current_ids};
use crate::metrics::{Exporter, Signal, StandardMetrics};

/// Sets the string attribute `key` on the server span of the HTTP request
/// being handled ([`crate::http::ServerTelemetry`]), wherever in the handler
/// it is called (inside further `tracing` spans too).
///
/// For domain ids learnt while handling: names follow the OpenTelemetry
/// semantic conventions where one exists (`enduser.id`), else
/// `<domain>.<field>` (`order.id`). Outside a request, or when the request's
/// trace is not sampled, it does nothing.
pub fn set_request_attribute(key: &'static str, value: String) {
    let cx = opentelemetry::Context::current();
    if let Some(RequestSpan(request)) = cx.get::<RequestSpan>() {
        request.span().set_attribute(KeyValue::new(key, value));
    }
}

/// The context of the request's server span, kept in every context derived
/// from it (child spans copy their parent context's values).
#[derive(Debug, Clone)]
struct RequestSpan(opentelemetry::Context);

/// `cx` (whose active span is a request's server span), marked so that
/// [`set_request_attribute`] finds that span from any child context.
pub(crate) fn request_context(cx: opentelemetry::Context) -> opentelemetry::Context {
    let marker = RequestSpan(cx.clone());
    cx.with_value(marker)
}

/// The tracer [`crate::init`] built, for spans made without `tracing`
/// (the HTTP server span); `None` when traces are off or before `init`.
pub(crate) fn request_tracer() -> Option<&'static opentelemetry_sdk::trace::SdkTracer> {
    TRACER.get()
}

static TRACER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracer> = std::sync::OnceLock::new();

/// Remembers the process's tracer (first `init` wins; a second fails anyway).
pub(crate) fn set_request_tracer(tracer: opentelemetry_sdk::trace::SdkTracer) {
    let _ = TRACER.set(tracer);
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
    Ok(SdkTracerProvider::builder()
        .with_resource(resource(service, config))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(t.sample_ratio))))
        .with_span_processor(counted_batch_processor(exporter, Arc::new(metrics.clone()), MAX_QUEUE_SIZE))
        .build())
}

/// Spans held for export before new ones are dropped (and counted): the
/// OpenTelemetry SDK's default (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048), set here
/// explicitly because the admission bound below must match it.
const MAX_QUEUE_SIZE: usize = 2048;
/// Spans per export request: the SDK's default (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
const MAX_EXPORT_BATCH_SIZE: usize = 512;

/// The SDK's batch processor with every lost span counted in
/// `telemetry_dropped_total{signal="traces",exporter="otlp"}`: spans of a
/// batch the backend refused ([`CountingExporter`]) and spans that found the
/// queue full ([`Admission`]; the SDK drops those with one log line for the
/// first and no count until shutdown).
fn counted_batch_processor<E: SpanExporter + 'static>(exporter: E, metrics: Arc<StandardMetrics>, queue: usize) -> impl SpanProcessor {
    let admission = Arc::new(Admission { held: AtomicUsize::new(0), capacity: queue, metrics: metrics.clone() });
    let exporter = CountingExporter { inner: exporter, metrics, admission: admission.clone() };
    let config =
        BatchConfigBuilder::default().with_max_queue_size(queue).with_max_export_batch_size(MAX_EXPORT_BATCH_SIZE.min(queue)).build();
    Admitting { inner: BatchSpanProcessor::builder(exporter).with_batch_config(config).build(), admission }
}

/// Counts the spans between `on_end` and the exporter: those in the SDK's
/// queue plus the batch its worker is assembling. Admitting a span only while
/// fewer than `capacity` are held keeps the SDK's queue (of the same
/// capacity) from ever being full, so every span lost to a full queue is lost
/// here, and counted.
#[derive(Debug)]
struct Admission {
    held: AtomicUsize,
    capacity: usize,
    metrics: Arc<StandardMetrics>,
}

impl Admission {
    /// Takes a place for one span; false (and the drop counted) when full.
    fn admit(&self) -> bool {
        if self.held.fetch_add(1, Ordering::AcqRel) < self.capacity {
            return true;
        }
        self.held.fetch_sub(1, Ordering::AcqRel);
        self.metrics.add_dropped(Signal::traces, Exporter::otlp, 1);
        false
    }

    /// `n` spans left the queue for the exporter.
    fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }
}

/// A span processor that passes a span on only if [`Admission`] has room.
#[derive(Debug)]
struct Admitting<P> {
    inner: P,
    admission: Arc<Admission>,
}

impl<P: SpanProcessor> SpanProcessor for Admitting<P> {
    fn on_start(&self, span: &mut Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.admission.admit() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The `tracing` -> OpenTelemetry bridge, without the per-span extras the
/// bridge adds by default: source location (`code.*`, three attributes),
/// thread id and name (the name a `String` allocated per span), the span's
/// target, and busy/idle timings (two clock reads per poll of an
/// instrumented future, two attributes). Nothing reads them (dashboards,
/// tests and runbooks use the semantic-convention attributes), and each costs
/// every span its building and export (telemetry/METRICS.md, "Cost of the
/// telemetry").
pub(crate) fn layer<S>(
    tracer: opentelemetry_sdk::trace::SdkTracer,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
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
    /// The queue's admission, told when a batch leaves the queue.
    admission: Arc<Admission>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.admission.release(batch.len());
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

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use opentelemetry::trace::{Span as _, Tracer as _};

    use super::*;

    /// An exporter that holds every export until opened (a backend that
    /// stalls), counting the spans it received.
    #[derive(Debug, Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        received: Arc<AtomicUsize>,
    }

    impl Gate {
        fn open(&self) {
            let (lock, cv) = &*self.open;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
    }

    impl SpanExporter for Gate {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let (lock, cv) = &*self.open;
            let _open = cv.wait_while(lock.lock().unwrap(), |open| !*open).unwrap();
            self.received.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    /// The SDK alone drops spans that find its queue full and counts nothing
    /// (this test fails on the plain batch processor: 0 counted, most lost).
    #[test]
    fn every_span_is_exported_or_counted_when_the_queue_is_full() {
        const QUEUE: usize = 64;
        const SPANS: usize = 1000;
        let metrics = crate::Metrics::new("trace-queue-test");
        let gate = Gate::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(counted_batch_processor(gate.clone(), Arc::new(metrics.standard.clone()), QUEUE))
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..SPANS {
            tracer.start("span").end();
        }
        gate.open();
        provider.force_flush().unwrap();
        let dropped = usize::try_from(metrics.standard.dropped(Signal::traces, Exporter::otlp)).unwrap();
        let received = gate.received.load(Ordering::SeqCst);
        // At most a full queue plus the one batch the stalled exporter holds got through.
        assert!(dropped >= SPANS - 2 * QUEUE, "dropped {dropped}, received {received}");
        assert_eq!(received + dropped, SPANS, "every span exported or counted: received {received}, dropped {dropped}");
        provider.shutdown().unwrap();
    }
}
