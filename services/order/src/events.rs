//! Order's side of the saga: Inventory's verdicts move orders along the state
//! machine, each in one transaction with the dedupe row and the next event.

use glasshouse_contracts::{CustomerId, Event, EventType, OrderConfirmed, OrderId, OrderRejected, Payload, RejectionReason};
use glasshouse_platform::consumer::{HandleError, Handled, InboundMessage, MessageHandler, begin_once_pg};
use sqlx::PgPool;

use crate::domain::{OrderEvent, OrderStatus};
use crate::metrics::OrderMetrics;
use crate::store::{self, Applied};

/// The consumer name in `processed_events`.
pub const CONSUMER: &str = "order";

pub struct InventoryEvents {
    pub pool: PgPool,
    pub metrics: OrderMetrics,
}

#[async_trait::async_trait]
impl MessageHandler for InventoryEvents {
    async fn handle(&self, msg: &InboundMessage) -> Result<Handled, HandleError> {
        let event = msg.event(CONSUMER, &CONSUMES)?;
        let (order_event, reason) = match event.payload() {
            Payload::InventoryReserved(_) => (OrderEvent::Reserved, None),
            Payload::InventoryRejected(r) => (OrderEvent::Rejected, Some(r.reason.clone())),
            Payload::InventoryReleased(_) => (OrderEvent::Released, None),
            // `msg.event` lets only CONSUMES through; kept total for the compiler.
            other => return Err(HandleError::Permanent(anyhow::anyhow!("{CONSUMER} does not consume {}", other.event_type()))),
        };
        let order_id = event.order_id();
        let Some(mut tx) = begin_once_pg(&self.pool, CONSUMER, event.id().as_uuid()).await? else { return Ok(Handled::Duplicate) };
        // A verdict for an order that is no longer PENDING (after a cancel or
        // the saga deadline; Inventory's `cancelled` answer to a re-driven
        // order.created) moves nothing: see crate::domain.
        let reason_code = reason.as_ref().map(RejectionReason::code);
        let applied = store::apply(&mut tx, order_id.as_uuid(), order_event, reason_code, |o, to| {
            let customer_id = CustomerId::parse(&o.customer_id)?;
            let id = OrderId::from_uuid(o.id)?;
            Ok(match to {
                OrderStatus::Confirmed => Some(Event::new(id, OrderConfirmed { customer_id })),
                OrderStatus::Rejected => reason.clone().map(|reason| Event::new(id, OrderRejected { customer_id, reason })),
                _ => None,
            })
        })
        .await
        .map_err(|e| match e.downcast::<sqlx::Error>() {
            Ok(db) => HandleError::from_sqlx(db),
            Err(other) => HandleError::Permanent(other),
        })?;
        match applied {
            Applied::NotFound => {
                // Never happens for events Inventory derives from order.created; keep it visible.
                return Err(HandleError::Permanent(anyhow::anyhow!("{} for unknown order {order_id}", event.event_type().as_str())));
            }
            Applied::Illegal(from) => {
                tracing::warn!(order_id = %order_id, from = from.as_str(), event = order_event.as_str(), "illegal transition ignored");
                self.metrics.illegal(from, order_event.as_str());
            }
            Applied::NoOp(_) | Applied::Moved { .. } => {}
        }
        tx.commit().await.map_err(HandleError::from_sqlx)?;
        if let Applied::Moved { from, to, created_at } = applied {
            tracing::info!(order_id = %order_id, status = to.as_str(), "order moved");
            self.metrics.reached(to);
            if from == OrderStatus::Pending {
                self.metrics.completed(to, (chrono::Utc::now() - created_at).num_milliseconds() as f64 / 1000.0);
            }
        }
        Ok(Handled::Processed)
    }
}

/// The event types this consumer understands (documentation and tests).
pub const CONSUMES: [EventType; 3] = [EventType::InventoryReserved, EventType::InventoryRejected, EventType::InventoryReleased];
