//! The Notification service's own metric families (names from `telemetry/METRICS.md`).

use glasshouse_contracts::EventType;
use glasshouse_telemetry::metrics::TraceExemplar;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Unit;

/// Buckets of `order_to_notification_seconds`, in seconds. The lag spans the
/// whole saga hop (outbox poll, Kafka, maybe Inventory and Order in between
/// for `order.confirmed`), so it starts at 10 ms and must still resolve a
/// backlog of a minute, the point where a customer notices.
pub const LAG_BUCKETS: [f64; 13] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    /// The event type (`order.confirmed`): four values, bounded.
    r#type: String,
}

type LagHistogram = HistogramWithExemplars<TraceExemplar>;

fn lag_histogram() -> LagHistogram {
    HistogramWithExemplars::new(LAG_BUCKETS.into_iter())
}

/// Business metrics, registered once at start-up and shared by handles.
#[derive(Clone, Debug)]
pub struct NotificationMetrics {
    notifications: Family<TypeLabels, Counter>,
    lag: Family<TypeLabels, LagHistogram, fn() -> LagHistogram>,
}

impl NotificationMetrics {
    pub fn register(metrics: &glasshouse_telemetry::Metrics) -> Self {
        let m = Self { notifications: Family::default(), lag: Family::new_with_constructor(lag_histogram as fn() -> LagHistogram) };
        metrics.register("notifications", "Notifications stored, by the event type they tell about", m.notifications.clone());
        metrics.register_with_unit(
            "order_to_notification",
            "Time from an event's occurred_at to its notification being stored",
            Unit::Seconds,
            m.lag.clone(),
        );
        m
    }

    /// Counts a stored notification and its end-to-end lag. Duplicates are
    /// not counted: nothing new reached the customer. The exemplar is the
    /// consume trace, which continues the trace of the request that caused it.
    pub fn stored(&self, event_type: EventType, lag_seconds: f64) {
        let labels = TypeLabels { r#type: event_type.as_str().to_owned() };
        self.notifications.get_or_create(&labels).inc();
        // Clocks of two hosts may disagree a little; a negative lag means "no lag".
        self.lag.get_or_create(&labels).observe(lag_seconds.max(0.0), glasshouse_telemetry::traces::current_exemplar(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_match_the_contract() {
        let metrics = glasshouse_telemetry::Metrics::new("notification");
        let m = NotificationMetrics::register(&metrics);
        m.stored(EventType::OrderConfirmed, 0.3);
        m.stored(EventType::OrderConfirmed, -1.0);
        let text = metrics.encode();
        assert!(text.contains(r#"notifications_total{type="order.confirmed"} 2"#), "{text}");
        assert!(text.contains(r#"order_to_notification_seconds_bucket{le="0.5",type="order.confirmed"} 2"#), "{text}");
        assert!(text.contains(r#"order_to_notification_seconds_bucket{le="0.01",type="order.confirmed"} 1"#), "{text}");
        assert!(text.contains(r#"order_to_notification_seconds_count{type="order.confirmed"} 2"#), "{text}");
    }
    /// Every business family `telemetry/METRICS.md` gives to `notification`
    /// is exposed under that name with those labels, and nothing else is.
    #[test]
    fn exposes_exactly_the_families_metrics_md_assigns_to_notification() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../telemetry/METRICS.md")).unwrap();
        // Business-family rows owned by notification: (name, label names joined by ",").
        let mut contract: Vec<(String, String)> = glasshouse_telemetry::contract::parse_metrics_md(&doc)
            .unwrap()
            .into_iter()
            .filter(|m| m.section.starts_with("Business families"))
            .filter(|m| m.notes.get("owner").is_some_and(|o| o.starts_with("notification")))
            .map(|m| (m.name.clone(), m.label_names().into_iter().collect::<Vec<_>>().join(",")))
            .collect();
        contract.sort();
        assert_eq!(contract.len(), 2, "{contract:?}");

        let metrics = glasshouse_telemetry::Metrics::new("notification");
        NotificationMetrics::register(&metrics).stored(EventType::OrderCreated, 0.1);
        let text = metrics.encode();
        let standard = glasshouse_telemetry::Metrics::new("notification").encode();
        let mut exposed: Vec<(String, String)> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ") && !standard.contains(*l)) {
            let mut words = line.split_whitespace().skip(2);
            let (family, kind) = (words.next().unwrap(), words.next().unwrap());
            let name = if kind == "counter" { format!("{family}_total") } else { family.to_owned() };
            let sample = text.lines().find(|l| !l.starts_with('#') && l.starts_with(family)).unwrap();
            let labels = sample.split_once('{').unwrap().1.split_once('}').unwrap().0;
            let keys: Vec<&str> = labels.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, _)| k).filter(|k| *k != "le").collect();
            exposed.push((name, keys.join(",")));
        }
        exposed.sort();
        assert_eq!(exposed, contract);
    }
}
