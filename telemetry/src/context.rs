//! The current trace as business code and the metric families see it: the
//! current OpenTelemetry context, its ids for log lines,
//! and the exemplar for latency observations. Depends on no other module of
//! the crate, so `metrics` (exemplars) and `traces` (the provider, which
//! counts dropped spans in `metrics`) both use it without a cycle.

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use prometheus_client::encoding::EncodeLabelSet;

/// The exemplar attached to latency observations: the trace to open in Jaeger.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

/// The current OpenTelemetry context: the innermost `tracing` span entered
/// (the tracing-opentelemetry layer makes an entered span's context current)
/// or, outside any, the HTTP request's server span
/// ([`crate::http::ServerTelemetry`] makes it current while the request runs).
pub fn current_context() -> Context {
    Context::current()
}

/// `(trace_id, span_id)` of the current span as lowercase hex, if it is part of a valid trace.
pub fn current_ids() -> Option<(String, String)> {
    let cx = current_context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// The exemplar for a latency observation: the current trace, if sampled
/// (an unsampled trace id would link to nothing in Jaeger).
pub fn current_exemplar() -> Option<TraceExemplar> {
    let cx = current_context();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| TraceExemplar { trace_id: sc.trace_id().to_string() })
}
