//! Prometheus metrics: the standard families every service has, a registry
//! for the service's own, and OpenMetrics encoding for `GET /metrics`.
//!
//! The names are the contract in `telemetry/METRICS.md`; they are fixed here,
//! once. Latency histograms carry the current trace id as an exemplar, so a
//! slow bucket in a dashboard links to the trace that landed in it.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// `Content-Type` of an OpenMetrics exposition (what Prometheus needs to read exemplars).
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds. 0.3 is there because the order API's latency
/// SLO is "99% under 300 ms": the SLI reads that bucket exactly.
pub const LATENCY_BUCKETS: [f64; 14] = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

pub use crate::context::TraceExemplar;

/// A latency histogram with trace-id exemplars.
pub type LatencyHistogram = HistogramWithExemplars<TraceExemplar>;
/// A labelled family of latency histograms.
pub type LatencyFamily<L> = Family<L, LatencyHistogram, fn() -> LatencyHistogram>;

fn latency_histogram() -> LatencyHistogram {
    HistogramWithExemplars::new(LATENCY_BUCKETS.into_iter())
}

fn latency_family<L: Clone + std::hash::Hash + Eq>() -> LatencyFamily<L> {
    Family::new_with_constructor(latency_histogram as fn() -> LatencyHistogram)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpServerLabels {
    pub service: Arc<String>,
    pub method: Cow<'static, str>,
    /// The route template (`/orders/{id}`), never the raw path: bounded cardinality.
    pub route: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ClientOutcome {
    success,
    error,
    timeout,
    connect,
    circuit_open,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpClientLabels {
    pub service: Arc<String>,
    pub peer: String,
    pub outcome: ClientOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ConsumeOutcome {
    success,
    duplicate,
    retry,
    dead_letter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumeLabels {
    pub service: Arc<String>,
    pub topic: String,
    pub outcome: ConsumeOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub service: Arc<String>,
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub service: Arc<String>,
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: Arc<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub service: Arc<String>,
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PoolState {
    idle,
    in_use,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub service: Arc<String>,
    pub state: PoolState,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Signal {
    traces,
    logs,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Exporter {
    otlp,
    loki,
    elasticsearch,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub service: Arc<String>,
    pub signal: Signal,
    pub exporter: Exporter,
}

/// Circuit breaker states as the `circuit_breaker_state` gauge encodes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// The standard families of `telemetry/METRICS.md`, registered once.
/// Cloning is cheap: every family is a shared handle.
#[derive(Clone, Debug)]
pub struct StandardMetrics {
    /// Shared, so building a label set per observation does not copy it.
    service: Arc<String>,
    pub http_server_request_duration: LatencyFamily<HttpServerLabels>,
    pub http_client_request_duration: LatencyFamily<HttpClientLabels>,
    pub messaging_consume_duration: LatencyFamily<ConsumeLabels>,
    pub messaging_consumer_lag: Family<PartitionLabels, Gauge>,
    pub messaging_dead_letter: Family<TopicLabels, Counter>,
    /// How long the message in hand has been retried (0 when none is).
    pub messaging_consumer_retry_seconds: Family<TopicLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub outbox_pending: Family<ServiceLabels, Gauge>,
    pub outbox_oldest_age_seconds: Family<ServiceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub outbox_published: Family<TopicLabels, Counter>,
    pub circuit_breaker_state: Family<PeerLabels, Gauge>,
    pub db_pool_connections: Family<PoolLabels, Gauge>,
    pub telemetry_dropped: Family<DropLabels, Counter>,

    // --- Table pruning (services/platform/src/prune.rs) ---
    pub db_rows_pruned: Family<TableLabels, Counter>,
}

impl StandardMetrics {
    fn register(service: &str, r: &mut Registry) -> Self {
        let m = Self {
            service: Arc::new(service.to_owned()),
            http_server_request_duration: latency_family(),
            http_client_request_duration: latency_family(),
            messaging_consume_duration: latency_family(),
            messaging_consumer_lag: Family::default(),
            messaging_dead_letter: Family::default(),
            messaging_consumer_retry_seconds: Family::default(),
            outbox_pending: Family::default(),
            outbox_oldest_age_seconds: Family::default(),
            outbox_published: Family::default(),
            circuit_breaker_state: Family::default(),
            db_pool_connections: Family::default(),
            telemetry_dropped: Family::default(),
            // --- Table pruning ---
            db_rows_pruned: Family::default(),
        };
        r.register_with_unit(
            "http_server_request_duration",
            "Server-side HTTP request latency by route template",
            Unit::Seconds,
            m.http_server_request_duration.clone(),
        );
        r.register_with_unit(
            "http_client_request_duration",
            "Outgoing HTTP request latency by peer and outcome",
            Unit::Seconds,
            m.http_client_request_duration.clone(),
        );
        r.register_with_unit(
            "messaging_consume_duration",
            "Kafka message handling time by topic and outcome",
            Unit::Seconds,
            m.messaging_consume_duration.clone(),
        );
        r.register("messaging_consumer_lag", "High watermark minus committed offset", m.messaging_consumer_lag.clone());
        r.register("messaging_dead_letter", "Messages sent to the dead-letter topic", m.messaging_dead_letter.clone());
        r.register_with_unit(
            "messaging_consumer_retry",
            "How long the message in hand has been retried after transient failures (0 when none is)",
            Unit::Seconds,
            m.messaging_consumer_retry_seconds.clone(),
        );
        r.register("outbox_pending", "Outbox rows not yet published", m.outbox_pending.clone());
        r.register_with_unit(
            "outbox_oldest_age",
            "Age of the oldest unpublished outbox row (0 when none)",
            Unit::Seconds,
            m.outbox_oldest_age_seconds.clone(),
        );
        r.register("outbox_published", "Outbox rows published to Kafka", m.outbox_published.clone());
        r.register("circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", m.circuit_breaker_state.clone());
        r.register("db_pool_connections", "Database pool connections by state", m.db_pool_connections.clone());
        r.register("telemetry_dropped", "Telemetry dropped on purpose (full buffer, backend away)", m.telemetry_dropped.clone());
        // --- Table pruning ---
        r.register("db_rows_pruned", "Rows deleted past their table's retention", m.db_rows_pruned.clone());
        m
    }

    /// The `service` label value of this process.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Records a server request; the exemplar is the current trace if it is sampled.
    pub fn observe_http_server(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpServerLabels {
            service: self.service.clone(),
            method: static_method(method),
            route: route.to_owned(),
            status_class: status_class(status),
        };
        self.http_server_request_duration.get_or_create(&labels).observe(seconds, crate::context::current_exemplar(), None);
    }

    pub fn observe_http_client(&self, peer: &str, outcome: ClientOutcome, seconds: f64) {
        let labels = HttpClientLabels { service: self.service.clone(), peer: peer.to_owned(), outcome };
        self.http_client_request_duration.get_or_create(&labels).observe(seconds, crate::context::current_exemplar(), None);
    }

    pub fn observe_consume(&self, topic: &str, outcome: ConsumeOutcome, seconds: f64) {
        let labels = ConsumeLabels { service: self.service.clone(), topic: topic.to_owned(), outcome };
        self.messaging_consume_duration.get_or_create(&labels).observe(seconds, crate::context::current_exemplar(), None);
    }

    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        let labels = PartitionLabels { service: self.service.clone(), topic: topic.to_owned(), partition };
        self.messaging_consumer_lag.get_or_create(&labels).set(lag);
    }

    pub fn inc_dead_letter(&self, topic: &str) {
        self.messaging_dead_letter.get_or_create(&TopicLabels { service: self.service.clone(), topic: topic.to_owned() }).inc();
    }

    /// How long the consumer of `topic` has been retrying the message in
    /// hand; 0 when it is not retrying one.
    pub fn set_consumer_retry_seconds(&self, topic: &str, seconds: f64) {
        self.messaging_consumer_retry_seconds
            .get_or_create(&TopicLabels { service: self.service.clone(), topic: topic.to_owned() })
            .set(seconds);
    }

    pub fn set_outbox(&self, pending: i64, oldest_age_seconds: f64) {
        let labels = ServiceLabels { service: self.service.clone() };
        self.outbox_pending.get_or_create(&labels).set(pending);
        self.outbox_oldest_age_seconds.get_or_create(&labels).set(oldest_age_seconds);
    }

    pub fn inc_outbox_published(&self, topic: &str, n: u64) {
        self.outbox_published.get_or_create(&TopicLabels { service: self.service.clone(), topic: topic.to_owned() }).inc_by(n);
    }

    pub fn set_breaker_state(&self, peer: &str, state: BreakerState) {
        let labels = PeerLabels { service: self.service.clone(), peer: peer.to_owned() };
        self.circuit_breaker_state.get_or_create(&labels).set(state as i64);
    }

    pub fn set_db_pool(&self, idle: i64, in_use: i64) {
        for (state, v) in [(PoolState::idle, idle), (PoolState::in_use, in_use)] {
            self.db_pool_connections.get_or_create(&PoolLabels { service: self.service.clone(), state }).set(v);
        }
    }

    pub fn add_dropped(&self, signal: Signal, exporter: Exporter, n: u64) {
        self.telemetry_dropped.get_or_create(&DropLabels { service: self.service.clone(), signal, exporter }).inc_by(n);
    }

    /// How many records of `signal` this process dropped at `exporter` so far.
    pub fn dropped(&self, signal: Signal, exporter: Exporter) -> u64 {
        self.telemetry_dropped.get_or_create(&DropLabels { service: self.service.clone(), signal, exporter }).get()
    }

    // --- Table pruning ---

    /// Counts `n` rows of `table` deleted by the pruner (0 still creates the
    /// series, so a pruner that finds nothing reads 0, not absent).
    pub fn inc_rows_pruned(&self, table: &str, n: u64) {
        self.db_rows_pruned.get_or_create(&TableLabels { service: self.service.clone(), table: table.to_owned() }).inc_by(n);
    }

    /// How many rows of `table` the pruner deleted so far.
    pub fn rows_pruned(&self, table: &str) -> u64 {
        self.db_rows_pruned.get_or_create(&TableLabels { service: self.service.clone(), table: table.to_owned() }).get()
    }
}

// --- Table pruning: labels ---

/// A database table, by name (a fixed set per service: bounded cardinality).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub service: Arc<String>,
    pub table: String,
}

/// The usual methods without an allocation; anything else as it came.
fn static_method(m: &str) -> Cow<'static, str> {
    match m {
        "GET" => Cow::Borrowed("GET"),
        "POST" => Cow::Borrowed("POST"),
        "PUT" => Cow::Borrowed("PUT"),
        "DELETE" => Cow::Borrowed("DELETE"),
        "PATCH" => Cow::Borrowed("PATCH"),
        "HEAD" => Cow::Borrowed("HEAD"),
        "OPTIONS" => Cow::Borrowed("OPTIONS"),
        // Never the client's spelling: that would be a series per invented method.
        other => Cow::Borrowed(crate::http::method_label(other)),
    }
}

/// `2xx` .. `5xx` (and `1xx`), the only status label: bounded cardinality.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The process's metrics: the standard families and the registry the service
/// adds its own to (at start-up, with [`Metrics::register`]).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<RwLock<Registry>>,
    pub standard: StandardMetrics,
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::default();
        let standard = StandardMetrics::register(service, &mut registry);
        Self { registry: Arc::new(RwLock::new(registry)), standard }
    }

    /// Adds a service-owned family (`orders_total`, ...). Call at start-up;
    /// the name must be in `telemetry/METRICS.md`.
    pub fn register<M>(&self, name: &str, help: &str, metric: M)
    where
        M: prometheus_client::registry::Metric,
    {
        self.registry.write().unwrap_or_else(|e| e.into_inner()).register(name, help, metric);
    }

    /// Same as [`Metrics::register`], with a unit suffix (`_seconds`, ...).
    pub fn register_with_unit<M>(&self, name: &str, help: &str, unit: Unit, metric: M)
    where
        M: prometheus_client::registry::Metric,
    {
        self.registry.write().unwrap_or_else(|e| e.into_inner()).register_with_unit(name, help, unit, metric);
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_names_match_the_contract() {
        let m = Metrics::new("order");
        m.standard.observe_http_server("POST", "/orders", 202, 0.012);
        m.standard.observe_consume("orders.v1", ConsumeOutcome::success, 0.003);
        m.standard.observe_http_client("inventory", ClientOutcome::timeout, 1.0);
        m.standard.set_consumer_lag("orders.v1", 2, 7);
        m.standard.inc_dead_letter("orders.v1");
        m.standard.set_consumer_retry_seconds("orders.v1", 12.5);
        m.standard.set_outbox(3, 1.5);
        m.standard.inc_outbox_published("orders.v1", 2);
        m.standard.set_breaker_state("inventory", BreakerState::Open);
        m.standard.set_db_pool(4, 1);
        m.standard.add_dropped(Signal::logs, Exporter::loki, 5);
        let text = m.encode();
        for needle in [
            r#"http_server_request_duration_seconds_bucket{le="0.025",service="order",method="POST",route="/orders",status_class="2xx"} 1"#,
            r#"messaging_consume_duration_seconds_count{service="order",topic="orders.v1",outcome="success"} 1"#,
            r#"http_client_request_duration_seconds_count{service="order",peer="inventory",outcome="timeout"} 1"#,
            r#"messaging_consumer_lag{service="order",topic="orders.v1",partition="2"} 7"#,
            r#"messaging_dead_letter_total{service="order",topic="orders.v1"} 1"#,
            r#"messaging_consumer_retry_seconds{service="order",topic="orders.v1"} 12.5"#,
            r#"outbox_pending{service="order"} 3"#,
            r#"outbox_oldest_age_seconds{service="order"} 1.5"#,
            r#"outbox_published_total{service="order",topic="orders.v1"} 2"#,
            r#"circuit_breaker_state{service="order",peer="inventory"} 2"#,
            r#"db_pool_connections{service="order",state="in_use"} 1"#,
            r#"telemetry_dropped_total{service="order",signal="logs",exporter="loki"} 5"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"));
        assert_eq!(m.standard.dropped(Signal::logs, Exporter::loki), 5);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(202), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "5xx");
    }

    #[test]
    fn service_metrics_join_the_same_exposition() {
        let m = Metrics::new("order");
        let orders: Family<Vec<(String, String)>, Counter> = Family::default();
        m.register("orders", "Orders by status", orders.clone());
        orders.get_or_create(&vec![("status".into(), "confirmed".into())]).inc();
        assert!(m.encode().contains(r#"orders_total{status="confirmed"} 1"#));
    }

    // --- Table pruning ---

    #[test]
    fn rows_pruned_counter_matches_the_contract() {
        let m = Metrics::new("inventory");
        m.standard.inc_rows_pruned("processed_events", 0);
        m.standard.inc_rows_pruned("restocks", 1000);
        m.standard.inc_rows_pruned("restocks", 7);
        let text = m.encode();
        assert!(text.contains(r#"db_rows_pruned_total{service="inventory",table="restocks"} 1007"#), "{text}");
        assert!(text.contains(r#"db_rows_pruned_total{service="inventory",table="processed_events"} 0"#), "{text}");
        assert_eq!(m.standard.rows_pruned("restocks"), 1007);
    }
}
