//! The reservation decision, pure: given what an order asks for and the stock
//! of its items (read under row locks), reserve every line or none, and if
//! none, say why. The database part lives in [`crate::events`]; keeping the
//! rule here lets a property test check it against a plain model.

use std::collections::BTreeMap;

use glasshouse_contracts::{NonEmpty, OrderLine, Quantity, RejectionReason, ShortLine, Sku, StockLine};

/// What an `order.created` asks Inventory to reserve: one quantity per SKU,
/// sorted by SKU, never empty. That order is also the order the rows are
/// locked in, so two orders that share SKUs always queue on them in the same
/// order and cannot deadlock each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    lines: NonEmpty<StockLine>,
}

/// Why an order's lines make no plan. Order never sends either (it validates
/// lines, and asks the customer to merge a repeated SKU), so both are producer
/// bugs: the event is dead-lettered, not guessed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("order.created names SKU {0} on more than one line")]
    DuplicateSku(Sku),
    #[error("order.created has no lines")]
    Empty,
}

impl Plan {
    /// The plan of an order's lines; refuses a SKU that appears twice, and no lines.
    pub fn new<'a>(lines: impl IntoIterator<Item = (&'a Sku, Quantity)>) -> Result<Self, PlanError> {
        let mut map = BTreeMap::new();
        for (sku, qty) in lines {
            if map.insert(sku.clone(), qty).is_some() {
                return Err(PlanError::DuplicateSku(sku.clone()));
            }
        }
        let sorted: Vec<StockLine> = map.into_iter().map(|(sku, quantity)| StockLine { sku, quantity }).collect();
        Ok(Self { lines: NonEmpty::new(sorted).map_err(|_| PlanError::Empty)? })
    }

    /// The plan of `order.created`'s lines.
    pub fn of_order(lines: &NonEmpty<OrderLine>) -> Result<Self, PlanError> {
        Self::new(lines.iter().map(|l| (&l.sku, l.quantity)))
    }

    /// The SKUs in lock order (ascending bytes, the same as the database's
    /// `ascii_bin` collation).
    pub fn skus(&self) -> impl Iterator<Item = &Sku> {
        self.lines.iter().map(|l| &l.sku)
    }

    /// `(sku, quantity)` in lock order.
    pub fn lines(&self) -> impl Iterator<Item = (&Sku, Quantity)> {
        self.lines.iter().map(|l| (&l.sku, l.quantity))
    }

    /// Number of distinct SKUs (at least 1).
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }
}

/// The verdict for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take every line off stock: the lines, in SKU order.
    Reserve(NonEmpty<StockLine>),
    /// Reserve nothing, for this reason.
    Reject(RejectionReason),
}

impl Decision {
    /// `inventory_reservations_total{outcome}` for this verdict.
    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Reserve(_) => Outcome::Reserved,
            Decision::Reject(RejectionReason::OutOfStock { .. }) => Outcome::RejectedOutOfStock,
            Decision::Reject(RejectionReason::UnknownSku { .. }) => Outcome::RejectedUnknownSku,
            // `decide` gives neither: `cancelled` is the answer for an order
            // whose compensation arrived first (crate::events), and `timeout`
            // is Order's reason, which Inventory never gives.
            Decision::Reject(RejectionReason::Cancelled | RejectionReason::Timeout) => Outcome::RejectedCancelled,
        }
    }
}

/// The `outcome` label values of `inventory_reservations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Reserved,
    RejectedOutOfStock,
    RejectedUnknownSku,
    /// `order.created` for an order already cancelled: nothing reserved.
    RejectedCancelled,
    Released,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Reserved, Outcome::RejectedOutOfStock, Outcome::RejectedUnknownSku, Outcome::RejectedCancelled, Outcome::Released];

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Reserved => "reserved",
            Outcome::RejectedOutOfStock => "rejected_out_of_stock",
            Outcome::RejectedUnknownSku => "rejected_unknown_sku",
            Outcome::RejectedCancelled => "rejected_cancelled",
            Outcome::Released => "released",
        }
    }
}

/// Decides an order against `stock` (units available per SKU; a SKU missing
/// from the map does not exist).
///
/// Unknown SKUs win over short ones: an order naming a SKU that does not exist
/// can never be filled, whatever is restocked, so that is the reason given.
/// Otherwise every line whose stock is below its quantity is reported, with
/// what was available, so the customer sees all shortages at once.
pub fn decide(plan: &Plan, stock: &BTreeMap<Sku, i64>) -> Decision {
    let unknown: Vec<Sku> = plan.skus().filter(|s| !stock.contains_key(*s)).cloned().collect();
    if let Ok(skus) = NonEmpty::new(unknown) {
        return Decision::Reject(RejectionReason::UnknownSku { skus });
    }
    let short: Vec<ShortLine> = plan
        .lines()
        .filter_map(|(sku, qty)| {
            let available = stock.get(sku).copied().unwrap_or(0);
            (available < i64::from(qty)).then(|| ShortLine {
                sku: sku.clone(),
                requested: qty,
                // Negative stock cannot exist (CHECK constraint); stock beyond
                // u32 is reported as u32::MAX, which is still "not short" for
                // any quantity, so this branch never sees it.
                available: u32::try_from(available.max(0)).unwrap_or(u32::MAX),
            })
        })
        .collect();
    if let Ok(lines) = NonEmpty::new(short) {
        return Decision::Reject(RejectionReason::OutOfStock { lines });
    }
    Decision::Reserve(plan.lines.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }
    fn q(n: u32) -> Quantity {
        Quantity::new(n).unwrap()
    }
    fn plan(lines: &[(&str, u32)]) -> Plan {
        let owned: Vec<(Sku, Quantity)> = lines.iter().map(|(s, n)| (sku(s), q(*n))).collect();
        Plan::new(owned.iter().map(|(s, n)| (s, *n))).unwrap()
    }
    fn stock(items: &[(&str, i64)]) -> BTreeMap<Sku, i64> {
        items.iter().map(|(s, n)| (sku(s), *n)).collect()
    }

    #[test]
    fn all_lines_in_stock_are_reserved_in_sku_order() {
        let d = decide(&plan(&[("B", 2), ("A", 1)]), &stock(&[("A", 1), ("B", 5)]));
        let Decision::Reserve(lines) = d else { panic!("expected a reservation, got {d:?}") };
        let got: Vec<(&str, u32)> = lines.iter().map(|l| (l.sku.as_str(), l.quantity.get())).collect();
        assert_eq!(got, vec![("A", 1), ("B", 2)]);
    }

    #[test]
    fn one_short_line_rejects_the_whole_order_naming_only_that_line() {
        let d = decide(&plan(&[("A", 1), ("B", 3)]), &stock(&[("A", 10), ("B", 2)]));
        assert_eq!(d.outcome(), Outcome::RejectedOutOfStock);
        let Decision::Reject(RejectionReason::OutOfStock { lines }) = d else { unreachable!() };
        assert_eq!(lines.as_slice(), &[ShortLine { sku: sku("B"), requested: q(3), available: 2 }]);
    }

    #[test]
    fn unknown_skus_win_over_short_ones() {
        let d = decide(&plan(&[("A", 5), ("Z", 1)]), &stock(&[("A", 0)]));
        assert_eq!(d, Decision::Reject(RejectionReason::UnknownSku { skus: NonEmpty::one(sku("Z")) }));
    }

    #[test]
    fn duplicate_skus_are_refused() {
        let a = sku("A");
        assert_eq!(Plan::new([(&a, q(1)), (&a, q(2))]), Err(PlanError::DuplicateSku(a.clone())));
        assert_eq!(Plan::new([]), Err(PlanError::Empty));
    }

    #[test]
    fn outcome_labels_are_the_metric_contract() {
        let labels: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels, ["reserved", "rejected_out_of_stock", "rejected_unknown_sku", "rejected_cancelled", "released"]);
    }

    #[test]
    fn the_answer_for_a_cancelled_order_has_its_own_outcome() {
        assert_eq!(Decision::Reject(RejectionReason::Cancelled).outcome(), Outcome::RejectedCancelled);
    }

    /// Up to 6 SKUs from a small alphabet, so orders and catalogs overlap.
    fn arb_sku() -> impl Strategy<Value = Sku> {
        "[A-F]{1,2}".prop_map(|s| Sku::parse(&s).unwrap())
    }

    fn arb_order() -> impl Strategy<Value = Plan> {
        prop::collection::btree_map(arb_sku(), 1u32..=20, 1..6)
            .prop_map(|m| Plan::new(m.iter().map(|(s, n)| (s, Quantity::new(*n).unwrap()))).unwrap())
    }

    fn arb_stock() -> impl Strategy<Value = BTreeMap<Sku, i64>> {
        prop::collection::btree_map(arb_sku(), 0i64..=25, 0..10)
    }

    proptest! {
        /// The decision agrees with the plain definition: reserve iff every SKU
        /// exists with enough units; otherwise the reason lists exactly the
        /// offending SKUs, with what was available.
        #[test]
        fn decision_matches_the_model(order in arb_order(), stock in arb_stock()) {
            let unknown: Vec<Sku> = order.skus().filter(|s| !stock.contains_key(*s)).cloned().collect();
            let short: Vec<(Sku, u32, i64)> = order
                .lines()
                .filter_map(|(s, n)| stock.get(s).filter(|have| **have < i64::from(n)).map(|have| (s.clone(), n.get(), *have)))
                .collect();
            match decide(&order, &stock) {
                Decision::Reserve(lines) => {
                    prop_assert!(unknown.is_empty() && short.is_empty());
                    let got: Vec<(Sku, Quantity)> = lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
                    let want: Vec<(Sku, Quantity)> = order.lines().map(|(s, n)| (s.clone(), n)).collect();
                    prop_assert_eq!(got, want);
                }
                Decision::Reject(RejectionReason::UnknownSku { skus }) => {
                    prop_assert_eq!(skus.into_vec(), unknown);
                }
                Decision::Reject(RejectionReason::OutOfStock { lines }) => {
                    prop_assert!(unknown.is_empty());
                    let got: Vec<(Sku, u32, i64)> = lines.iter().map(|l| (l.sku.clone(), l.requested.get(), i64::from(l.available))).collect();
                    prop_assert_eq!(got, short);
                }
                Decision::Reject(other @ (RejectionReason::Timeout | RejectionReason::Cancelled)) => {
                    prop_assert!(false, "decide never gives {:?}", other);
                }
            }
        }

        /// Applying a stream of orders the way the service does (decide, then
        /// take reserved units off) never drives stock negative, and what was
        /// reserved plus what is left always equals what there was.
        #[test]
        fn a_stream_of_orders_never_oversells(orders in prop::collection::vec(arb_order(), 1..40), initial in arb_stock()) {
            let mut stock = initial.clone();
            let mut reserved: BTreeMap<Sku, i64> = BTreeMap::new();
            for order in &orders {
                if let Decision::Reserve(lines) = decide(order, &stock) {
                    for l in lines.iter() {
                        let have = stock.get_mut(&l.sku).expect("reserved SKUs exist");
                        *have -= i64::from(l.quantity);
                        *reserved.entry(l.sku.clone()).or_default() += i64::from(l.quantity);
                    }
                }
                prop_assert!(stock.values().all(|n| *n >= 0), "negative stock: {:?}", stock);
            }
            for (sku, start) in &initial {
                prop_assert_eq!(stock[sku] + reserved.get(sku).copied().unwrap_or(0), *start);
            }
        }

        /// Lock order is strictly ascending whatever order the lines came in.
        #[test]
        fn lock_order_is_sorted(lines in prop::collection::vec((arb_sku(), 1u32..=5), 1..8)) {
            let mut seen = std::collections::BTreeSet::new();
            let unique: Vec<(Sku, Quantity)> = lines.into_iter().filter(|(s, _)| seen.insert(s.clone())).map(|(s, n)| (s, Quantity::new(n).unwrap())).collect();
            let plan = Plan::new(unique.iter().map(|(s, n)| (s, *n))).unwrap();
            let skus: Vec<&Sku> = plan.skus().collect();
            prop_assert!(skus.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(skus.len(), unique.len());
        }
    }
}
