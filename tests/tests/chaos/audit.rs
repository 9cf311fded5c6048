//! The reconciliation audit the suite runs after each scenario: the ops
//! crate's `glasshouse_ops::audit::run_audit` (what `glasshouse-audit` runs),
//! behind one small adapter ([`audit`]) that turns its report into the
//! table's columns.
//!
//! The invariants ("nothing accepted is lost or stuck, no oversell"; see
//! `ops/src/audit/mod.rs` for each family): every order final (judged with a
//! settle time of 0: the load has stopped before the audit runs, so no order
//! is legitimately young), stock never negative and equal to its ledger,
//! reservations agreeing with the orders' fates, one notification per order
//! event, no outbox row of either service unsent. Dead letters are warnings
//! for the ops audit (someone must redrive them); the suite adds the check it
//! needs: the dead-letter topics hold exactly the messages the scenarios put
//! there on purpose.

use std::time::Duration;

use glasshouse_ops::audit::{AuditConfig, KafkaTarget, run_audit};

use crate::kafka;

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditTarget {
    pub orders_db_url: String,
    pub inventory_db_url: String,
    pub mongo_url: String,
    pub mongo_db: String,
    pub kafka: String,
    pub topic_prefix: String,
    /// Dead letters the scenarios produced on purpose (poison events), in total.
    pub expected_dead_letters: u64,
}

/// The verdict.
#[derive(Debug, Clone, Default)]
pub struct AuditOutcome {
    /// One line per broken invariant, with its subject and what was found.
    pub violations: Vec<String>,
    /// What was checked, in numbers, dead letters per topic included (for the report).
    pub summary: String,
}

impl AuditOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs the ops audit over `target`, plus the expected-dead-letters check.
pub async fn audit(target: &AuditTarget) -> anyhow::Result<AuditOutcome> {
    let config = AuditConfig {
        order_db_url: target.orders_db_url.clone(),
        inventory_db_url: target.inventory_db_url.clone(),
        notification_db_url: target.mongo_url.clone(),
        notification_db_name: target.mongo_db.clone(),
        kafka: Some(KafkaTarget { brokers: target.kafka.clone(), topic_prefix: target.topic_prefix.clone() }),
        settle: Duration::ZERO,
        strict: false,
    };
    let report = run_audit(&config).await?;
    let mut violations: Vec<String> =
        report.violations().iter().map(|v| format!("{} {}: {}", v.kind.as_str(), v.subject, v.detail)).collect();
    let dead_letters = kafka::dead_letters(&target.kafka, &target.topic_prefix).await?;
    let total: u64 = dead_letters.values().sum();
    if total != target.expected_dead_letters {
        violations.push(format!("{total} dead letters, {} expected: {dead_letters:?}", target.expected_dead_letters));
    }
    let summary =
        report.checks.iter().map(|c| format!("{} {}: {}", c.check.as_str(), c.status(), c.examined)).collect::<Vec<_>>().join("; ");
    Ok(AuditOutcome { violations, summary })
}
