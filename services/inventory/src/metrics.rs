//! The Inventory service's own metric families (names from `telemetry/METRICS.md`):
//! `inventory_reservations_total{outcome}`, `inventory_stock_low_items`.
//! (`fault_flag_active` and `fault_flags_file` are the platform's, registered
//! by `ServiceBuilder::faults`.)
//!
//! This module depends on no other part of the service but the pure
//! [`crate::reservation::Outcome`]: the modules that count things
//! ([`crate::events`], [`crate::stock_low`]) depend on it, never the other way round.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::reservation::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Business metrics, registered once at start-up and shared by handles.
#[derive(Clone, Debug)]
pub struct InventoryMetrics {
    reservations: Family<OutcomeLabels, Counter>,
    stock_low: Gauge,
}

impl InventoryMetrics {
    /// Registers the families, with every outcome present from the start (at
    /// zero), so a dashboard's `rate()` and an alert's absence check see the
    /// series before the first event.
    pub fn register(metrics: &glasshouse_telemetry::Metrics) -> Self {
        let m = Self { reservations: Family::default(), stock_low: Gauge::default() };
        for o in Outcome::ALL {
            let _ = m.reservations.get_or_create(&OutcomeLabels { outcome: o.as_str() });
        }
        metrics.register("inventory_reservations", "Reservation verdicts and releases, by outcome", m.reservations.clone());
        metrics.register("inventory_stock_low_items", "Items whose stock is at or below the low-stock threshold", m.stock_low.clone());
        m
    }

    /// Counts one verdict or release.
    pub fn reservation(&self, outcome: Outcome) {
        self.reservations.get_or_create(&OutcomeLabels { outcome: outcome.as_str() }).inc();
    }

    /// The current count of low-stock items.
    pub fn set_stock_low(&self, items: i64) {
        self.stock_low.set(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_match_the_contract() {
        let metrics = glasshouse_telemetry::Metrics::new("inventory");
        let m = InventoryMetrics::register(&metrics);
        m.reservation(Outcome::Reserved);
        m.reservation(Outcome::Reserved);
        m.set_stock_low(7);
        let text = metrics.encode();
        for needle in [
            r#"inventory_reservations_total{outcome="reserved"} 2"#,
            r#"inventory_reservations_total{outcome="rejected_out_of_stock"} 0"#,
            r#"inventory_reservations_total{outcome="rejected_unknown_sku"} 0"#,
            r#"inventory_reservations_total{outcome="rejected_cancelled"} 0"#,
            r#"inventory_reservations_total{outcome="released"} 0"#,
            "inventory_stock_low_items 7",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
