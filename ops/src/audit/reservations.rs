//! Inventory's reservations agree with what Order decided about each order:
//!
//! - at most one reservation per (order, SKU) (the primary key says so; a
//!   lost key would show here);
//! - unreleased units are held only for CONFIRMED orders, and a CONFIRMED
//!   order holds exactly the units of its lines;
//! - released units belong only to CANCELLED orders or orders REJECTED with
//!   reason `timeout` (reserved after Order stopped waiting, then given back);
//! - an order REJECTED for stock reasons (`out_of_stock`, `unknown_sku`) has
//!   no reservation at all;
//! - every reservation names an order Order has.
//!
//! Orders changed within the settle time, and PENDING orders, are not judged:
//! their events may still be on the way (stuck ones are the `orders` check's).

use std::collections::{BTreeMap, HashMap};

use super::world::{OrderRow, ReservationRow, Rules, Status, World};
use super::{Check, CheckOutcome, Kind, Violation};

pub fn check(world: &World, rules: &Rules) -> CheckOutcome {
    let mut by_order: BTreeMap<&str, Vec<&ReservationRow>> = BTreeMap::new();
    for r in &world.reservations {
        by_order.entry(&r.order_id).or_default().push(r);
    }
    let mut out = CheckOutcome::new(Check::Reservations, format!("{} reservations of {} orders", world.reservations.len(), by_order.len()));
    let orders: HashMap<&str, &OrderRow> = world.orders.iter().map(|o| (o.id.as_str(), o)).collect();

    for (order_id, rows) in &by_order {
        let mut per_sku: BTreeMap<&str, usize> = BTreeMap::new();
        for r in rows {
            *per_sku.entry(&r.sku).or_default() += 1;
        }
        for (sku, n) in per_sku.into_iter().filter(|(_, n)| *n > 1) {
            out.violations.push(Violation::new(Kind::ReservationDuplicate, format!("{order_id}/{sku}"), format!("{n} reservation rows")));
        }
        let Some(order) = orders.get(order_id) else {
            out.violations.push(Violation::new(
                Kind::ReservationUnknownOrder,
                *order_id,
                format!("{} reservation rows ({}) for an order the Order database does not have", rows.len(), skus(rows)),
            ));
            continue;
        };
        if order.status == Status::Pending || !order.settled(rules.settle_seconds) {
            continue;
        }
        judge(order, rows, &mut out);
    }

    let mut lines: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for l in &world.confirmed_lines {
        *lines.entry(&l.order_id).or_default().entry(&l.sku).or_default() += l.quantity;
    }
    for order in world.orders.iter().filter(|o| o.status == Status::Confirmed && o.settled(rules.settle_seconds)) {
        let want = lines.get(order.id.as_str()).cloned().unwrap_or_default();
        let mut held: BTreeMap<&str, i64> = BTreeMap::new();
        for r in by_order.get(order.id.as_str()).into_iter().flatten().filter(|r| !r.released) {
            *held.entry(&r.sku).or_default() += r.quantity;
        }
        if want != held {
            out.violations.push(Violation::new(
                Kind::ConfirmedReservationMismatch,
                &order.id,
                format!("CONFIRMED; its lines ask for [{}] but its active reservations hold [{}]", units(&want), units(&held)),
            ));
        }
    }
    out
}

/// The rules for one settled, final order that has reservation rows.
fn judge(order: &OrderRow, rows: &[&ReservationRow], out: &mut CheckOutcome) {
    let active: Vec<&ReservationRow> = rows.iter().copied().filter(|r| !r.released).collect();
    let released: Vec<&ReservationRow> = rows.iter().copied().filter(|r| r.released).collect();
    let status = match (order.status, order.rejection_reason.as_deref()) {
        (Status::Rejected, Some(reason)) => format!("REJECTED ({reason})"),
        (s, _) => s.as_str().to_owned(),
    };
    if order.rejected_for_stock() {
        out.violations.push(Violation::new(
            Kind::ReservationForStockRejection,
            &order.id,
            format!("{status}, yet Inventory holds reservation rows for it ({})", skus(rows)),
        ));
        return;
    }
    if !active.is_empty() && order.status != Status::Confirmed {
        out.violations.push(Violation::new(
            Kind::ReservationNotReleased,
            &order.id,
            format!("{status}, yet units are still reserved for it ({})", skus(&active)),
        ));
    }
    let may_release = order.status == Status::Cancelled || order.timed_out();
    if !released.is_empty() && !may_release {
        out.violations.push(Violation::new(
            Kind::ReservationReleasedUnexpectedly,
            &order.id,
            format!("{status}, yet reservations were released ({}); only CANCELLED or timed-out orders release", skus(&released)),
        ));
    }
}

fn skus(rows: &[&ReservationRow]) -> String {
    rows.iter().map(|r| format!("{}x{}", r.sku, r.quantity)).collect::<Vec<_>>().join(", ")
}

fn units(m: &BTreeMap<&str, i64>) -> String {
    m.iter().map(|(s, q)| format!("{s}x{q}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::world::fixtures::{RULES, line, order, rejected, reservation};

    /// One order of every fate, each with the reservations it should have.
    fn world() -> World {
        let mut w = World::empty();
        w.orders = vec![
            order("confirmed", Status::Confirmed, 300.0),
            order("cancelled", Status::Cancelled, 300.0),
            order("cancelled-early", Status::Cancelled, 300.0),
            rejected("no-stock", "out_of_stock", 300.0),
            rejected("no-sku", "unknown_sku", 300.0),
            rejected("late", "timeout", 300.0),
            rejected("late-nothing", "timeout", 300.0),
            order("pending", Status::Pending, 5.0),
        ];
        w.confirmed_lines = vec![line("confirmed", "A", 2), line("confirmed", "B", 1)];
        w.reservations = vec![
            reservation("confirmed", "A", 2, false),
            reservation("confirmed", "B", 1, false),
            reservation("cancelled", "A", 1, true),
            reservation("late", "B", 3, true),
            reservation("pending", "A", 1, false),
        ];
        w
    }

    fn found(out: &CheckOutcome) -> Vec<(Kind, &str)> {
        out.violations.iter().map(|v| (v.kind, v.subject.as_str())).collect()
    }

    #[test]
    fn every_fate_with_its_reservations_passes() {
        let out = check(&world(), &RULES);
        assert!(out.violations.is_empty(), "{out:?}");
        assert_eq!(out.examined, "5 reservations of 4 orders");
    }

    #[test]
    fn duplicates_and_unknown_orders_are_reported() {
        let mut w = world();
        w.reservations.push(reservation("confirmed", "B", 1, false));
        w.reservations.push(reservation("ghost", "A", 1, false));
        let out = check(&w, &RULES);
        assert_eq!(
            found(&out),
            [
                (Kind::ReservationDuplicate, "confirmed/B"),
                (Kind::ReservationUnknownOrder, "ghost"),
                (Kind::ConfirmedReservationMismatch, "confirmed"),
            ]
        );
        assert_eq!(out.violations[2].detail, "CONFIRMED; its lines ask for [Ax2, Bx1] but its active reservations hold [Ax2, Bx2]");
    }

    #[test]
    fn units_held_for_a_cancelled_or_timed_out_order_are_reported() {
        let mut w = world();
        w.reservations[2].released = false;
        w.reservations[3].released = false;
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::ReservationNotReleased, "cancelled"), (Kind::ReservationNotReleased, "late")]);
        assert_eq!(out.violations[1].detail, "REJECTED (timeout), yet units are still reserved for it (Bx3)");
    }

    #[test]
    fn a_released_confirmed_order_is_reported_twice_over() {
        let mut w = world();
        w.reservations[0].released = true;
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::ReservationReleasedUnexpectedly, "confirmed"), (Kind::ConfirmedReservationMismatch, "confirmed")]);
    }

    #[test]
    fn any_reservation_of_a_stock_rejection_is_reported() {
        let mut w = world();
        w.reservations.push(reservation("no-stock", "A", 1, true));
        w.reservations.push(reservation("no-sku", "Z", 1, false));
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::ReservationForStockRejection, "no-sku"), (Kind::ReservationForStockRejection, "no-stock")]);
    }

    #[test]
    fn a_confirmed_order_without_reservations_is_reported() {
        let mut w = world();
        w.reservations.retain(|r| r.order_id != "confirmed");
        let out = check(&w, &RULES);
        assert_eq!(found(&out), [(Kind::ConfirmedReservationMismatch, "confirmed")]);
    }

    #[test]
    fn orders_changed_within_the_settle_time_are_not_judged() {
        let mut w = world();
        w.reservations[2].released = false;
        w.orders[1].idle_seconds = 3.0;
        assert!(check(&w, &RULES).violations.is_empty());
    }
}
