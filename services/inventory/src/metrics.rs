//! The Inventory service's own metric families (names from `telemetry/METRICS.md`):
//! `inventory_reservations_total{outcome}`, `inventory_stock_low_items`,
//! `fault_flag_active{flag}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::faults::FLAG_NAMES;
use crate::reservation::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlagLabels {
    flag: &'static str,
}

/// Business metrics, registered once at start-up and shared by handles.
#[derive(Clone, Debug)]
pub struct InventoryMetrics {
    reservations: Family<OutcomeLabels, Counter>,
    stock_low: Gauge,
    fault_flags: Family<FlagLabels, Gauge>,
}

impl InventoryMetrics {
    /// Registers the families, with every label value present from the start
    /// (at zero), so a dashboard's `rate()` and an alert's absence check see
    /// the series before the first event.
    pub fn register(metrics: &glasshouse_telemetry::Metrics) -> Self {
        let m = Self { reservations: Family::default(), stock_low: Gauge::default(), fault_flags: Family::default() };
        for o in Outcome::ALL {
            let _ = m.reservations.get_or_create(&OutcomeLabels { outcome: o.as_str() });
        }
        for f in FLAG_NAMES {
            let _ = m.fault_flags.get_or_create(&FlagLabels { flag: f });
        }
        metrics.register("inventory_reservations", "Reservation verdicts and releases, by outcome", m.reservations.clone());
        metrics.register("inventory_stock_low_items", "Items whose stock is at or below the low-stock threshold", m.stock_low.clone());
        metrics.register("fault_flag_active", "1 while a fault-injection flag is non-zero", m.fault_flags.clone());
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

    /// Marks fault flag `flag` (one of [`FLAG_NAMES`]) on or off.
    pub fn set_fault_flag(&self, flag: &'static str, active: bool) {
        self.fault_flags.get_or_create(&FlagLabels { flag }).set(i64::from(active));
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
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
