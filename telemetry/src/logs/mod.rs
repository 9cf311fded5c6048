//! Logs: every `tracing` event becomes one record with the current
//! `trace_id`/`span_id`, written to stdout and handed to the shippers.
//!
//! Why our own layer instead of `tracing-loki` and an ES appender: both sinks
//! must count what they drop (`telemetry_dropped_total`), both need the trace
//! ids on every line (tracing-loki does not add them), and one record built
//! once feeds stdout, Loki and Elasticsearch alike.
//!
//! A shipper never blocks the caller: records go into a bounded queue with
//! `try_send`; a full queue drops the record and counts it. See [`ship`].

pub(crate) mod ship;

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::metrics::{Exporter, Signal, StandardMetrics};

/// One log record, shared by every sink.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub timestamp: DateTime<Utc>,
    pub level: tracing::Level,
    pub target: String,
    pub message: String,
    /// The event's other fields, and the fields of the spans it is in.
    pub fields: Map<String, Value>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

/// Static facts every record carries.
#[derive(Debug, Clone)]
pub struct Origin {
    pub service: String,
    pub version: String,
    pub environment: String,
}

impl LogRecord {
    /// The stdout / Loki line: flat JSON with `timestamp`, `level`, `message`,
    /// `target`, `trace_id`, `span_id` and the event's fields.
    pub fn to_json_line(&self, origin: &Origin) -> String {
        let mut obj = Map::new();
        obj.insert("timestamp".into(), self.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true).into());
        obj.insert("level".into(), self.level.as_str().to_ascii_lowercase().into());
        obj.insert("service".into(), origin.service.clone().into());
        obj.insert("message".into(), self.message.clone().into());
        obj.insert("target".into(), self.target.clone().into());
        if let Some(t) = &self.trace_id {
            obj.insert("trace_id".into(), t.clone().into());
        }
        if let Some(s) = &self.span_id {
            obj.insert("span_id".into(), s.clone().into());
        }
        for (k, v) in &self.fields {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(obj).to_string()
    }

    /// The Elasticsearch document in ECS field names. Fields of the event that
    /// ECS has no name for go under `labels` (strings) / `glasshouse` (other types).
    pub fn to_ecs(&self, origin: &Origin) -> Value {
        let mut doc = serde_json::json!({
            "@timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
            "message": self.message,
            "log": { "level": self.level.as_str().to_ascii_lowercase(), "logger": self.target },
            "service": { "name": origin.service, "version": origin.version, "environment": origin.environment },
            "ecs": { "version": "8.11.0" },
        });
        if let Some(t) = &self.trace_id {
            doc["trace"] = serde_json::json!({ "id": t });
        }
        if let Some(s) = &self.span_id {
            doc["span"] = serde_json::json!({ "id": s });
        }
        let mut labels = Map::new();
        let mut other = Map::new();
        for (k, v) in &self.fields {
            match (k.as_str(), v) {
                ("error" | "error.message", v) => {
                    doc["error"]["message"] = Value::String(value_text(v));
                }
                ("error.type", v) => doc["error"]["type"] = Value::String(value_text(v)),
                (_, Value::String(s)) => {
                    labels.insert(k.replace('.', "_"), Value::String(s.clone()));
                }
                _ => {
                    other.insert(k.replace('.', "_"), v.clone());
                }
            }
        }
        if !labels.is_empty() {
            doc["labels"] = Value::Object(labels);
        }
        if !other.is_empty() {
            doc["glasshouse"] = Value::Object(other);
        }
        doc
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Collects an event's (or span's) fields as JSON values.
#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
    /// Span fields: leave out the plumbing ones before formatting anything.
    skip_plumbing: bool,
}

impl FieldVisitor {
    fn wants(&self, field: &Field) -> bool {
        !(self.skip_plumbing && is_plumbing(field.name()))
    }
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.wants(field) {
            return;
        }
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message = Some(s);
        } else {
            self.fields.insert(field.name().to_owned(), Value::String(s));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.wants(field) {
            return;
        }
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields.insert(field.name().to_owned(), Value::String(value.to_owned()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.wants(field) {
            return;
        }
        self.fields.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.wants(field) {
            return;
        }
        self.fields.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if !self.wants(field) {
            return;
        }
        self.fields.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.wants(field) {
            return;
        }
        self.fields.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole cause chain, once, as the house style asks.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(text, ": {s}");
            source = s.source();
        }
        self.fields.insert(field.name().to_owned(), Value::String(text));
    }
}

/// Span fields, kept in the span's extensions so events inside can carry them.
struct SpanFields(Map<String, Value>);

/// The layer that turns events into [`LogRecord`]s for stdout and the shippers.
pub struct LogLayer {
    origin: Arc<Origin>,
    stdout_json: bool,
    sinks: Vec<ship::SinkHandle>,
    metrics: StandardMetrics,
}

impl LogLayer {
    pub(crate) fn new(origin: Arc<Origin>, stdout_json: bool, sinks: Vec<ship::SinkHandle>, metrics: StandardMetrics) -> Self {
        Self { origin, stdout_json, sinks, metrics }
    }
}

/// Span fields that are telemetry plumbing, not log context: `otel.*`, and the
/// dotted semantic-convention attributes (`http.route`, `messaging.*`) that
/// the trace already carries. Skipping them at span creation keeps the HTTP
/// middleware's span free of per-request allocations here; business fields
/// (`order_id`) still flow into every log line inside the span.
fn is_plumbing(name: &str) -> bool {
    name.contains('.')
}

impl<S> tracing_subscriber::Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if attrs.fields().iter().all(|f| is_plumbing(f.name())) {
            return;
        }
        let mut v = FieldVisitor { skip_plumbing: true, ..Default::default() };
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(v.fields));
        }
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let mut v = FieldVisitor { skip_plumbing: true, ..Default::default() };
        values.record(&mut v);
        if v.fields.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<SpanFields>() {
                Some(fields) => fields.0.extend(v.fields),
                None => ext.insert(SpanFields(v.fields)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut v = FieldVisitor::default();
        event.record(&mut v);
        let mut fields = v.fields;
        // Outer spans first, inner spans override, the event's own fields win.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(sf) = span.extensions().get::<SpanFields>() {
                    for (k, val) in &sf.0 {
                        if !is_plumbing(k) && !fields.contains_key(k) {
                            fields.insert(k.clone(), val.clone());
                        }
                    }
                }
            }
        }
        let (trace_id, span_id) = match crate::context::current_ids() {
            Some((t, s)) => (Some(t), Some(s)),
            None => (None, None),
        };
        let record = Arc::new(LogRecord {
            timestamp: Utc::now(),
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: v.message.unwrap_or_default(),
            fields,
            trace_id,
            span_id,
        });
        if self.stdout_json {
            let mut line = record.to_json_line(&self.origin);
            line.push('\n');
            // A closed or full stdout must not take the service down.
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
        for sink in &self.sinks {
            if !sink.offer(record.clone()) {
                self.metrics.add_dropped(Signal::logs, sink.exporter(), 1);
            }
        }
    }
}

/// Exporter labels as `telemetry_dropped_total` shows them.
pub(crate) fn exporter_of(kind: ship::SinkKind) -> Exporter {
    match kind {
        ship::SinkKind::Loki => Exporter::loki,
        ship::SinkKind::Elasticsearch => Exporter::elasticsearch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        let mut fields = Map::new();
        fields.insert("order_id".into(), "o-1".into());
        fields.insert("lines".into(), 3.into());
        fields.insert("error".into(), "db down: connection refused".into());
        LogRecord {
            timestamp: "2026-11-28T10:00:00Z".parse().unwrap(),
            level: tracing::Level::WARN,
            target: "glasshouse_order::api".into(),
            message: "order rejected".into(),
            fields,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            span_id: Some("00f067aa0ba902b7".into()),
        }
    }

    fn origin() -> Origin {
        Origin { service: "order".into(), version: "0.1.0".into(), environment: "local".into() }
    }

    #[test]
    fn json_line_has_ids_and_fields() {
        let line: Value = serde_json::from_str(&record().to_json_line(&origin())).unwrap();
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["span_id"], "00f067aa0ba902b7");
        assert_eq!(line["level"], "warn");
        assert_eq!(line["message"], "order rejected");
        assert_eq!(line["order_id"], "o-1");
        assert_eq!(line["lines"], 3);
    }

    #[test]
    fn ecs_document_uses_ecs_names() {
        let doc = record().to_ecs(&origin());
        assert_eq!(doc["@timestamp"], "2026-11-28T10:00:00.000000Z");
        assert_eq!(doc["log"]["level"], "warn");
        assert_eq!(doc["service"]["name"], "order");
        assert_eq!(doc["trace"]["id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(doc["span"]["id"], "00f067aa0ba902b7");
        assert_eq!(doc["error"]["message"], "db down: connection refused");
        assert_eq!(doc["labels"]["order_id"], "o-1");
        assert_eq!(doc["glasshouse"]["lines"], 3);
    }
}
