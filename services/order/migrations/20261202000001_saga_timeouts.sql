-- The saga deadline's sweeper (src/timeout.rs) claims the oldest PENDING orders
-- past the deadline: this index holds only PENDING orders, so the claim reads a
-- short range however many orders are final.
CREATE INDEX orders_pending_created ON orders (created_at) WHERE status = 'PENDING';
