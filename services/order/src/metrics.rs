//! The Order service's own metric families (names from `telemetry/METRICS.md`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::domain::OrderStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabels {
    currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    from: String,
    event: String,
}

fn completion_histogram() -> Histogram {
    // Seconds; 30 is the completion SLO's threshold and must stay a bucket bound.
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0])
}

fn value_histogram() -> Histogram {
    // Minor units: 1.00 .. 100 000.00 in roughly x3 steps.
    Histogram::new([100.0, 300.0, 1_000.0, 3_000.0, 10_000.0, 30_000.0, 100_000.0, 300_000.0, 1_000_000.0, 10_000_000.0])
}

/// Business counters, registered once at start-up and shared by handles.
#[derive(Clone, Debug)]
pub struct OrderMetrics {
    orders: Family<StatusLabels, Counter>,
    value: Family<CurrencyLabels, Histogram, fn() -> Histogram>,
    illegal: Family<TransitionLabels, Counter>,
    completion: Family<StatusLabels, Histogram, fn() -> Histogram>,
    saga_timeouts: Counter,
}

impl OrderMetrics {
    pub fn register(metrics: &glasshouse_telemetry::Metrics) -> Self {
        let m = Self {
            orders: Family::default(),
            value: Family::new_with_constructor(value_histogram as fn() -> Histogram),
            illegal: Family::default(),
            completion: Family::new_with_constructor(completion_histogram as fn() -> Histogram),
            saga_timeouts: Counter::default(),
        };
        metrics.register("orders", "Orders by the status they reached", m.orders.clone());
        metrics.register("order_value_minor_units", "Value of created orders, in minor currency units", m.value.clone());
        metrics.register("order_illegal_transitions", "Events that would move an order where it cannot go", m.illegal.clone());
        metrics.register_with_unit(
            "order_completion",
            "Time from order creation to its first state after PENDING",
            prometheus_client::registry::Unit::Seconds,
            m.completion.clone(),
        );
        metrics.register(
            "order_saga_timeouts",
            "Orders rejected and compensated because Inventory's verdict missed the saga deadline",
            m.saga_timeouts.clone(),
        );
        m
    }

    /// Counts an order reaching `status` (`created` for a new one).
    pub fn reached(&self, status: OrderStatus) {
        self.orders.get_or_create(&StatusLabels { status: status.metric_label().into() }).inc();
    }

    pub fn created_value(&self, currency: &str, minor: i64) {
        self.value.get_or_create(&CurrencyLabels { currency: currency.into() }).observe(minor as f64);
    }

    /// An order left PENDING for `to`, `seconds` after it was created.
    pub fn completed(&self, to: OrderStatus, seconds: f64) {
        self.completion.get_or_create(&StatusLabels { status: to.metric_label().into() }).observe(seconds.max(0.0));
    }

    /// One order resolved by the saga deadline (also counted as `rejected`).
    pub fn saga_timeout(&self) {
        self.saga_timeouts.inc();
    }

    pub fn illegal(&self, from: OrderStatus, event: &str) {
        self.illegal.get_or_create(&TransitionLabels { from: from.as_str().into(), event: event.into() }).inc();
    }
}
