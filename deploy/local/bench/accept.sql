-- pgbench script: exactly the transaction Order runs to accept an order
-- (services/order/src/store.rs, create_order_tx; the outbox row as
-- services/platform/src/outbox.rs enqueue_pg writes it): the order, two lines,
-- the outbox row and the idempotency key, one commit. Run by bench.py against
-- a scratch database migrated like the service's own.
\set line2 random(1, 1000)
BEGIN;
INSERT INTO orders (id, customer_id, status, currency, total_minor) VALUES (gen_random_uuid(), 'bench-' || :client_id, 'PENDING', 'EUR', 1900) RETURNING id \gset
INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES (:'id', 1, 'TEA-GREEN-100G', 1, 700);
INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES (:'id', 2, 'MUG-' || :line2, 2, 600);
INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, trace_carrier) VALUES (gen_random_uuid(), 'orders.v1', :'id', 'order.created', repeat('x', 420), '{}');
INSERT INTO idempotency_keys (customer_id, key, request_hash, order_id, response_body) VALUES ('bench-' || :client_id, gen_random_uuid()::text, 'h', :'id', repeat('r', 300));
COMMIT;
