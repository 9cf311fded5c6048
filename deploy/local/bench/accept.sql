-- pgbench script: exactly the transaction Order runs to accept an order
-- (services/order/src/store.rs, create_order_tx; the outbox row as
-- services/platform/src/outbox.rs enqueue_pg writes it): the order, two lines,
-- the outbox row and the idempotency key, one commit. Run by bench.py against
-- a scratch database migrated like the service's own. The order id is a UUID
-- made from a random 63-bit number and the client id (pgbench variables are
-- numbers; a collision would abort the run, not skew it).
\set r random(1, 9000000000000000000)
\set line2 random(1, 1000)
BEGIN;
INSERT INTO orders (id, customer_id, status, currency, total_minor) VALUES (md5(:r || '/' || :client_id)::uuid, 'bench-' || :client_id, 'PENDING', 'EUR', 1900);
INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES (md5(:r || '/' || :client_id)::uuid, 1, 'TEA-GREEN-100G', 1, 700);
INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES (md5(:r || '/' || :client_id)::uuid, 2, 'MUG-' || :line2, 2, 600);
INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, trace_carrier) VALUES (gen_random_uuid(), 'orders.v1', md5(:r || '/' || :client_id), 'order.created', repeat('x', 420), '{}');
INSERT INTO idempotency_keys (customer_id, key, request_hash, order_id, response_body) VALUES ('bench-' || :client_id, md5(:r || '/' || :client_id), 'h', md5(:r || '/' || :client_id)::uuid, repeat('r', 300));
COMMIT;
