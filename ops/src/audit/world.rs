//! The rows the audit reads, as plain data: what [`super::load`] fills from
//! the three databases and the brokers, and what the checks judge. Unit tests
//! build a `World` by hand.
//!
//! Ages are seconds measured by the database that holds the row (its own
//! `now()`), so a clock difference between this machine and a database server
//! never makes a row look older or younger than it is.

use serde::Serialize;

/// An order's status, as the Order service stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
}

impl Status {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Self::Pending),
            "CONFIRMED" => Some(Self::Confirmed),
            "REJECTED" => Some(Self::Rejected),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// `orders.rejection_reason` of an order Inventory refused for stock: it
/// never reserved anything for it.
pub const STOCK_REASONS: [&str; 2] = ["out_of_stock", "unknown_sku"];
/// `orders.rejection_reason` of an order that waited too long for Inventory's
/// answer: whatever was reserved for it must have been released.
pub const TIMEOUT_REASON: &str = "timeout";

/// One row of `orders`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    /// Lower-case hyphenated UUID, as events and Inventory write it.
    pub id: String,
    pub status: Status,
    /// A reason code (`out_of_stock`, `unknown_sku`, `timeout`) when REJECTED.
    pub rejection_reason: Option<String>,
    /// Seconds since the order was created.
    pub age_seconds: f64,
    /// Seconds since its status last changed (`updated_at`).
    pub idle_seconds: f64,
}

impl OrderRow {
    /// True once the order has been left alone for `settle` seconds: the
    /// events its last change caused have had time to land everywhere.
    pub fn settled(&self, settle: f64) -> bool {
        self.idle_seconds >= settle
    }

    /// REJECTED because Inventory had not the stock (or the SKU).
    pub fn rejected_for_stock(&self) -> bool {
        self.status == Status::Rejected && self.rejection_reason.as_deref().is_some_and(|r| STOCK_REASONS.contains(&r))
    }

    /// REJECTED because Inventory did not answer in time.
    pub fn timed_out(&self) -> bool {
        self.status == Status::Rejected && self.rejection_reason.as_deref() == Some(TIMEOUT_REASON)
    }
}

/// The units of one SKU a CONFIRMED order asked for (its lines, summed by SKU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    pub order_id: String,
    pub sku: String,
    pub quantity: i64,
}

/// One row of `items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub sku: String,
    pub stock: i64,
}

/// Units added to one SKU by `restocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestockSum {
    pub sku: String,
    pub quantity: i64,
}

/// Units one SKU's `stock_adjustments` rows of one reason add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustmentSum {
    pub sku: String,
    /// `initial` for the stock an item was created with; `None` when the
    /// table has no reason column.
    pub reason: Option<String>,
    /// Signed: negative for units taken away.
    pub delta: i64,
}

/// The `stock_adjustments` ledger, if the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ledger {
    /// The table (or a usable column of it) is not there: why.
    Unavailable(String),
    Present(Vec<AdjustmentSum>),
}

/// One row of `reservations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    pub order_id: String,
    pub sku: String,
    pub quantity: i64,
    /// `released_at` is set: the units went back to stock.
    pub released: bool,
}

/// One stored notification (only the fields the audit needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    pub event_id: String,
    /// `order.created`, `order.confirmed`, ...
    pub event_type: String,
    pub order_id: String,
}

/// One unsent row of a service's outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// `order` or `inventory`.
    pub service: String,
    pub event_id: String,
    pub topic: String,
    pub event_type: String,
    /// Seconds since the row was written.
    pub age_seconds: f64,
}

/// One dead-letter topic's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterCount {
    pub topic: String,
    /// False when the topic does not exist (nothing was ever dead-lettered).
    pub exists: bool,
    /// Messages kept.
    pub kept: i64,
    /// Kept and not redriven yet.
    pub pending: i64,
}

/// The dead-letter topics, if they were looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetters {
    /// Not looked at: why.
    NotChecked(String),
    Counted(Vec<DeadLetterCount>),
}

/// Everything the checks judge.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub orders: Vec<OrderRow>,
    /// The lines of every CONFIRMED order.
    pub confirmed_lines: Vec<LineRow>,
    pub items: Vec<ItemRow>,
    pub restocks: Vec<RestockSum>,
    pub ledger: Ledger,
    pub reservations: Vec<ReservationRow>,
    pub notifications: Vec<NotificationRow>,
    /// Unsent rows of both outboxes.
    pub outbox: Vec<OutboxRow>,
    pub dead_letters: DeadLetters,
}

impl World {
    /// Nothing at all, with the ledger present and dead letters not checked:
    /// the start of a hand-built world in tests.
    pub fn empty() -> Self {
        Self {
            orders: Vec::new(),
            confirmed_lines: Vec::new(),
            items: Vec::new(),
            restocks: Vec::new(),
            ledger: Ledger::Present(Vec::new()),
            reservations: Vec::new(),
            notifications: Vec::new(),
            outbox: Vec::new(),
            dead_letters: DeadLetters::NotChecked("not asked".to_owned()),
        }
    }
}

/// The audit's thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Seconds an order may stay PENDING, an outbox row unsent, and a change
    /// take to reach every service, before it is a violation.
    pub settle_seconds: f64,
    /// Dead letters not redriven are violations, not warnings.
    pub strict: bool,
}

/// Row builders for the checks' unit tests.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// An order created and last changed `age` seconds ago.
    pub fn order(id: &str, status: Status, age: f64) -> OrderRow {
        OrderRow { id: id.into(), status, rejection_reason: None, age_seconds: age, idle_seconds: age }
    }

    /// A REJECTED order with `reason`.
    pub fn rejected(id: &str, reason: &str, age: f64) -> OrderRow {
        OrderRow { rejection_reason: Some(reason.into()), ..order(id, Status::Rejected, age) }
    }

    pub fn reservation(order_id: &str, sku: &str, quantity: i64, released: bool) -> ReservationRow {
        ReservationRow { order_id: order_id.into(), sku: sku.into(), quantity, released }
    }

    pub fn notification(event_id: &str, event_type: &str, order_id: &str) -> NotificationRow {
        NotificationRow { event_id: event_id.into(), event_type: event_type.into(), order_id: order_id.into() }
    }

    pub fn line(order_id: &str, sku: &str, quantity: i64) -> LineRow {
        LineRow { order_id: order_id.into(), sku: sku.into(), quantity }
    }

    /// The rules the unit tests judge by: 60 s settle time, not strict.
    pub const RULES: Rules = Rules { settle_seconds: 60.0, strict: false };
}
