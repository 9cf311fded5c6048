//! Every order reaches a final status (CONFIRMED, REJECTED or CANCELLED)
//! within the settle time. A PENDING order older than that is stuck: an event
//! of its saga was lost, dead-lettered or is waiting in an outbox.

use super::world::{Rules, Status, World};
use super::{Check, CheckOutcome, Kind, Violation};

pub fn check(world: &World, rules: &Rules) -> CheckOutcome {
    let settling = world.orders.iter().filter(|o| o.status == Status::Pending && o.age_seconds < rules.settle_seconds).count();
    let mut out = CheckOutcome::new(Check::Orders, format!("{} orders, {settling} young enough to be PENDING", world.orders.len()));
    let mut stuck: Vec<_> = world.orders.iter().filter(|o| o.status == Status::Pending && o.age_seconds >= rules.settle_seconds).collect();
    // Oldest first: the first to look at.
    stuck.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
    for o in stuck {
        out.violations.push(Violation::new(
            Kind::OrderStuck,
            &o.id,
            format!("PENDING for {:.0} s (settle time {:.0} s)", o.age_seconds, rules.settle_seconds),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::world::fixtures::{RULES, order};

    #[test]
    fn final_and_young_orders_pass() {
        let mut w = World::empty();
        w.orders = vec![
            order("a", Status::Confirmed, 500.0),
            order("b", Status::Rejected, 500.0),
            order("c", Status::Cancelled, 500.0),
            order("d", Status::Pending, 59.0),
        ];
        let out = check(&w, &RULES);
        assert!(out.violations.is_empty(), "{out:?}");
        assert_eq!(out.examined, "4 orders, 1 young enough to be PENDING");
    }

    #[test]
    fn old_pending_orders_are_stuck_oldest_first() {
        let mut w = World::empty();
        w.orders = vec![order("young", Status::Pending, 10.0), order("old", Status::Pending, 61.0), order("older", Status::Pending, 900.0)];
        let out = check(&w, &RULES);
        let ids: Vec<&str> = out.violations.iter().map(|v| v.subject.as_str()).collect();
        assert_eq!(ids, ["older", "old"]);
        assert!(out.violations.iter().all(|v| v.kind == Kind::OrderStuck));
        assert_eq!(out.violations[0].detail, "PENDING for 900 s (settle time 60 s)");
    }
}
