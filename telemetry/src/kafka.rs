//! Kafka spans with messaging semantic-convention attribute names. Context
//! crosses in the message headers (see [`crate::propagation`] for why the
//! consumer span is a child of the producer span).

use opentelemetry::Context;
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
