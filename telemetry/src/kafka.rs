//! Kafka spans with messaging semantic-convention attribute names. Context
//! crosses in the message headers (see [`crate::propagation`] for why the
//! consumer span is a child of the producer span).

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use rdkafka::message::{Headers, OwnedHeaders};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A producer span (`<topic> publish`). Inject its context with [`headers_for`].
pub fn producer_span(topic: &str, key: &str) -> tracing::Span {
    tracing::info_span!(
        "kafka.produce",
        otel.name = %format!("{topic} publish"),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "publish",
        messaging.destination.name = %topic,
        messaging.kafka.message.key = %key,
        messaging.destination.partition.id = Empty,
        messaging.kafka.offset = Empty,
    )
}

/// Headers carrying `span`'s context, added to `headers`.
pub fn headers_for(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
    crate::propagation::inject_kafka(&span.context(), headers)
}

/// A producer span for a message written down earlier with its trace context
/// (the outbox row's `trace_carrier`, from [`crate::propagation::to_carrier`]),
/// and `headers` with the context the consumer should continue added.
///
/// The span is a child of the stored context: the publish continues the trace
/// of the request that wrote the row, however much later it happens. With
/// tracing off the span has no context of its own, so the stored context goes
/// into the headers unchanged and the consumer still joins the writer's trace.
/// An absent or unreadable carrier gives a root span (no headers when tracing is off).
pub fn producer_span_from_carrier(topic: &str, key: &str, carrier: Option<&str>, headers: OwnedHeaders) -> (tracing::Span, OwnedHeaders) {
    let parent = crate::propagation::from_carrier(carrier);
    let span = producer_span(topic, key);
    let _ = span.set_parent(parent.clone());
    let own = span.context();
    let cx = if own.span().span_context().is_valid() { own } else { parent };
    let headers = crate::propagation::inject_kafka(&cx, headers);
    (span, headers)
}

/// A consumer span (`<topic> process`), child of the producer's context
/// found in the message headers (a root span when there is none).
pub fn consumer_span<H: Headers>(topic: &str, partition: i32, offset: i64, headers: Option<&H>) -> tracing::Span {
    let parent: Context = crate::propagation::extract_kafka(headers);
    let span = tracing::info_span!(
        "kafka.consume",
        otel.name = %format!("{topic} process"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = %topic,
        messaging.destination.partition.id = partition,
        messaging.kafka.offset = offset,
        messaging.message.id = Empty,
    );
    let _ = span.set_parent(parent);
    span
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use rdkafka::message::Header;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const STORED: &str = r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#;

    fn header(headers: &OwnedHeaders, key: &str) -> Option<String> {
        headers.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn base() -> OwnedHeaders {
        OwnedHeaders::new().insert(Header { key: "event_id", value: Some("e-1") })
    }

    /// With an OpenTelemetry layer: the span is a child of the stored context.
    fn with_tracing<T>(f: impl FnOnce() -> T) -> T {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn stored_context_passes_through_when_tracing_is_off() {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let (_span, headers) = producer_span_from_carrier("orders.v1", "o-1", Some(STORED), base());
            assert_eq!(header(&headers, "traceparent").as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
            assert_eq!(header(&headers, "event_id").as_deref(), Some("e-1"), "the caller's headers stay");
            let (_span, headers) = producer_span_from_carrier("orders.v1", "o-1", None, base());
            assert_eq!(header(&headers, "traceparent"), None, "no trace, no header");
        });
    }

    #[test]
    fn publish_span_is_a_child_of_the_stored_context() {
        with_tracing(|| {
            let (span, headers) = producer_span_from_carrier("orders.v1", "o-1", Some(STORED), base());
            let sc = span.context().span().span_context().clone();
            assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736", "the writer's trace continues");
            assert_ne!(sc.span_id().to_string(), "00f067aa0ba902b7", "a span of its own");
            let tp = header(&headers, "traceparent").expect("traceparent");
            assert_eq!(tp, format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", sc.span_id()), "the consumer continues the publish span");
        });
    }

    #[test]
    fn garbage_carrier_gives_a_root_span() {
        with_tracing(|| {
            let (span, headers) = producer_span_from_carrier("orders.v1", "o-1", Some("{not json"), base());
            let sc = span.context().span().span_context().clone();
            assert!(sc.is_valid());
            assert_ne!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(header(&headers, "traceparent"), Some(format!("00-{}-{}-01", sc.trace_id(), sc.span_id())));
        });
    }
}
