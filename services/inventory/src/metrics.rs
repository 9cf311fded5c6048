//! The Inventory service's own metric families (names from `telemetry/METRICS.md`):
//! `inventory_reservations_total{outcome}`, `inventory_stock_low_items`,
//! `fault_flag_active{flag}`, `fault_flags_file{path}`.
//!
//! This module depends on no other part of the service but the pure
//! [`crate::reservation::Outcome`]: the modules that count things
//! ([`crate::faults`], [`crate::events`], [`crate::stock_low`]) depend on it,
//! never the other way round. So the fault flags' names live in `faults`,
//! which creates their series when its watcher starts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::reservation::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlagLabels {
    flag: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: String,
}

/// Business metrics, registered once at start-up and shared by handles.
#[derive(Clone, Debug)]
pub struct InventoryMetrics {
    reservations: Family<OutcomeLabels, Counter>,
    stock_low: Gauge,
    fault_flags: Family<FlagLabels, Gauge>,
    /// An info metric: one series, value 1, naming the flag file read.
    fault_flags_file: Family<PathLabels, Gauge>,
}

impl InventoryMetrics {
    /// Registers the families, with every outcome present from the start (at
    /// zero), so a dashboard's `rate()` and an alert's absence check see the
    /// series before the first event. (The fault watcher sets every flag's
    /// series, and the file's, when it starts.)
    pub fn register(metrics: &glasshouse_telemetry::Metrics) -> Self {
        let m = Self {
            reservations: Family::default(),
            stock_low: Gauge::default(),
            fault_flags: Family::default(),
            fault_flags_file: Family::default(),
        };
        for o in Outcome::ALL {
            let _ = m.reservations.get_or_create(&OutcomeLabels { outcome: o.as_str() });
        }
        metrics.register("inventory_reservations", "Reservation verdicts and releases, by outcome", m.reservations.clone());
        metrics.register("inventory_stock_low_items", "Items whose stock is at or below the low-stock threshold", m.stock_low.clone());
        metrics.register("fault_flag_active", "1 while a fault-injection flag is non-zero", m.fault_flags.clone());
        metrics.register(
            "fault_flags_file",
            "Info: the absolute path of the fault flag file this process reads (empty: none configured, all flags off)",
            m.fault_flags_file.clone(),
        );
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

    /// Marks fault flag `flag` (one of `faults::FLAG_NAMES`) on or off.
    pub fn set_fault_flag(&self, flag: &'static str, active: bool) {
        self.fault_flags.get_or_create(&FlagLabels { flag }).set(i64::from(active));
    }

    /// Names the fault flag file read (absolute; empty when none), replacing
    /// any earlier one: the family always holds one series.
    pub fn set_fault_flags_file(&self, path: &str) {
        self.fault_flags_file.clear();
        self.fault_flags_file.get_or_create(&PathLabels { path: path.to_owned() }).set(1);
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
        m.set_fault_flag("catalog_error_rate", true);
        m.set_fault_flag("reservation_latency_ms", false);
        m.set_fault_flags_file("/elsewhere/faults.json");
        m.set_fault_flags_file("/srv/glasshouse/etc/inventory/faults.json");
        let text = metrics.encode();
        for needle in [
            r#"inventory_reservations_total{outcome="reserved"} 2"#,
            r#"inventory_reservations_total{outcome="rejected_out_of_stock"} 0"#,
            r#"inventory_reservations_total{outcome="rejected_unknown_sku"} 0"#,
            r#"inventory_reservations_total{outcome="rejected_cancelled"} 0"#,
            r#"inventory_reservations_total{outcome="released"} 0"#,
            "inventory_stock_low_items 7",
            r#"fault_flag_active{flag="catalog_error_rate"} 1"#,
            r#"fault_flag_active{flag="reservation_latency_ms"} 0"#,
            r#"fault_flags_file{path="/srv/glasshouse/etc/inventory/faults.json"} 1"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("/elsewhere/"), "one file series only:\n{text}");
    }
}
