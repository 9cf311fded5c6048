//! The saga deadline: no order waits for Inventory forever.
//!
//! A `PENDING` order older than `saga.timeout_seconds` (by the database
//! clock) is resolved by [`SagaTimeouts`], in ONE PostgreSQL transaction per
//! batch, each order under its row lock:
//! 1. claim up to `saga.batch_size` overdue orders, oldest first,
//!    `FOR UPDATE SKIP LOCKED` ([`store::claim_overdue`]), so several replicas
//!    sweep at once without waiting on each other or on a consumer;
//! 2. apply [`OrderEvent::Timeout`] through the state machine: `PENDING` ->
//!    `REJECTED`, `rejection_reason = 'timeout'` (an order that left `PENDING`
//!    meanwhile is a no-op);
//! 3. write `order.rejected` (reason `timeout`: Notification tells the
//!    customer) and then `order.cancelled` (reason `timeout`: the compensation,
//!    Inventory releases whatever it reserved) to the outbox; commit.
//!
//! Why a late `inventory.reserved` is safe: both events are keyed by the
//! order id, so they reach Inventory on the order's partition *after*
//! `order.created`. If Inventory reserves late, the following
//! `order.cancelled` releases it; if `order.created` is still to come (a
//! re-drive from the dead-letter topic), the cancel leaves a tombstone and
//! Inventory reserves nothing. Order ignores the late verdict (it stays
//! `REJECTED`; `order_illegal_transitions_total{from="REJECTED"}` counts it).
//!
//! Idempotent: a second sweep finds no `PENDING` order to claim, and the state
//! machine refuses to time out an order twice.

use std::time::Duration;

use glasshouse_contracts::{CustomerId, Event, OrderCancelled, OrderId, OrderRejected, RejectionReason};
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::Instrument;

use crate::domain::{OrderEvent, OrderStatus};
use crate::metrics::OrderMetrics;
use crate::settings::SagaSettings;
use crate::store::{self, Applied};

/// The background sweeper of overdue `PENDING` orders.
pub struct SagaTimeouts {
    pool: PgPool,
    metrics: OrderMetrics,
    settings: SagaSettings,
}

/// One order the sweep moved, for metrics after the commit.
struct TimedOut {
    waited: Duration,
}

impl SagaTimeouts {
    pub fn new(pool: PgPool, metrics: OrderMetrics, settings: SagaSettings) -> Self {
        Self { pool, metrics, settings }
    }

    /// Sweeps every `saga.sweep_interval_ms` until `shutdown` turns true (or
    /// its sender is gone); a full batch is followed by another sweep at once.
    /// A failed sweep (database away) is logged and retried with backoff; it
    /// never ends the loop, so the result is `Ok` unless the task is misused.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let batch = self.settings.batch_size.get() as usize;
        let mut failures: u32 = 0;
        // The first sweep waits one interval: a fresh replica does not race
        // the consumers that are still catching up with the verdicts.
        let mut pause = self.settings.sweep_interval();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = shutdown.changed() => if changed.is_err() { return Ok(()) },
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            pause = match self.sweep_once().await {
                Ok(n) => {
                    failures = 0;
                    if n >= batch { Duration::ZERO } else { self.settings.sweep_interval() }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "saga timeout sweep failed; will retry");
                    glasshouse_platform::backoff::delay(
                        failures,
                        Duration::from_millis(200),
                        self.settings.sweep_interval().max(Duration::from_secs(1)),
                    )
                }
            };
        }
    }

    /// One sweep: resolves at most one batch of overdue orders in one
    /// transaction; returns how many it rejected (0 when none was overdue).
    pub async fn sweep_once(&self) -> anyhow::Result<usize> {
        let span = tracing::info_span!("saga.timeout_sweep", orders = tracing::field::Empty);
        let moved = self.sweep_tx().instrument(span.clone()).await?;
        span.record("orders", moved.len());
        for t in &moved {
            self.metrics.saga_timeout();
            self.metrics.reached(OrderStatus::Rejected);
            self.metrics.completed(OrderStatus::Rejected, t.waited.as_secs_f64());
        }
        Ok(moved.len())
    }

    async fn sweep_tx(&self) -> anyhow::Result<Vec<TimedOut>> {
        let mut tx = self.pool.begin().await?;
        let limit = i64::from(self.settings.batch_size.get());
        let ids = store::claim_overdue(&mut tx, self.settings.timeout(), limit).await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let now = chrono::Utc::now();
        let mut moved = Vec::with_capacity(ids.len());
        for id in ids {
            let applied = store::apply(&mut tx, id, OrderEvent::Timeout, Some(RejectionReason::Timeout.code()), |o, _| {
                let customer_id = CustomerId::parse(&o.customer_id)?;
                let order = OrderId::from_uuid(o.id)?;
                // Rejected first: the customer learns the outcome, then the
                // compensation follows on the same key.
                Ok([
                    Event::new(order, OrderRejected { customer_id: customer_id.clone(), reason: RejectionReason::Timeout }),
                    Event::new(order, OrderCancelled::on_timeout(customer_id)),
                ])
            })
            .await?;
            match applied {
                Applied::Moved { created_at, .. } => {
                    tracing::warn!(order_id = %id, deadline_seconds = self.settings.timeout_seconds.get(), "saga deadline passed: order rejected and compensated");
                    moved.push(TimedOut { waited: (now - created_at).to_std().unwrap_or_default() });
                }
                // Claimed as PENDING, then found otherwise under the same lock:
                // cannot happen, but the state machine decides, not the claim.
                Applied::NoOp(_) | Applied::Illegal(_) | Applied::NotFound => {}
            }
        }
        tx.commit().await?;
        Ok(moved)
    }
}
