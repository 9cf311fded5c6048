-- The pruner (services/platform/src/prune.rs) deletes processed_events rows by
-- processed_at: this index makes each batch read only old rows. InnoDB adds a
-- secondary index online (concurrent inserts continue while it builds).
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at) ALGORITHM = INPLACE LOCK = NONE;
