//! Inventory's side of the saga: `order.created` reserves, `order.cancelled`
//! releases, each in ONE MySQL transaction with its dedupe row and the
//! answering event in the outbox. Either may arrive first: an `order.created`
//! re-driven from the dead-letter topic can come after the order's
//! `order.cancelled` (the customer's, or the compensation of Order's saga
//! deadline), and must then reserve nothing.
//!
//! # Locking strategy
//! `order.created`, in one transaction at `READ COMMITTED`:
//! 1. `INSERT IGNORE` the event id into `processed_events`
//!    ([`begin_once_mysql`]); a duplicate stops here, having done nothing.
//!    Two deliveries of one event racing each other serialize on that key.
//! 2. Lock the order's `saga_orders` row, creating it if missing
//!    (`INSERT ... ON DUPLICATE KEY UPDATE`, which takes an exclusive lock on
//!    the row either way). If its `cancelled_at` tombstone is set, answer
//!    `inventory.rejected` with reason `cancelled`, reserve nothing, commit.
//! 3. `SELECT sku, stock FROM items WHERE sku IN (...) ORDER BY sku FOR UPDATE`:
//!    lock every item of the order, in SKU order. Orders sharing SKUs queue on
//!    the same rows in the same order, so they cannot deadlock each other;
//!    `READ COMMITTED` means no gap locks, so missing SKUs lock nothing.
//! 4. If the order already has reservation rows, stop (a second
//!    `order.created` for one order never reserves twice; the primary key
//!    `(order_id, sku)` refuses it anyway, and that refusal is retried).
//! 5. Decide in memory ([`crate::reservation::decide`]): all lines or none.
//! 6. Reserve: `UPDATE items SET stock = stock - q WHERE sku = ? AND stock >= q`
//!    and one `reservations` row per line; or reject. Then the
//!    `inventory.reserved` / `inventory.rejected` event into the outbox. Commit.
//!
//! The check-and-decrement happens under the row locks, so concurrent orders
//! for the last units see each other's effects: there is no window for
//! oversell, and `CHECK (stock >= 0)` backs it up. `order.cancelled` first
//! locks the same `saga_orders` row and sets the tombstone (the first cancel's
//! time is kept), then locks the order's unreleased reservation rows, then
//! their items in SKU order, adds the units back and marks the rows released,
//! once.
//!
//! The `saga_orders` row is what makes the order of arrival irrelevant: both
//! handlers of one order take it before anything else, so they run one after
//! the other. A cancel that commits first leaves the tombstone the reservation
//! then reads; a reservation that commits first leaves the rows the cancel
//! then releases. A row that does not exist yet cannot be locked at
//! `READ COMMITTED`, which is why both insert it rather than read it. Both
//! take it right after the dedupe key and before any item or reservation row,
//! and different orders have different saga rows, so between orders the lock
//! order is what it was (items in SKU order): the row adds no deadlock.
//!
//! Deadlocks (1213), lock wait timeouts (1205), killed statements (1317) and
//! lost connections are [`HandleError::Transient`] (`glasshouse_platform::errors`
//! decides): the consumer loop retries the whole transaction with backoff until
//! it succeeds; they never turn into a rejection or a dead letter.

use glasshouse_contracts::{
    Event, EventType, InventoryRejected, InventoryReleased, InventoryReserved, NonEmpty, OrderCreated, OrderId, Payload, RejectionReason,
};
use glasshouse_platform::consumer::{HandleError, Handled, InboundMessage, MessageHandler, begin_once_mysql};
use glasshouse_platform::outbox::enqueue_mysql;
use sqlx::{MySqlConnection, MySqlPool};

use crate::faults::Faults;
use crate::metrics::InventoryMetrics;
use crate::reservation::{Decision, Outcome, Plan, decide};
use crate::stock_low::LowStock;
use crate::store;

/// The consumer name in `processed_events`.
pub const CONSUMER: &str = "inventory";

/// The event types this consumer understands: all of `orders.v1`.
pub const CONSUMES: [EventType; 4] =
    [EventType::OrderCreated, EventType::OrderCancelled, EventType::OrderConfirmed, EventType::OrderRejected];

/// The handler of `orders.v1`.
#[derive(Clone)]
pub struct OrderEvents {
    pub pool: MySqlPool,
    pub metrics: InventoryMetrics,
    pub faults: Faults,
    pub low_stock: LowStock,
}

fn db(e: sqlx::Error) -> HandleError {
    HandleError::from_sqlx(e)
}

impl OrderEvents {
    async fn enqueue(&self, conn: &mut MySqlConnection, event: &Event) -> Result<(), HandleError> {
        let msg = glasshouse_platform::outbox::OutboxMessage::from_event(event).map_err(HandleError::Permanent)?;
        enqueue_mysql(conn, &msg).await.map_err(db)
    }

    /// Reserves every line of `order.created` or none.
    async fn reserve(&self, event: &Event, order: OrderId, created: &OrderCreated) -> Result<Handled, HandleError> {
        if let Err(flag) = self.faults.reservation().await {
            return Err(HandleError::Transient(anyhow::anyhow!("injected fault ({flag}); order {order} will be retried")));
        }
        let plan = Plan::of_order(&created.lines).map_err(|e| HandleError::Permanent(e.into()))?;
        let Some(mut tx) = begin_once_mysql(&self.pool, CONSUMER, event.id().as_uuid()).await? else { return Ok(Handled::Duplicate) };
        let decision = if lock_saga_order(&mut tx, order, false).await.map_err(db)? {
            // The order was cancelled before this order.created got here (a
            // re-drive, or a retry that outlived the cancel): reserve nothing.
            tracing::warn!(order_id = %order, "order.created for a cancelled order; nothing reserved");
            Decision::Reject(RejectionReason::Cancelled)
        } else {
            let stock = store::lock_stock(&mut tx, plan.skus()).await.map_err(db)?;
            // Checked under the item locks: another order.created for this order
            // (a different event id, e.g. replayed by hand) that got here first has
            // committed its rows by the time we hold the same locks.
            if store::has_reservations(&mut tx, order).await.map_err(db)? {
                tracing::warn!(order_id = %order, "order.created for an order that already has reservations; nothing reserved again");
                tx.commit().await.map_err(db)?;
                return Ok(Handled::Processed);
            }
            decide(&plan, &stock)
        };
        let answer = match &decision {
            Decision::Reserve(lines) => {
                store::take_stock(&mut tx, order, lines).await.map_err(|e| match &e {
                    // The (order_id, sku) key refused a second reservation: a
                    // twin event won a race; the retry sees its rows and stops.
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        HandleError::Transient(anyhow::Error::new(e).context("order reserved concurrently by another event"))
                    }
                    _ => db(e),
                })?;
                Event::new(order, InventoryReserved { lines: lines.clone() })
            }
            Decision::Reject(reason) => Event::new(order, InventoryRejected { reason: reason.clone() }),
        };
        self.enqueue(&mut tx, &answer).await?;
        tx.commit().await.map_err(db)?;

        let outcome = decision.outcome();
        self.metrics.reservation(outcome);
        if outcome == Outcome::Reserved {
            self.low_stock.changed();
        }
        tracing::info!(order_id = %order, lines = plan.line_count(), outcome = outcome.as_str(), "order.created handled");
        Ok(Handled::Processed)
    }

    /// Leaves the tombstone and releases the order's reservations once; emits
    /// `inventory.released` only if something went back to stock.
    async fn release(&self, event: &Event, order: OrderId) -> Result<Handled, HandleError> {
        let Some(mut tx) = begin_once_mysql(&self.pool, CONSUMER, event.id().as_uuid()).await? else { return Ok(Handled::Duplicate) };
        lock_saga_order(&mut tx, order, true).await.map_err(db)?;
        let released = store::release(&mut tx, order).await.map_err(db)?;
        let Ok(lines) = NonEmpty::new(released) else {
            tx.commit().await.map_err(db)?;
            tracing::info!(order_id = %order, "order.cancelled: nothing reserved to release; a later order.created reserves nothing");
            return Ok(Handled::Processed);
        };
        let units: u32 = lines.iter().map(|l| l.quantity.get()).sum();
        self.enqueue(&mut tx, &Event::new(order, InventoryReleased { lines })).await?;
        tx.commit().await.map_err(db)?;
        self.metrics.reservation(Outcome::Released);
        self.low_stock.changed();
        tracing::info!(order_id = %order, units, "order.cancelled: reservation released");
        Ok(Handled::Processed)
    }

    /// Records the event as seen and does nothing else.
    async fn acknowledge(&self, event: &Event) -> Result<Handled, HandleError> {
        let Some(tx) = begin_once_mysql(&self.pool, CONSUMER, event.id().as_uuid()).await? else { return Ok(Handled::Duplicate) };
        tx.commit().await.map_err(db)?;
        Ok(Handled::Processed)
    }
}

/// Locks the order's `saga_orders` row in `conn`'s transaction, creating it if
/// missing; with `cancel`, also sets its tombstone (once: the first cancel's
/// time stays). Returns whether the order is cancelled, as seen under the lock.
///
/// An insert of a missing row holds an exclusive lock on the new key until
/// commit, and the duplicate-key branch of `ON DUPLICATE KEY UPDATE` takes an
/// exclusive lock on the existing row, so two transactions for one order never
/// hold this row at once, whichever of them creates it.
async fn lock_saga_order(conn: &mut MySqlConnection, order: OrderId, cancel: bool) -> sqlx::Result<bool> {
    let order = order.to_string();
    let sql = if cancel {
        "INSERT INTO saga_orders (order_id, cancelled_at) VALUES (?, CURRENT_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE cancelled_at = COALESCE(cancelled_at, VALUES(cancelled_at))"
    } else {
        "INSERT INTO saga_orders (order_id) VALUES (?) ON DUPLICATE KEY UPDATE order_id = order_id"
    };
    sqlx::query(sql).bind(&order).execute(&mut *conn).await?;
    let cancelled: Option<i64> = sqlx::query_scalar("SELECT CAST(cancelled_at IS NOT NULL AS SIGNED) FROM saga_orders WHERE order_id = ?")
        .bind(&order)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(cancelled == Some(1))
}

#[async_trait::async_trait]
impl MessageHandler for OrderEvents {
    async fn handle(&self, msg: &InboundMessage) -> Result<Handled, HandleError> {
        let event = msg.event(CONSUMER, &CONSUMES)?;
        let order = event.order_id();
        match event.payload() {
            Payload::OrderCreated(created) => self.reserve(&event, order, created).await,
            Payload::OrderCancelled(_) => self.release(&event, order).await,
            // The order's fate is already settled here: reserved stock stays
            // taken (confirmed) or nothing was taken (rejected).
            Payload::OrderConfirmed(_) | Payload::OrderRejected(_) => self.acknowledge(&event).await,
            // `msg.event` lets only CONSUMES through; kept total for the compiler.
            other => Err(HandleError::Permanent(anyhow::anyhow!("{CONSUMER} does not consume {}", other.event_type()))),
        }
    }
}
