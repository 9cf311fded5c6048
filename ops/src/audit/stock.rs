//! Stock is never negative, and each SKU's stock is exactly what its history
//! adds up to:
//!
//! ```text
//! items.stock == initial + restocks + other adjustments - active reservations
//! ```
//!
//! where `initial` and the other adjustments are the SKU's `stock_adjustments`
//! rows (the stock an item was created with is an adjustment with reason
//! `initial`), restocks are its `restocks` rows, and active reservations are
//! its `reservations` rows not yet released. A change to `items.stock` that
//! bypassed the ledger (a lost update, a manual fix, a release applied twice)
//! shows up as a difference. All of it is read in one consistent snapshot of
//! Inventory's database, so no settle time applies.
//!
//! Without a `stock_adjustments` table the equation cannot be written; the
//! check then only tests `stock >= 0` and says the rest was skipped.

use std::collections::{BTreeMap, BTreeSet};

use super::world::{Ledger, Rules, World};
use super::{Check, CheckOutcome, Kind, Violation};

/// The adjustment reason of an item's stock at creation.
pub const INITIAL_REASON: &str = "initial";

/// One SKU's ledger terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Terms {
    initial: i64,
    has_initial: bool,
    restocks: i64,
    other: i64,
    reserved: i64,
}

impl Terms {
    fn expected(&self) -> i64 {
        self.initial + self.restocks + self.other - self.reserved
    }
}

pub fn check(world: &World, _rules: &Rules) -> CheckOutcome {
    let mut out = CheckOutcome::new(Check::Stock, format!("{} SKUs", world.items.len()));
    for item in world.items.iter().filter(|i| i.stock < 0) {
        out.violations.push(Violation::new(Kind::StockNegative, &item.sku, format!("stock is {}", item.stock)));
    }
    let adjustments = match &world.ledger {
        Ledger::Present(rows) => rows,
        Ledger::Unavailable(why) => {
            out.skipped = Some(format!("the ledger equation (stock == initial + restocks + adjustments - active reservations): {why}"));
            return out;
        }
    };

    let mut terms: BTreeMap<&str, Terms> = BTreeMap::new();
    for a in adjustments {
        let t = terms.entry(&a.sku).or_default();
        if a.reason.as_deref() == Some(INITIAL_REASON) {
            t.initial += a.delta;
            t.has_initial = true;
        } else {
            t.other += a.delta;
        }
    }
    for r in &world.restocks {
        terms.entry(&r.sku).or_default().restocks += r.quantity;
    }
    for r in world.reservations.iter().filter(|r| !r.released) {
        terms.entry(&r.sku).or_default().reserved += r.quantity;
    }

    let known: BTreeSet<&str> = world.items.iter().map(|i| i.sku.as_str()).collect();
    for (sku, t) in terms.iter().filter(|(sku, _)| !known.contains(*sku)) {
        out.violations.push(Violation::new(
            Kind::LedgerUnknownSku,
            *sku,
            format!(
                "not in items, yet the ledger names it (initial {}, restocks {}, other adjustments {}, active reservations {})",
                t.initial, t.restocks, t.other, t.reserved
            ),
        ));
    }
    for item in &world.items {
        let t = terms.get(item.sku.as_str()).cloned().unwrap_or_default();
        if item.stock != t.expected() {
            let note = if t.has_initial { "" } else { "; no `initial` adjustment" };
            out.violations.push(Violation::new(
                Kind::StockLedgerMismatch,
                &item.sku,
                format!(
                    "stock is {} but the ledger adds up to {} (initial {} + restocks {} + other adjustments {} - active reservations {}){note}",
                    item.stock,
                    t.expected(),
                    t.initial,
                    t.restocks,
                    t.other,
                    t.reserved
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::world::fixtures::{RULES, reservation};
    use crate::audit::world::{AdjustmentSum, ItemRow, RestockSum};

    fn adj(sku: &str, reason: &str, delta: i64) -> AdjustmentSum {
        AdjustmentSum { sku: sku.into(), reason: Some(reason.into()), delta }
    }

    /// A: created with 10, restocked 5, 2 written off, 3 reserved (active),
    /// 4 reserved then released: 10 + 5 - 2 - 3 = 10.
    fn world() -> World {
        let mut w = World::empty();
        w.items = vec![ItemRow { sku: "A".into(), stock: 10 }, ItemRow { sku: "B".into(), stock: 0 }];
        w.ledger = Ledger::Present(vec![adj("A", "initial", 10), adj("A", "write_off", -2), adj("B", "initial", 0)]);
        w.restocks = vec![RestockSum { sku: "A".into(), quantity: 5 }];
        w.reservations = vec![reservation("o1", "A", 3, false), reservation("o2", "A", 4, true)];
        w
    }

    #[test]
    fn a_consistent_ledger_passes() {
        let out = check(&world(), &RULES);
        assert!(out.violations.is_empty(), "{out:?}");
        assert_eq!(out.skipped, None);
        assert_eq!(out.examined, "2 SKUs");
    }

    #[test]
    fn stock_changed_without_a_ledger_row_is_reported_with_the_terms() {
        let mut w = world();
        w.items[0].stock = 12;
        let out = check(&w, &RULES);
        assert_eq!(out.violations.len(), 1, "{out:?}");
        let v = &out.violations[0];
        assert_eq!((v.kind, v.subject.as_str()), (Kind::StockLedgerMismatch, "A"));
        assert_eq!(
            v.detail,
            "stock is 12 but the ledger adds up to 10 (initial 10 + restocks 5 + other adjustments -2 - active reservations 3)"
        );
    }

    #[test]
    fn a_release_that_did_not_return_stock_is_a_mismatch() {
        let mut w = world();
        w.reservations[0].released = true;
        let out = check(&w, &RULES);
        assert_eq!(out.violations.iter().map(|v| (v.kind, v.subject.as_str())).collect::<Vec<_>>(), [(Kind::StockLedgerMismatch, "A")]);
    }

    #[test]
    fn an_item_without_initial_is_named() {
        let mut w = world();
        w.items.push(ItemRow { sku: "C".into(), stock: 4 });
        let out = check(&w, &RULES);
        assert_eq!(out.violations.len(), 1);
        assert!(out.violations[0].detail.ends_with("no `initial` adjustment"), "{:?}", out.violations[0]);
    }

    #[test]
    fn negative_stock_and_unknown_skus_are_reported() {
        let mut w = world();
        w.items[1].stock = -1;
        w.ledger =
            Ledger::Present(vec![adj("A", "initial", 10), adj("A", "write_off", -2), adj("B", "initial", -1), adj("Z", "initial", 1)]);
        let out = check(&w, &RULES);
        let kinds: Vec<_> = out.violations.iter().map(|v| (v.kind, v.subject.as_str())).collect();
        assert_eq!(kinds, [(Kind::StockNegative, "B"), (Kind::LedgerUnknownSku, "Z")]);
    }

    #[test]
    fn without_the_ledger_table_only_negativity_is_checked() {
        let mut w = world();
        w.ledger = Ledger::Unavailable("table stock_adjustments does not exist".into());
        w.items[0].stock = 999;
        let out = check(&w, &RULES);
        assert!(out.violations.is_empty());
        assert_eq!(out.status(), "SKIP");
        assert!(out.skipped.as_deref().is_some_and(|s| s.contains("stock_adjustments does not exist")), "{out:?}");
        w.items[0].stock = -5;
        assert_eq!(check(&w, &RULES).violations[0].kind, Kind::StockNegative);
    }
}
