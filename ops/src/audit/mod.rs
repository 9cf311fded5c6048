//! The cross-service audit: invariants that no single service can check,
//! because each one spans two or three databases.
//!
//! [`run_audit`] reads the rows ([`load`]) into a [`World`], then judges it
//! with one pure check per family of invariants; each returns a
//! [`CheckOutcome`] listing violations with the ids involved. The chaos suite
//! calls [`run_audit`] after each scenario; `glasshouse-audit` prints the
//! [`AuditReport`] (or its JSON) and exits non-zero on any violation.
//!
//! Reads are ordered so that a run in progress does not produce false
//! violations: Inventory, Notification and the dead-letter topics are read
//! first, Order last. Every row Inventory and Notification write follows an
//! Order row, so nothing read from them can name an order Order does not have
//! yet; and an order that changed since its partners were read has a recent
//! `updated_at`, so it is not yet judged (see [`Rules::settle_seconds`]).
//!
//! # Layout
//! - [`world`]: the rows as plain data, and the [`Rules`].
//! - [`load`]: reading them (PostgreSQL, MariaDB, MongoDB, Kafka).
//! - [`orders`]: every order reaches a final status in time.
//! - [`stock`]: stock never negative, and equal to what its ledger adds up to.
//! - [`reservations`]: reservations agree with the orders' fates.
//! - [`notifications`]: exactly one notification per lifecycle event.
//! - [`outbox`]: no event stuck unsent.
//! - [`dead_letters`]: dead letters waiting for a redrive.
//! - [`cli`]: the `glasshouse-audit` command line.

pub mod cli;
pub mod dead_letters;
pub mod load;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod reservations;
pub mod stock;
pub mod world;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use world::{Rules, World};

/// Where to read and how strictly to judge.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Order's PostgreSQL (`postgres://...`).
    pub order_db_url: String,
    /// Inventory's MariaDB/MySQL (`mysql://...`).
    pub inventory_db_url: String,
    /// Notification's MongoDB/FerretDB (`mongodb://...`).
    pub notification_db_url: String,
    /// The database holding the `notifications` collection.
    pub notification_db_name: String,
    /// Where the dead-letter topics are; `None` skips that check.
    pub kafka: Option<KafkaTarget>,
    /// How long an order may stay PENDING, an outbox row unsent, or a change
    /// take to reach every service.
    pub settle: Duration,
    /// Dead letters not redriven count as violations.
    pub strict: bool,
}

/// The brokers and the topic prefix the services use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTarget {
    pub brokers: String,
    pub topic_prefix: String,
}

/// The families of invariants, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Orders,
    Stock,
    Reservations,
    Notifications,
    Outbox,
    DeadLetters,
}

impl Check {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Stock => "stock",
            Self::Reservations => "reservations",
            Self::Notifications => "notifications",
            Self::Outbox => "outbox",
            Self::DeadLetters => "dead_letters",
        }
    }
}

/// What is wrong, as a stable code (the JSON `kind`; documented in
/// docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// PENDING for longer than the settle time.
    OrderStuck,
    /// `items.stock` below zero.
    StockNegative,
    /// `items.stock` differs from initial + restocks + adjustments - active reservations.
    StockLedgerMismatch,
    /// Restocks, adjustments or reservations name a SKU that is not in `items`.
    LedgerUnknownSku,
    /// Two reservation rows for one (order, SKU).
    ReservationDuplicate,
    /// A reservation for an order Order does not have.
    ReservationUnknownOrder,
    /// Unreleased units held for an order that is not CONFIRMED.
    ReservationNotReleased,
    /// Released units of an order that is neither CANCELLED nor timed out.
    ReservationReleasedUnexpectedly,
    /// A reservation for an order rejected for stock reasons.
    ReservationForStockRejection,
    /// A CONFIRMED order's active reservations differ from its lines.
    ConfirmedReservationMismatch,
    /// More than one notification with one event id.
    NotificationDuplicateEvent,
    /// A lifecycle event of the order has no notification.
    NotificationMissing,
    /// A notification the order's status does not imply, or one event type twice.
    NotificationUnexpected,
    /// Notifications for an order Order does not have.
    NotificationUnknownOrder,
    /// An outbox row unsent for longer than the settle time.
    OutboxUnsent,
    /// Dead letters not redriven (a warning unless `--strict`).
    DeadLettersPending,
}

impl Kind {
    /// The code, as in the JSON.
    pub fn as_str(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// One broken invariant (or, among [`CheckOutcome::warnings`], a condition to look at).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: Kind,
    /// The id it is about: an order id, a SKU, an event id, a topic.
    pub subject: String,
    /// What was found, for a person.
    pub detail: String,
}

impl Violation {
    pub fn new(kind: Kind, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { kind, subject: subject.into(), detail: detail.into() }
    }
}

/// The result of one family of checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    pub check: Check,
    /// What was looked at, e.g. `120 orders`.
    pub examined: String,
    /// Set when (part of) the check could not run, saying why.
    pub skipped: Option<String>,
    pub violations: Vec<Violation>,
    pub warnings: Vec<Violation>,
}

impl CheckOutcome {
    pub fn new(check: Check, examined: impl Into<String>) -> Self {
        Self { check, examined: examined.into(), skipped: None, violations: Vec::new(), warnings: Vec::new() }
    }

    /// `FAIL`, `SKIP`, `WARN` or `ok`.
    pub fn status(&self) -> &'static str {
        if !self.violations.is_empty() {
            "FAIL"
        } else if self.skipped.is_some() {
            "SKIP"
        } else if !self.warnings.is_empty() {
            "WARN"
        } else {
            "ok"
        }
    }
}

/// Everything one audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub settle_seconds: u64,
    pub strict: bool,
    pub checks: Vec<CheckOutcome>,
}

impl AuditReport {
    /// Every violation of every check.
    pub fn violations(&self) -> Vec<&Violation> {
        self.checks.iter().flat_map(|c| &c.violations).collect()
    }

    /// Every warning of every check.
    pub fn warnings(&self) -> Vec<&Violation> {
        self.checks.iter().flat_map(|c| &c.warnings).collect()
    }

    /// The violations of one kind (tests: "this corruption was found").
    pub fn of_kind(&self, kind: Kind) -> Vec<&Violation> {
        self.violations().into_iter().filter(|v| v.kind == kind).collect()
    }

    /// The outcome of one family.
    pub fn check(&self, check: Check) -> Option<&CheckOutcome> {
        self.checks.iter().find(|c| c.check == check)
    }

    /// No violation (warnings and skipped checks allowed).
    pub fn is_clean(&self) -> bool {
        self.checks.iter().all(|c| c.violations.is_empty())
    }

    /// The machine-readable form: the report plus `clean` and the counts.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("clean".into(), self.is_clean().into());
            map.insert("violation_count".into(), self.violations().len().into());
            map.insert("warning_count".into(), self.warnings().len().into());
        }
        v
    }
}

impl fmt::Display for AuditReport {
    /// One line per check, each violation and warning under it, then the verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{:<14} {:<4}  {}", c.check.as_str(), c.status(), c.examined)?;
            if let Some(why) = &c.skipped {
                writeln!(f, "    skipped: {why}")?;
            }
            for v in &c.violations {
                writeln!(f, "    {} {}: {}", v.kind.as_str(), v.subject, v.detail)?;
            }
            for w in &c.warnings {
                writeln!(f, "    warning {} {}: {}", w.kind.as_str(), w.subject, w.detail)?;
            }
        }
        let skipped = self.checks.iter().filter(|c| c.skipped.is_some()).count();
        let verdict = if self.is_clean() { "clean" } else { "VIOLATIONS" };
        write!(
            f,
            "{verdict}: {} violations, {} warnings, {skipped} checks (partly) skipped; settle {} s{}",
            self.violations().len(),
            self.warnings().len(),
            self.settle_seconds,
            if self.strict { ", strict" } else { "" }
        )
    }
}

/// Judges `world` with every check.
pub fn evaluate(world: &World, rules: &Rules) -> Vec<CheckOutcome> {
    vec![
        orders::check(world, rules),
        stock::check(world, rules),
        reservations::check(world, rules),
        notifications::check(world, rules),
        outbox::check(world, rules),
        dead_letters::check(world, rules),
    ]
}

/// Reads every source named by `config` and checks every invariant. Fails
/// (naming the source, never its password) when a source cannot be read: the
/// audit then says nothing about the invariants.
pub async fn run_audit(config: &AuditConfig) -> anyhow::Result<AuditReport> {
    let world = load::load(config).await?;
    let rules = Rules { settle_seconds: config.settle.as_secs_f64(), strict: config.strict };
    Ok(AuditReport { settle_seconds: config.settle.as_secs(), strict: config.strict, checks: evaluate(&world, &rules) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_snake_case_codes() {
        assert_eq!(Kind::OrderStuck.as_str(), "order_stuck");
        assert_eq!(Kind::DeadLettersPending.as_str(), "dead_letters_pending");
    }

    #[test]
    fn an_empty_world_is_clean_and_says_so() {
        let rules = Rules { settle_seconds: 60.0, strict: false };
        let report = AuditReport { settle_seconds: 60, strict: false, checks: evaluate(&World::empty(), &rules) };
        assert!(report.is_clean(), "{report}");
        let text = report.to_string();
        assert!(text.ends_with("clean: 0 violations, 0 warnings, 1 checks (partly) skipped; settle 60 s"), "{text}");
        assert_eq!(report.to_json()["clean"], true);
        assert_eq!(report.checks.len(), 6);
    }

    #[test]
    fn violations_print_with_kind_and_subject() {
        let mut c = CheckOutcome::new(Check::Orders, "1 orders");
        c.violations.push(Violation::new(Kind::OrderStuck, "o-1", "PENDING for 90 s"));
        let report = AuditReport { settle_seconds: 60, strict: false, checks: vec![c] };
        assert!(!report.is_clean());
        let text = report.to_string();
        assert!(text.contains("orders         FAIL  1 orders"), "{text}");
        assert!(text.contains("    order_stuck o-1: PENDING for 90 s"), "{text}");
        assert!(text.contains("VIOLATIONS: 1 violations"), "{text}");
        let json = report.to_json();
        assert_eq!(json["violation_count"], 1);
        assert_eq!(json["checks"][0]["violations"][0]["kind"], "order_stuck");
        assert_eq!(json["checks"][0]["violations"][0]["subject"], "o-1");
    }
}
