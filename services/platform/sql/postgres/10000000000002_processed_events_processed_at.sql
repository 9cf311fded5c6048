-- no-transaction
-- The pruner (services/platform/src/prune.rs) deletes processed_events rows by
-- processed_at: this index makes each batch read only old rows. CONCURRENTLY,
-- so a large table keeps taking the consumers' inserts while it builds; that
-- needs no transaction, so this file holds this one statement only. Should it
-- fail half way, drop the INVALID index it leaves and run the migration again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
