-- The pruner deletes idempotency keys older than their retention
-- (glasshouse_platform::prune): this index lets each batch read only old rows.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
