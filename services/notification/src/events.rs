//! The consumer of Order's lifecycle events: one stored notification per
//! event, deduplicated by the unique index on `event_id` (see [`crate::store`]
//! for why a single insert is enough without transactions).
//!
//! Fault flag `consumer_error_rate` (0.0..=1.0, demos and chaos): that share
//! of deliveries fails with a transient error before any work, so the
//! platform consumer retries them in place (backoff) until they succeed:
//! nothing is dead-lettered, nothing lost.

use chrono::Utc;
use glasshouse_contracts::EventType;
use glasshouse_platform::consumer::{HandleError, Handled, InboundMessage, MessageHandler};
use glasshouse_platform::faults::{Faults, FlagSpec};

use crate::metrics::NotificationMetrics;
use crate::render::render;
use crate::store::{self, Inserted, NotificationDoc, Store};

/// The consumer's name in dead-letter errors (Notification deduplicates by
/// the unique `event_id` index, not in `processed_events`).
pub const CONSUMER: &str = "notification";

/// The event types this consumer understands: all on `orders.v1`.
pub use crate::render::NOTIFIED as CONSUMES;

/// Rate: the share of deliveries that fail (transiently) before any work.
pub const CONSUMER_ERROR_RATE: &str = "consumer_error_rate";

/// Every flag Notification reads (it has no outbox, so no relay flags).
pub const FLAGS: [FlagSpec; 1] = [FlagSpec::rate(CONSUMER_ERROR_RATE)];

pub struct OrderEvents {
    pub store: Store,
    pub metrics: NotificationMetrics,
    /// The flags over [`FLAGS`] (all off unless a flag file sets them).
    pub faults: Faults,
}

/// Classifies a MongoDB error for the consumer loop ([`store::is_transient`]):
/// retried in place until it succeeds when transient, dead-lettered otherwise.
pub fn handle_error(e: mongodb::error::Error) -> HandleError {
    let transient = store::is_transient(&e);
    let e = anyhow::Error::new(e).context("store the notification");
    if transient { HandleError::Transient(e) } else { HandleError::Permanent(e) }
}

#[async_trait::async_trait]
impl MessageHandler for OrderEvents {
    async fn handle(&self, msg: &InboundMessage) -> Result<Handled, HandleError> {
        if self.faults.fails(CONSUMER_ERROR_RATE) {
            return Err(HandleError::Transient(anyhow::anyhow!("injected fault ({CONSUMER_ERROR_RATE}); the message will be retried")));
        }
        // Only Order's events are on this topic; anything else breaks the contract.
        let event = msg.event(CONSUMER, &CONSUMES)?;
        let event_type: EventType = event.event_type();
        let Some(rendered) = render(&event) else {
            // CONSUMES is what `render` renders.
            return Err(HandleError::Permanent(anyhow::anyhow!("{CONSUMER} does not consume {event_type} (on {})", msg.topic)));
        };
        let now = Utc::now();
        let doc = NotificationDoc::new(&event, rendered, now);
        match self.store.insert(&doc).await.map_err(handle_error)? {
            Inserted::New => {
                let lag = (now - event.occurred_at()).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
                self.metrics.stored(event_type, lag);
                tracing::info!(order_id = %event.order_id(), event_type = event_type.as_str(), notification_id = %doc.id, "notification stored");
                Ok(Handled::Processed)
            }
            Inserted::Duplicate => Ok(Handled::Duplicate),
        }
    }
}
