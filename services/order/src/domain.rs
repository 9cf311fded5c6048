//! The order state machine, pure: which event moves an order where, and what
//! is a duplicate or an illegal step. The store applies it under the order's
//! row lock, so transitions are monotonic and idempotent.
//!
//! The saga deadline ([`OrderEvent::Timeout`]) rejects a `PENDING` order and
//! compensates it (`order.cancelled`) in the same transaction; Inventory's
//! verdicts that arrive after that change nothing here, because the
//! compensation already travels behind `order.created` on the order's
//! partition and releases whatever a late reservation took.

use std::fmt;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
}

impl OrderStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Self::Pending),
            "CONFIRMED" => Some(Self::Confirmed),
            "REJECTED" => Some(Self::Rejected),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// Final states: no event moves the order any further.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Rejected | Self::Cancelled)
    }

    /// `orders_total{status}` label value.
    pub const fn metric_label(self) -> &'static str {
        match self {
            Self::Pending => "created",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEvent {
    /// Inventory reserved every line.
    Reserved,
    /// Inventory could not (out of stock, unknown SKU).
    Rejected,
    /// Inventory released the reservation after a cancel.
    Released,
    /// The customer cancelled.
    CancelRequested,
    /// The saga deadline passed with the order still waiting for Inventory
    /// (`crate::timeout`).
    Timeout,
}

impl OrderEvent {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "inventory.reserved",
            Self::Rejected => "inventory.rejected",
            Self::Released => "inventory.released",
            Self::CancelRequested => "cancel",
            Self::Timeout => "timeout",
        }
    }
}

/// The verdict of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move to the new status (and emit its event).
    To(OrderStatus),
    /// Already there (a redelivery, or an expected echo): change nothing.
    NoOp,
    /// Not allowed from here: change nothing, log and count it.
    Illegal,
}

/// The one table of allowed transitions.
pub fn transition(from: OrderStatus, event: OrderEvent) -> Transition {
    use OrderEvent as E;
    use OrderStatus as S;
    match (from, event) {
        (S::Pending, E::Reserved) => Transition::To(S::Confirmed),
        (S::Pending, E::Rejected) => Transition::To(S::Rejected),
        (S::Pending | S::Confirmed, E::CancelRequested) => Transition::To(S::Cancelled),
        // Only a PENDING order times out: it becomes REJECTED (reason
        // `timeout`) and is compensated with order.cancelled.
        (S::Pending, E::Timeout) => Transition::To(S::Rejected),
        // Redeliveries and echoes of what already happened.
        (S::Confirmed, E::Reserved) | (S::Rejected, E::Rejected) | (S::Cancelled, E::Released) | (S::Cancelled, E::CancelRequested) => {
            Transition::NoOp
        }
        // A verdict that arrives after the customer cancelled: Inventory
        // releases the stock when it sees order.cancelled (same partition, later).
        (S::Cancelled, E::Reserved | E::Rejected) => Transition::NoOp,
        // The release that answers the timeout's compensation (an order
        // Inventory rejected was never reserved, so never released).
        (S::Rejected, E::Released) => Transition::NoOp,
        // The order left PENDING before the deadline was applied to it (a
        // verdict or a cancel won the row lock): the deadline no longer applies.
        (S::Confirmed | S::Rejected | S::Cancelled, E::Timeout) => Transition::NoOp,
        // Notably (REJECTED, inventory.reserved): a reservation that came in
        // after the deadline. The order stays REJECTED and the event is
        // counted; the order.cancelled written with the timeout releases it.
        _ => Transition::Illegal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATUS: [OrderStatus; 4] = [OrderStatus::Pending, OrderStatus::Confirmed, OrderStatus::Rejected, OrderStatus::Cancelled];
    const ALL_EVENTS: [OrderEvent; 5] =
        [OrderEvent::Reserved, OrderEvent::Rejected, OrderEvent::Released, OrderEvent::CancelRequested, OrderEvent::Timeout];

    #[test]
    fn happy_paths() {
        assert_eq!(transition(OrderStatus::Pending, OrderEvent::Reserved), Transition::To(OrderStatus::Confirmed));
        assert_eq!(transition(OrderStatus::Pending, OrderEvent::Rejected), Transition::To(OrderStatus::Rejected));
        assert_eq!(transition(OrderStatus::Confirmed, OrderEvent::CancelRequested), Transition::To(OrderStatus::Cancelled));
        assert_eq!(transition(OrderStatus::Pending, OrderEvent::CancelRequested), Transition::To(OrderStatus::Cancelled));
    }

    #[test]
    fn final_states_never_move() {
        for from in ALL_STATUS.into_iter().filter(|s| s.is_final()) {
            for ev in ALL_EVENTS {
                assert!(!matches!(transition(from, ev), Transition::To(_)), "{from} moved on {ev:?}");
            }
        }
    }

    #[test]
    fn applying_an_event_twice_changes_nothing_the_second_time() {
        for from in ALL_STATUS {
            for ev in ALL_EVENTS {
                if let Transition::To(next) = transition(from, ev) {
                    assert_ne!(transition(next, ev), Transition::To(next), "{from} --{ev:?}--> {next} is not idempotent");
                    assert!(!matches!(transition(next, ev), Transition::To(_)) || next == OrderStatus::Pending);
                }
            }
        }
    }

    #[test]
    fn monotonic_no_way_back_to_pending() {
        for from in ALL_STATUS {
            for ev in ALL_EVENTS {
                assert_ne!(transition(from, ev), Transition::To(OrderStatus::Pending));
            }
        }
    }

    #[test]
    fn illegal_ones() {
        assert_eq!(transition(OrderStatus::Rejected, OrderEvent::Reserved), Transition::Illegal);
        assert_eq!(transition(OrderStatus::Pending, OrderEvent::Released), Transition::Illegal);
        assert_eq!(transition(OrderStatus::Rejected, OrderEvent::CancelRequested), Transition::Illegal);
    }

    #[test]
    fn timeout_rejects_only_a_pending_order() {
        assert_eq!(transition(OrderStatus::Pending, OrderEvent::Timeout), Transition::To(OrderStatus::Rejected));
        for from in ALL_STATUS.into_iter().filter(|s| *s != OrderStatus::Pending) {
            assert_eq!(transition(from, OrderEvent::Timeout), Transition::NoOp, "{from} must not move on a timeout");
        }
    }

    #[test]
    fn late_reservation_after_a_timeout_is_illegal_and_moves_nothing() {
        // Counted and logged; the compensation already sent releases the stock.
        assert_eq!(transition(OrderStatus::Rejected, OrderEvent::Reserved), Transition::Illegal);
    }

    #[test]
    fn late_rejection_after_a_timeout_is_a_no_op() {
        // Also Inventory's `cancelled` answer to a re-driven order.created.
        assert_eq!(transition(OrderStatus::Rejected, OrderEvent::Rejected), Transition::NoOp);
    }

    #[test]
    fn release_answering_the_timeout_compensation_is_a_no_op() {
        assert_eq!(transition(OrderStatus::Rejected, OrderEvent::Released), Transition::NoOp);
    }

    #[test]
    fn status_text_roundtrip() {
        for s in ALL_STATUS {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("pending"), None);
    }
}
