-- One row per order Inventory has handled an order.created or order.cancelled
-- for (src/events.rs). Both handlers lock this row first, so the reservation
-- and the release of one order serialize whatever order their events arrive
-- in; `cancelled_at` is the tombstone that a later order.created reads and
-- then reserves nothing (an order.created re-driven from the dead-letter topic
-- after the order was cancelled or timed out).
CREATE TABLE saga_orders (
    order_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- Set once, by the first order.cancelled; never cleared.
    cancelled_at TIMESTAMP(6) NULL DEFAULT NULL,
    PRIMARY KEY (order_id)
) ENGINE = InnoDB;
