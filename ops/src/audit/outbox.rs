//! No event waits in an outbox (Order's or Inventory's) longer than the settle
//! time. The relay publishes within a second; an older unsent row means the
//! relay is down, Kafka refuses it, or an earlier row of the same key is stuck
//! (the relay keeps per-key order, so one stuck row holds back its order).

use super::world::{Rules, World};
use super::{Check, CheckOutcome, Kind, Violation};

pub fn check(world: &World, rules: &Rules) -> CheckOutcome {
    let mut out = CheckOutcome::new(Check::Outbox, format!("{} unsent rows", world.outbox.len()));
    let mut old: Vec<_> = world.outbox.iter().filter(|r| r.age_seconds >= rules.settle_seconds).collect();
    old.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
    for r in old {
        out.violations.push(Violation::new(
            Kind::OutboxUnsent,
            &r.event_id,
            format!("{} outbox: {} to {} unsent for {:.0} s", r.service, r.event_type, r.topic, r.age_seconds),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::world::OutboxRow;
    use crate::audit::world::fixtures::RULES;

    fn row(service: &str, event_id: &str, age: f64) -> OutboxRow {
        OutboxRow {
            service: service.into(),
            event_id: event_id.into(),
            topic: "orders.v1".into(),
            event_type: "order.created".into(),
            age_seconds: age,
        }
    }

    #[test]
    fn fresh_unsent_rows_pass() {
        let mut w = World::empty();
        w.outbox = vec![row("order", "e1", 1.0), row("inventory", "e2", 59.9)];
        assert!(check(&w, &RULES).violations.is_empty());
    }

    #[test]
    fn old_unsent_rows_are_reported_oldest_first() {
        let mut w = World::empty();
        w.outbox = vec![row("order", "e1", 61.0), row("inventory", "e2", 3600.0), row("order", "e3", 2.0)];
        let out = check(&w, &RULES);
        let ids: Vec<_> = out.violations.iter().map(|v| (v.kind, v.subject.as_str())).collect();
        assert_eq!(ids, [(Kind::OutboxUnsent, "e2"), (Kind::OutboxUnsent, "e1")]);
        assert_eq!(out.violations[0].detail, "inventory outbox: order.created to orders.v1 unsent for 3600 s");
    }
}
