//! Kafka topic names.
//!
//! One topic per aggregate owner, not one per event type: Kafka orders messages
//! only within a partition, and every event is keyed by its order id, so all
//! `order.*` events of one order sit on one partition of [`ORDERS`] in the order
//! Order wrote them, and all `inventory.*` events of that order on one partition
//! of [`INVENTORY`]. A topic per event type would let `order.cancelled` overtake
//! `order.created` of the same order. The `.v1` suffix is the topic's schema
//! generation: a breaking change to the envelope gets a new topic, while payload
//! versions evolve inside it through the envelope's `version` field.

/// Every `order.*` event (written by Order, read by Inventory and Notification).
pub const ORDERS: &str = "orders.v1";

/// Every `inventory.*` event (written by Inventory, read by Order).
pub const INVENTORY: &str = "inventory.v1";

/// Suffix of a dead-letter topic: poison messages of `T` go to `T.dlq`.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// Dead-letter topic of [`ORDERS`].
pub const ORDERS_DLQ: &str = "orders.v1.dlq";

/// Dead-letter topic of [`INVENTORY`].
pub const INVENTORY_DLQ: &str = "inventory.v1.dlq";

/// Every topic the services use, dead-letter topics included: what a stack
/// script or test creates up front.
pub const ALL: [&str; 4] = [ORDERS, INVENTORY, ORDERS_DLQ, INVENTORY_DLQ];

/// The dead-letter topic of any topic: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}{DEAD_LETTER_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlq_constants_follow_the_rule() {
        assert_eq!(dead_letter_topic(ORDERS), ORDERS_DLQ);
        assert_eq!(dead_letter_topic(INVENTORY), INVENTORY_DLQ);
    }
}
