//! Each order has exactly its notifications: one per lifecycle event of the
//! order, as its status implies, and never two for one event id.
//!
//! | status    | required                          | allowed too       |
//! |-----------|-----------------------------------|-------------------|
//! | CONFIRMED | order.created, order.confirmed    |                   |
//! | REJECTED  | order.created, order.rejected     |                   |
//! | REJECTED (reason `timeout`) | order.created, order.rejected, order.cancelled | |
//! | CANCELLED | order.created, order.cancelled    | order.confirmed   |
//!
//! (A CANCELLED order may have been confirmed before the customer cancelled.
//! A saga timeout rejects the order and also emits `order.cancelled` with
//! reason `on_timeout`, the compensation that releases any late reservation:
//! the customer is told of both.)
//! Orders still PENDING, or changed within the settle time, are not judged;
//! duplicates by event id and notifications of unknown orders always are.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use glasshouse_contracts::EventType;

use super::world::{NotificationRow, OrderRow, Rules, Status, World};
use super::{Check, CheckOutcome, Kind, Violation};

/// The event types `order` must have, and may have besides.
pub fn implied(order: &OrderRow) -> (Vec<EventType>, Vec<EventType>) {
    use EventType as E;
    match order.status {
        Status::Pending => (vec![], vec![E::OrderCreated]),
        Status::Confirmed => (vec![E::OrderCreated, E::OrderConfirmed], vec![]),
        Status::Rejected if order.timed_out() => (vec![E::OrderCreated, E::OrderRejected, E::OrderCancelled], vec![]),
        Status::Rejected => (vec![E::OrderCreated, E::OrderRejected], vec![]),
        Status::Cancelled => (vec![E::OrderCreated, E::OrderCancelled], vec![E::OrderConfirmed]),
    }
}

pub fn check(world: &World, rules: &Rules) -> CheckOutcome {
    let mut out = CheckOutcome::new(Check::Notifications, format!("{} notifications", world.notifications.len()));

    let mut by_event: BTreeMap<&str, Vec<&NotificationRow>> = BTreeMap::new();
    for n in &world.notifications {
        by_event.entry(&n.event_id).or_default().push(n);
    }
    for (event_id, docs) in by_event.iter().filter(|(_, d)| d.len() > 1) {
        out.violations.push(Violation::new(
            Kind::NotificationDuplicateEvent,
            *event_id,
            format!("stored {} times ({} of order {})", docs.len(), docs[0].event_type, docs[0].order_id),
        ));
    }

    // Per order: event type -> distinct event ids.
    let mut by_order: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for n in &world.notifications {
        by_order.entry(&n.order_id).or_default().entry(&n.event_type).or_default().insert(&n.event_id);
    }
    let orders: HashMap<&str, &OrderRow> = world.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    for (order_id, types) in by_order.iter().filter(|(id, _)| !orders.contains_key(*id)) {
        let n: usize = types.values().map(BTreeSet::len).sum();
        let kinds: Vec<&str> = types.keys().copied().collect();
        out.violations.push(Violation::new(
            Kind::NotificationUnknownOrder,
            *order_id,
            format!("{n} notifications ({}) for an order the Order database does not have", kinds.join(", ")),
        ));
    }

    let empty = BTreeMap::new();
    let mut judged = 0usize;
    for order in world.orders.iter().filter(|o| o.status != Status::Pending && o.settled(rules.settle_seconds)) {
        judged += 1;
        let have = by_order.get(order.id.as_str()).unwrap_or(&empty);
        let (required, optional) = implied(order);
        for t in &required {
            if !have.contains_key(t.as_str()) {
                out.violations.push(Violation::new(
                    Kind::NotificationMissing,
                    &order.id,
                    format!("{} order has no {} notification", order.status.as_str(), t.as_str()),
                ));
            }
        }
        for (t, ids) in have {
            let expected = required.iter().chain(&optional).any(|e| e.as_str() == *t);
            if !expected {
                out.violations.push(Violation::new(
                    Kind::NotificationUnexpected,
                    &order.id,
                    format!("{} order has an {t} notification (event {})", order.status.as_str(), join(ids)),
                ));
            } else if ids.len() > 1 {
                out.violations.push(Violation::new(
                    Kind::NotificationUnexpected,
                    &order.id,
                    format!("{} {t} notifications, from different events ({})", ids.len(), join(ids)),
                ));
            }
        }
    }
    out.examined = format!("{} notifications, {judged} settled final orders", world.notifications.len());
    out
}

fn join(ids: &BTreeSet<&str>) -> String {
    ids.iter().copied().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::world::fixtures::{RULES, notification, order, rejected};

    fn world() -> World {
        let mut w = World::empty();
        w.orders = vec![
            order("c", Status::Confirmed, 300.0),
            rejected("r", "out_of_stock", 300.0),
            order("x", Status::Cancelled, 300.0),
            order("xc", Status::Cancelled, 300.0),
            order("p", Status::Pending, 1.0),
        ];
        w.notifications = vec![
            notification("e1", "order.created", "c"),
            notification("e2", "order.confirmed", "c"),
            notification("e3", "order.created", "r"),
            notification("e4", "order.rejected", "r"),
            notification("e5", "order.created", "x"),
            notification("e6", "order.cancelled", "x"),
            notification("e7", "order.created", "xc"),
            notification("e8", "order.confirmed", "xc"),
            notification("e9", "order.cancelled", "xc"),
            notification("e10", "order.created", "p"),
        ];
        w
    }

    fn found(out: &CheckOutcome) -> Vec<(Kind, &str)> {
        out.violations.iter().map(|v| (v.kind, v.subject.as_str())).collect()
    }

    #[test]
    fn each_order_with_exactly_its_notifications_passes() {
        let out = check(&world(), &RULES);
        assert!(out.violations.is_empty(), "{out:?}");
        assert_eq!(out.examined, "10 notifications, 4 settled final orders");
    }

    #[test]
    fn a_missing_final_notification_is_reported() {
        let mut w = world();
        w.notifications.retain(|n| n.event_id != "e2");
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::NotificationMissing, "c")]);
        assert_eq!(out.violations[0].detail, "CONFIRMED order has no order.confirmed notification");
    }

    #[test]
    fn a_missing_created_notification_is_reported() {
        let mut w = world();
        w.notifications.retain(|n| n.event_id != "e3");
        assert_eq!(found(&check(&w, &RULES)), [(Kind::NotificationMissing, "r")]);
    }

    #[test]
    fn duplicates_by_event_id_are_reported_even_for_young_orders() {
        let mut w = world();
        w.notifications.push(notification("e10", "order.created", "p"));
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::NotificationDuplicateEvent, "e10")]);
        assert_eq!(out.violations[0].detail, "stored 2 times (order.created of order p)");
    }

    #[test]
    fn notifications_the_status_does_not_imply_are_reported() {
        let mut w = world();
        w.notifications.push(notification("e11", "order.rejected", "c"));
        w.notifications.push(notification("e12", "order.created", "r"));
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::NotificationUnexpected, "c"), (Kind::NotificationUnexpected, "r")]);
        assert_eq!(out.violations[0].detail, "CONFIRMED order has an order.rejected notification (event e11)");
        assert_eq!(out.violations[1].detail, "2 order.created notifications, from different events (e12, e3)");
    }

    #[test]
    fn notifications_of_unknown_orders_are_reported() {
        let mut w = world();
        w.notifications.push(notification("e13", "order.created", "ghost"));
        assert_eq!(found(&check(&w, &RULES)), [(Kind::NotificationUnknownOrder, "ghost")]);
    }

    #[test]
    fn recently_changed_orders_are_not_judged() {
        let mut w = world();
        w.notifications.retain(|n| n.event_id != "e6");
        w.orders[2].idle_seconds = 2.0;
        assert!(check(&w, &RULES).violations.is_empty());
    }

    #[test]
    fn a_timed_out_order_is_told_of_its_rejection_and_its_compensation() {
        let mut w = world();
        w.orders.push(rejected("t", "timeout", 300.0));
        for (id, kind) in [("e20", "order.created"), ("e21", "order.rejected"), ("e22", "order.cancelled")] {
            w.notifications.push(notification(id, kind, "t"));
        }
        assert!(check(&w, &RULES).violations.is_empty());
        // The compensation's notification is required, not just allowed.
        w.notifications.retain(|n| n.event_id != "e22");
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::NotificationMissing, "t")]);
        // A stock rejection has no compensation to tell of.
        w.notifications.push(notification("e23", "order.cancelled", "r"));
        assert!(found(&check(&w, &RULES)).contains(&(Kind::NotificationUnexpected, "r")));
    }
}
