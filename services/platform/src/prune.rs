//! Pruning the tables that only grow: the consumers' dedupe rows
//! (`processed_events`), the services' idempotency keys, and sent outbox rows.
//!
//! A [`Pruner`] deletes the rows of each [`PruneTable`] whose time column is
//! older than the table's retention, in small batches, and counts them in
//! `db_rows_pruned_total{table}`. Each service runs one with its tables
//! ([`Pruner::run`]), beside the relay.
//!
//! # Retention: longer than a row can still be needed
//! - `processed_events`, [`PROCESSED_EVENTS_RETENTION`] (7 days): the row is
//!   what turns a redelivered event into a no-op. Redeliveries come from a
//!   consumer stopping between its commit and its offset commit (seconds), the
//!   relay publishing again after a failed mark-sent (minutes), and a replay of
//!   a topic from an older offset or a dead-letter re-drive, which reaches back
//!   as far as the topic keeps messages: Kafka's default retention is 7 days
//!   (`log.retention.hours=168`; the local stack keeps 24 h). A row pruned
//!   earlier than that lets a replayed event take effect twice, so raise this
//!   with the topics' retention.
//! - idempotency keys (Order's `idempotency_keys`; Inventory's `restocks` and
//!   `stock_adjustments` carry keys too but are its stock ledger, so they are
//!   kept), [`IDEMPOTENCY_KEY_RETENTION`] (24 h): a client repeats a request with the
//!   same `Idempotency-Key` within its retry budget, seconds to minutes, hours
//!   for a job that resumes; 24 h is the usual promise of APIs with such keys.
//!   A repeat after that is a new request.
//! - sent outbox rows, [`OUTBOX_SENT_RETENTION`] (1 h): nothing reads a row
//!   once it is sent (consumers deduplicate by event id); an hour is kept to
//!   look into a recent publish.
//!
//! # Never a long lock
//! One statement deletes at most [`PruneConfig::batch_size`] rows, in its own
//! short transaction; a table is done when a batch comes back short, with
//! [`PruneConfig::batch_pause`] between batches so other transactions get the
//! rows, the locks and the I/O in between. Rounds repeat every
//! [`PruneConfig::interval`].
//! - PostgreSQL: `DELETE … WHERE ctid = ANY(ARRAY(SELECT ctid … WHERE col <
//!   cutoff LIMIT n FOR UPDATE SKIP LOCKED))` (PostgreSQL has no `DELETE …
//!   LIMIT`). `SKIP LOCKED` lets the pruners of several replicas share the
//!   work instead of queueing on the same rows.
//! - MySQL: `DELETE … WHERE col < cutoff LIMIT n` in a READ COMMITTED
//!   transaction: InnoDB then locks only the rows it deletes, not every row and
//!   gap it scans, so inserts (new keys, new dedupe rows) never wait for it.
//!   With binary logging on, that needs `binlog_format` ROW or MIXED (the
//!   defaults; STATEMENT refuses READ COMMITTED writes).
//!
//! The cutoff is the database's clock minus the retention: rows are stamped
//! with that clock. No `ORDER BY`: every row past the cutoff goes, so the
//! order does not matter, and without an index on the time column it would
//! sort the whole table on each batch. With an index a batch reads only old
//! rows (`processed_events.processed_at` has one since the platform's second
//! migration, the outbox's `sent_at` since the first); without one a batch
//! reads the table until it has found its rows.

use std::time::Duration;

use glasshouse_telemetry::metrics::StandardMetrics;
use tokio::sync::watch;
use tracing::Instrument;

use crate::outbox::{Dialect, OutboxDb, with_pool};

/// Default retention of `processed_events`: Kafka's default topic retention.
pub const PROCESSED_EVENTS_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default retention of idempotency keys.
pub const IDEMPOTENCY_KEY_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Default retention of sent outbox rows.
pub const OUTBOX_SENT_RETENTION: Duration = Duration::from_secs(3600);

/// One table to prune: rows whose `time_column` is older than `retention` go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneTable {
    table: &'static str,
    time_column: &'static str,
    retention: Duration,
    /// `retention` in microseconds, the unit the statements bind.
    retention_micros: i64,
}

impl PruneTable {
    /// Names come from code, not from users, but they are spliced into SQL:
    /// each must be a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 64
    /// characters). `retention` must be at least one second. Rows whose time
    /// column is NULL are never pruned (an unsent outbox row).
    pub fn new(table: &'static str, time_column: &'static str, retention: Duration) -> anyhow::Result<Self> {
        for (what, name) in [("table", table), ("time column", time_column)] {
            anyhow::ensure!(
                is_identifier(name),
                "prune {what} {name:?} is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 64)"
            );
        }
        anyhow::ensure!(retention >= Duration::from_secs(1), "prune retention of {table} must be at least 1s, got {retention:?}");
        let retention_micros =
            i64::try_from(retention.as_micros()).map_err(|_| anyhow::anyhow!("prune retention of {table} is too long: {retention:?}"))?;
        Ok(Self { table, time_column, retention, retention_micros })
    }

    /// The platform's consumer dedupe table (`processed_at`).
    pub fn processed_events(retention: Duration) -> anyhow::Result<Self> {
        Self::new("processed_events", "processed_at", retention)
    }

    /// Sent outbox rows (`sent_at`; unsent rows have none and always stay).
    pub fn outbox_sent(retention: Duration) -> anyhow::Result<Self> {
        Self::new("outbox", "sent_at", retention)
    }

    pub fn table(&self) -> &'static str {
        self.table
    }

    pub fn time_column(&self) -> &'static str {
        self.time_column
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One batch: delete at most the second bound parameter's rows older than the first's microseconds.
fn delete_sql(d: Dialect, t: &PruneTable) -> String {
    let (table, column) = (t.table, t.time_column);
    let cutoff = d.micros_ago(1);
    match d {
        Dialect::Postgres => format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {column} < {cutoff} LIMIT $2 FOR UPDATE SKIP LOCKED))"
        ),
        Dialect::MySql => format!("DELETE FROM {table} WHERE {column} < {cutoff} LIMIT ?"),
    }
}

/// Run before a batch's transaction so that it takes no gap locks (see the module doc).
fn isolation_sql(d: Dialect) -> Option<&'static str> {
    match d {
        // READ COMMITTED is PostgreSQL's default, and it takes no gap locks anyway.
        Dialect::Postgres => None,
        Dialect::MySql => Some("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"),
    }
}

/// Pruner tuning.
#[derive(Clone, Debug)]
pub struct PruneConfig {
    /// Rows deleted per statement: small enough that one batch holds its
    /// locks for milliseconds.
    pub batch_size: u32,
    /// Pause between two batches of one table.
    pub batch_pause: Duration,
    /// Pause between rounds (a round prunes every table until a batch is short).
    pub interval: Duration,
}

impl Default for PruneConfig {
    fn default() -> Self {
        Self { batch_size: 1000, batch_pause: Duration::from_millis(100), interval: Duration::from_secs(300) }
    }
}

/// Deletes old rows from its tables, round after round, until shutdown.
pub struct Pruner {
    db: OutboxDb,
    metrics: StandardMetrics,
    tables: Vec<PruneTable>,
    config: PruneConfig,
}

impl Pruner {
    pub fn new(db: OutboxDb, metrics: StandardMetrics, tables: Vec<PruneTable>) -> Self {
        Self { db, metrics, tables, config: PruneConfig::default() }
    }

    pub fn with_config(mut self, config: PruneConfig) -> Self {
        self.config = config;
        self
    }

    /// A round at once, then one every [`PruneConfig::interval`], until
    /// `shutdown` turns true (or its sender is dropped); a round in progress
    /// stops after its current batch. A failed round is logged and the next
    /// one tries again: pruning late costs space, never correctness.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if let Err(e) = self.round(Some(&mut shutdown)).await {
                tracing::warn!(error = %format!("{e:#}"), "pruning failed; the next round tries again");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// One round over every table; returns how many rows were deleted. A
    /// table that fails does not stop the others; the first error is returned.
    pub async fn prune_once(&self) -> anyhow::Result<u64> {
        self.round(None).await
    }

    async fn round(&self, mut shutdown: Option<&mut watch::Receiver<bool>>) -> anyhow::Result<u64> {
        let mut total = 0;
        let mut first_error = None;
        for t in &self.tables {
            match self.prune_table(t, shutdown.as_deref_mut()).await {
                Ok(n) => total += n,
                Err(e) => {
                    let e = e.context(format!("prune {}", t.table));
                    tracing::warn!(table = t.table, error = %format!("{e:#}"), "pruning a table failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// Batches until one is short (or shutdown); returns the rows deleted.
    async fn prune_table(&self, t: &PruneTable, mut shutdown: Option<&mut watch::Receiver<bool>>) -> anyhow::Result<u64> {
        let mut total = 0;
        loop {
            let n = self.prune_batch(t).await?;
            total += n;
            self.metrics.inc_rows_pruned(t.table, n);
            if n < u64::from(self.config.batch_size) {
                if total > 0 {
                    tracing::info!(table = t.table, rows = total, retention_s = t.retention.as_secs(), "pruned old rows");
                }
                return Ok(total);
            }
            match shutdown.as_deref_mut() {
                Some(rx) if *rx.borrow() => return Ok(total),
                Some(rx) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.batch_pause) => {}
                        _ = rx.changed() => return Ok(total),
                    }
                }
                None => tokio::time::sleep(self.config.batch_pause).await,
            }
        }
    }

    /// One batch of `t`: one statement in one short transaction, at most
    /// [`PruneConfig::batch_size`] rows; returns the rows it deleted. Not
    /// counted in the metric ([`Pruner::prune_once`] and [`Pruner::run`] count).
    pub async fn prune_batch(&self, t: &PruneTable) -> sqlx::Result<u64> {
        let d = self.db.dialect();
        let sql = delete_sql(d, t);
        let span = glasshouse_telemetry::db::client_span(d.system(), "DELETE", t.table, "");
        let batch_size = i64::from(self.config.batch_size);
        let deleted = with_pool!(&self.db, pool => async {
            let mut conn = pool.acquire().await?;
            if let Some(isolation) = isolation_sql(d) {
                // Applies to the next transaction on this connection only: the
                // pooled connection keeps its own level for everyone else.
                sqlx::query(isolation).execute(&mut *conn).await?;
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let done = sqlx::query(&sql).bind(t.retention_micros).bind(batch_size).execute(&mut *tx).await?;
            tx.commit().await?;
            sqlx::Result::Ok(done.rows_affected())
        }
        .instrument(span.clone())
        .await);
        if let Err(e) = &deleted {
            glasshouse_telemetry::db::record_error(&span, e);
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_identifiers_and_retention_is_real() {
        assert!(PruneTable::new("idempotency_keys", "created_at", IDEMPOTENCY_KEY_RETENTION).is_ok());
        for bad in ["", "1table", "orders; DROP TABLE orders", "a.b", "tab le", "\"quoted\""] {
            let e = PruneTable::new(bad, "created_at", Duration::from_secs(60)).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "the error names the bad value: {e}");
            assert!(PruneTable::new("t", bad, Duration::from_secs(60)).is_err(), "{bad:?} as a column");
        }
        let e = PruneTable::new("t", "c", Duration::from_millis(10)).unwrap_err().to_string();
        assert!(e.contains("at least 1s") && e.contains("10ms"), "{e}");
        assert!(PruneTable::new("t", "c", Duration::MAX).is_err());
    }

    #[test]
    fn batches_are_bounded_in_both_dialects() {
        let t = PruneTable::processed_events(PROCESSED_EVENTS_RETENTION).unwrap();
        assert_eq!(
            delete_sql(Dialect::Postgres, &t),
            "DELETE FROM processed_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM processed_events \
             WHERE processed_at < now() - $1 * interval '1 microsecond' LIMIT $2 FOR UPDATE SKIP LOCKED))"
        );
        assert_eq!(
            delete_sql(Dialect::MySql, &t),
            "DELETE FROM processed_events WHERE processed_at < CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND LIMIT ?"
        );
    }
}
