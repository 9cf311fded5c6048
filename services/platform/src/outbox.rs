//! The transactional outbox and its relay, once for PostgreSQL and MySQL.
//!
//! A service writes its event into the `outbox` table in the same transaction
//! as the business change ([`enqueue_pg`] / [`enqueue_mysql`]), so an event
//! exists if and only if the change committed. The [`Relay`] then publishes
//! unsent rows to Kafka (key = aggregate id, trace context from the row in the
//! headers), waits for the broker's acknowledgement, and marks them sent:
//! at-least-once, in order per key. Sent rows are deleted later by the
//! [`crate::prune::Pruner`] ([`crate::prune::PruneTable::outbox_sent`]).
//!
//! # Several relays at once
//! Each service replica runs a relay, so several claim from one table. A batch
//! is claimed in two steps, in one transaction:
//! 1. *heads*: a plain, non-locking read of the unsent rows that have no
//!    earlier unsent row of the same key, oldest first;
//! 2. *lock*: those heads that are still unsent, `FOR UPDATE SKIP LOCKED`,
//!    looked up by primary key.
//!
//! Per key, row ids grow in commit order, because a service changes one
//! aggregate under that aggregate's row lock before it inserts the event. So a
//! row that is a head in any snapshot is the key's oldest unsent row for good:
//! every earlier row of its key committed before it and was seen sent, and a
//! sent row stays sent. Step 2 re-reads `sent_at` under the row lock, dropping
//! a head that another relay sent in between, and skips a head that another
//! relay holds. A relay therefore only publishes the oldest unsent row of a
//! key, and while it holds that row no other relay claims it or a later row of
//! the key: order per key holds across relays, and no row is published twice
//! unless a batch fails. Step 1 reads [`HEADS_PER_BATCH`] batches' worth of
//! heads so that relays sharing a backlog do not all pick the same few rows.
//!
//! Why not one `SELECT … WHERE NOT EXISTS (earlier unsent row) … FOR UPDATE
//! SKIP LOCKED`: on MariaDB (InnoDB) it is wrong in two ways. A locking read
//! returns the newest committed rows, while the `NOT EXISTS` subquery is a
//! consistent read of the transaction's snapshot, taken during the scan; a row
//! committed after that snapshot can be claimed while its predecessor,
//! committed in the same window, is invisible to the subquery and held by
//! another relay, so two relays publish one key at once. And under REPEATABLE
//! READ the locking scan of the `sent_at IS NULL` index range takes next-key
//! locks up to the first sent row, the very gap where every new outbox row and
//! every newly sent row goes: business transactions wait for a relay's Kafka
//! round trip, and with several relays and rows arriving a writer's `INSERT`
//! or a relay's mark-sent `UPDATE` fails with deadlock 1213 (a rolled-back
//! batch is then published again: duplicates). The two-step claim takes no
//! lock in step 1 and only primary-key record locks in step 2, so it neither
//! races nor blocks inserts, whatever the isolation level. PostgreSQL's
//! single statement is not affected (one snapshot for the whole statement, no
//! gap locks); it uses the same two steps so the claim is written once.
//!
//! # Dialects
//! Enqueue, claim, mark-sent, backlog and the pruner's delete are each written
//! once, against [`Dialect`] (the SQL text that differs: bind parameters, the
//! clock, UUID columns) and compiled once per database (`with_pool!`).
//!
//! # Shutdown
//! The service stops the relay last, after the HTTP server and the consumers,
//! so the events of the last requests and messages are in the table. On the
//! signal, [`Relay::run`] keeps relaying until nothing is left to claim or
//! [`RelayConfig::drain_timeout`] passes; what is left then is published after
//! the next start (nothing is lost, only delayed).
//!
//! # Fault flags
//! With [`RelayConfig::faults`] set, the relay obeys the flags of
//! [`crate::faults::RELAY_FLAGS`]: while `relay_paused` is on it claims and
//! publishes nothing (its loop, its backlog gauges and its shutdown keep
//! working; the rows wait in the table and go out once the flag is off), and
//! `kafka_produce_error_rate` fails that share of publishes in place of the
//! broker's answer, so a failed row takes the real failure path: not marked
//! sent, the later rows of its key held back, the batch retried with backoff.
//!
//! # Topic names
//! A row holds the *logical* topic (`orders.v1`, [`glasshouse_contracts::topics`]):
//! business code never sees `KafkaSettings::topic_prefix`. The relay puts the
//! prefix ([`RelayConfig::topic_prefix`]) in front when it publishes
//! ([`published_topic`]). Rows written before the outbox stored logical
//! topics hold the prefixed name already; the relay publishes a topic that
//! already starts with the prefix as it is, so those rows reach the same topic
//! after an upgrade and no data migration is needed (a migration could not
//! know the prefix anyway). The one name this would get wrong, a logical topic
//! that itself starts with the prefix, does not occur: prefixes isolate test
//! runs and stacks (`e2e_1.`, `inv-3f2a.`), contract topics are `orders.v1`
//! and `inventory.v1`. With the production prefix (empty) a row reads the
//! same before and after the change, so a relay of either version publishes
//! it to the same topic during a rolling upgrade; with a non-empty prefix an
//! old relay would publish a new row without it, so a prefixed stack (tests,
//! a shared development broker) is upgraded all at once.
//!
//! # Tables
//! `outbox` and `processed_events` come from the platform's own migrations,
//! [`crate::migrations::run_postgres`] / [`crate::migrations::run_mysql`]
//! (`services/platform/sql/`), which each service runs before its own.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use glasshouse_telemetry::metrics::StandardMetrics;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Row;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use crate::faults::{Faults, KAFKA_PRODUCE_ERROR_RATE, RELAY_PAUSED};

/// One event to publish, as the business transaction writes it.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// The event id (consumers deduplicate on it).
    pub event_id: Uuid,
    /// The logical topic (`orders.v1`); the relay adds the prefix (module doc).
    pub topic: String,
    /// Kafka message key: the aggregate id, so one order's events share a partition.
    pub key: String,
    pub event_type: String,
    /// The serialized event envelope.
    pub payload: String,
}

impl OutboxMessage {
    /// The outbox row for a contract event: its id, its logical topic, keyed by order id.
    pub fn from_event(event: &glasshouse_contracts::Event) -> anyhow::Result<Self> {
        Ok(Self {
            event_id: event.id().as_uuid(),
            topic: event.topic().to_owned(),
            key: event.key(),
            event_type: event.event_type().as_str().to_owned(),
            payload: String::from_utf8(event.to_vec()?)?,
        })
    }
}

/// The SQL that differs between the two databases. Every outbox and pruner
/// statement is written once against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    /// `db.system.name` of client spans.
    pub fn system(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql",
            Self::MySql => "mysql",
        }
    }

    /// The `n`th (1-based) bind parameter.
    pub fn param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql => "?".to_owned(),
        }
    }

    /// `count` bind parameters from the `first`th on, comma-separated (an `IN` list).
    pub fn params(self, first: usize, count: usize) -> String {
        (first..first + count).map(|n| self.param(n)).collect::<Vec<_>>().join(", ")
    }

    /// A bind parameter holding a UUID as text: PostgreSQL's column is `uuid`,
    /// MySQL's `CHAR(36)` (sqlx would send a `Uuid` to MySQL as 16 bytes).
    pub fn uuid_param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}::uuid"),
            Self::MySql => "?".to_owned(),
        }
    }

    /// A UUID column read as text.
    pub fn uuid_text(self, column: &str) -> String {
        match self {
            Self::Postgres => format!("{column}::text"),
            Self::MySql => column.to_owned(),
        }
    }

    /// The database's current time, with microseconds.
    pub fn now(self) -> &'static str {
        match self {
            Self::Postgres => "now()",
            Self::MySql => "CURRENT_TIMESTAMP(6)",
        }
    }

    /// The instant the `n`th bind parameter (an `i64` of microseconds) before
    /// the database's current time. The database's clock, not ours: rows are
    /// stamped with it.
    pub fn micros_ago(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("now() - ${n} * interval '1 microsecond'"),
            Self::MySql => "CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND".to_owned(),
        }
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool of an [`OutboxDb`]:
/// an operation is written once and compiled once per database (the pool,
/// transaction and row types differ; the sqlx calls on them do not).
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::outbox::OutboxDb::Postgres($pool) => $body,
            $crate::outbox::OutboxDb::MySql($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Inserts `msg` in the caller's PostgreSQL transaction, with the current trace context.
pub async fn enqueue_pg(conn: &mut sqlx::PgConnection, msg: &OutboxMessage) -> sqlx::Result<()> {
    enqueue(conn, Dialect::Postgres, msg).await
}

/// Inserts `msg` in the caller's MySQL transaction, with the current trace context.
pub async fn enqueue_mysql(conn: &mut sqlx::MySqlConnection, msg: &OutboxMessage) -> sqlx::Result<()> {
    enqueue(conn, Dialect::MySql, msg).await
}

async fn enqueue<'c, DB, E>(conn: E, dialect: Dialect, msg: &OutboxMessage) -> sqlx::Result<()>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let d = dialect;
    let sql = format!(
        "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, trace_carrier) VALUES ({}, {})",
        d.uuid_param(1),
        d.params(2, 5)
    );
    let span = glasshouse_telemetry::db::client_span(d.system(), "INSERT", "outbox", "");
    sqlx::query(&sql)
        .bind(msg.event_id.to_string())
        .bind(msg.topic.clone())
        .bind(msg.key.clone())
        .bind(msg.event_type.clone())
        .bind(msg.payload.clone())
        .bind(glasshouse_telemetry::propagation::current_carrier())
        .execute(conn)
        .instrument(span)
        .await?;
    Ok(())
}

/// Step 1 of a claim: the oldest unsent row of each key, oldest first, up to
/// the bound limit. A plain read: no locks (see the module doc).
fn heads_sql(d: Dialect) -> String {
    format!(
        "SELECT id FROM outbox o WHERE o.sent_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.partition_key = o.partition_key AND p.sent_at IS NULL AND p.id < o.id) \
         ORDER BY o.id LIMIT {}",
        d.param(1)
    )
}

/// Step 2 of a claim: of `heads` ids, those still unsent and not held by
/// another relay, locked, up to the bound batch size.
fn lock_sql(d: Dialect, heads: usize) -> String {
    format!(
        "SELECT id, {} AS event_id, topic, partition_key, event_type, payload, trace_carrier FROM outbox \
         WHERE id IN ({}) AND sent_at IS NULL ORDER BY id LIMIT {} FOR UPDATE SKIP LOCKED",
        d.uuid_text("event_id"),
        d.params(1, heads),
        d.param(heads + 1)
    )
}

fn mark_sent_sql(d: Dialect, ids: usize) -> String {
    format!("UPDATE outbox SET sent_at = {} WHERE id IN ({})", d.now(), d.params(1, ids))
}

const BACKLOG_SQL: &str = "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE sent_at IS NULL";

/// How many batches' worth of heads step 1 reads: relays sharing a backlog
/// skip each other's locked heads and still find a batch (up to about this
/// many relays), like `SKIP LOCKED` over the whole table would.
pub const HEADS_PER_BATCH: i64 = 4;

/// A claimed row.
#[derive(Debug, Clone)]
struct Pending {
    id: i64,
    event_id: String,
    topic: String,
    key: String,
    event_type: String,
    payload: String,
    trace_carrier: Option<String>,
}

/// The database the relay (and the [`crate::prune::Pruner`]) works on.
#[derive(Clone, Debug)]
pub enum OutboxDb {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

impl OutboxDb {
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Postgres(_) => Dialect::Postgres,
            Self::MySql(_) => Dialect::MySql,
        }
    }
}

/// Relay tuning.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows claimed per batch.
    pub batch_size: i64,
    /// Pause between polls when there was nothing to send.
    pub idle_poll: Duration,
    /// How long one publish may wait for the broker's acknowledgement.
    pub publish_timeout: Duration,
    /// After the shutdown signal, how long the relay keeps publishing what is
    /// left before it gives up (a batch in flight may add up to
    /// `publish_timeout`). Rows left then are published after the next start.
    pub drain_timeout: Duration,
    /// The service's fault flags (`relay_paused`, `kafka_produce_error_rate`,
    /// see the module doc); `None`: no fault is ever injected.
    pub faults: Option<Faults>,
    /// Put in front of each row's topic when publishing
    /// (`KafkaSettings::topic_prefix`, see the module doc). Empty by default.
    pub topic_prefix: String,
}

/// The Kafka topic a row with `topic` is published to under `prefix`:
/// `prefix + topic`, unless `topic` already starts with `prefix` (a row
/// written before the outbox held logical topics; see the module doc).
pub fn published_topic(prefix: &str, topic: &str) -> String {
    if topic.starts_with(prefix) { topic.to_owned() } else { format!("{prefix}{topic}") }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 200,
            idle_poll: Duration::from_millis(50),
            publish_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            faults: None,
            topic_prefix: String::new(),
        }
    }
}

/// What one claim did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Batch {
    /// Rows this relay claimed (0: nothing it could claim).
    claimed: usize,
    /// Of those, rows published and marked sent.
    sent: usize,
}

/// Publishes outbox rows to Kafka until shutdown, then drains.
pub struct Relay {
    db: OutboxDb,
    producer: FutureProducer,
    metrics: StandardMetrics,
    config: RelayConfig,
}

impl Relay {
    pub fn new(db: OutboxDb, producer: FutureProducer, metrics: StandardMetrics, config: RelayConfig) -> Self {
        Self { db, producer, metrics, config }
    }

    /// Relays until `shutdown` turns true (or its sender is dropped), then
    /// drains: keeps relaying until no unsent row is claimable, or until
    /// [`RelayConfig::drain_timeout`] has passed.
    ///
    /// Batch failures while running are logged and retried with backoff.
    /// Returns an error only when the drain ended with rows still claimable
    /// (the deadline passed, or the last batch failed); they stay in the table.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut failures: u32 = 0;
        let mut paused_since: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                return self.drain().await;
            }
            if self.note_pause(&mut paused_since) {
                self.update_backlog_metrics().await;
                tokio::select! {
                    _ = tokio::time::sleep(self.config.idle_poll) => {}
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            return self.drain().await;
                        }
                    }
                }
                continue;
            }
            let batch = match self.relay_batch().await {
                Ok(b) if b.sent == b.claimed => {
                    failures = 0;
                    b
                }
                Ok(b) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(claimed = b.claimed, sent = b.sent, failures, "outbox relay could not publish every row; will retry");
                    b
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "outbox relay batch failed; will retry");
                    Batch::default()
                }
            };
            self.update_backlog_metrics().await;
            // A full batch means more is waiting: go again at once.
            if batch.claimed as i64 >= self.config.batch_size && failures == 0 {
                continue;
            }
            let pause = if failures > 0 { self.retry_delay(failures) } else { self.config.idle_poll };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        // The sender is gone: nobody can signal any more, so stop as if signalled.
                        return self.drain().await;
                    }
                }
            }
        }
    }

    /// Whether `relay_paused` holds the relay now; logs when it starts and
    /// stops doing so (`paused_since` remembers which it was).
    fn note_pause(&self, paused_since: &mut Option<Instant>) -> bool {
        let paused = self.paused();
        match (paused, *paused_since) {
            (true, None) => {
                tracing::warn!(flag = RELAY_PAUSED, "outbox relay paused by a fault flag: nothing is published until it is off");
                *paused_since = Some(Instant::now());
            }
            (false, Some(since)) => {
                tracing::warn!(flag = RELAY_PAUSED, paused_ms = since.elapsed().as_millis() as u64, "outbox relay resumes");
                *paused_since = None;
            }
            _ => {}
        }
        paused
    }

    fn paused(&self) -> bool {
        self.config.faults.as_ref().is_some_and(|f| f.is_on(RELAY_PAUSED))
    }

    /// The shutdown drain: batches back to back until one claims nothing;
    /// failed batches are retried with backoff until the deadline. Paused
    /// (`relay_paused`), it publishes nothing: the rows wait for the next start.
    async fn drain(&self) -> anyhow::Result<()> {
        if self.paused() {
            self.update_backlog_metrics().await;
            tracing::warn!(flag = RELAY_PAUSED, "outbox relay stops paused: unsent rows are published after the next start");
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + self.config.drain_timeout;
        let mut failures: u32 = 0;
        let mut published = 0usize;
        loop {
            let outcome = self.relay_batch().await;
            self.update_backlog_metrics().await;
            let last_error = match outcome {
                Ok(b) if b.claimed == 0 => {
                    tracing::info!(published, elapsed_ms = started.elapsed().as_millis() as u64, "outbox relay drained");
                    return Ok(());
                }
                Ok(b) => {
                    published += b.sent;
                    if b.sent == b.claimed {
                        failures = 0;
                        None
                    } else {
                        failures = failures.saturating_add(1);
                        Some(anyhow::anyhow!("{} of {} claimed rows could not be published", b.claimed - b.sent, b.claimed))
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    Some(e)
                }
            };
            let now = Instant::now();
            if now >= deadline {
                let why = last_error.unwrap_or_else(|| anyhow::anyhow!("rows were still being claimed"));
                return Err(why.context(format!(
                    "outbox relay stopped after its {:?} drain with rows unsent ({published} published while draining); \
                     they are published after the next start",
                    self.config.drain_timeout
                )));
            }
            if failures > 0 {
                tokio::time::sleep(self.retry_delay(failures).min(deadline - now)).await;
            }
        }
    }

    fn retry_delay(&self, failures: u32) -> Duration {
        crate::backoff::delay(failures, Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Claims, publishes and marks one batch; returns how many rows were sent.
    /// `kafka_produce_error_rate` applies; `relay_paused` does not (it holds
    /// the loop of [`Relay::run`], not a batch asked for explicitly).
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        Ok(self.relay_batch().await?.sent)
    }

    async fn relay_batch(&self) -> anyhow::Result<Batch> {
        let d = self.db.dialect();
        let heads_sql = heads_sql(d);
        let batch_size = self.config.batch_size;
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.context("begin the claim transaction")?;
            let heads: Vec<i64> = sqlx::query_scalar(&heads_sql)
                .bind(batch_size.saturating_mul(HEADS_PER_BATCH))
                .fetch_all(&mut *tx)
                .await
                .context("find the oldest unsent row per key")?;
            if heads.is_empty() {
                return Ok(Batch::default());
            }
            let lock_sql = lock_sql(d, heads.len());
            let mut lock = sqlx::query(&lock_sql);
            for id in &heads {
                lock = lock.bind(*id);
            }
            let rows = lock.bind(batch_size).fetch_all(&mut *tx).await.context("lock the batch")?;
            let pending = rows
                .iter()
                .map(|row| {
                    Ok(Pending {
                        id: row.try_get("id")?,
                        event_id: row.try_get("event_id")?,
                        topic: row.try_get("topic")?,
                        key: row.try_get("partition_key")?,
                        event_type: row.try_get("event_type")?,
                        payload: row.try_get("payload")?,
                        trace_carrier: row.try_get("trace_carrier")?,
                    })
                })
                .collect::<sqlx::Result<Vec<_>>>()
                .context("read the batch")?;
            if pending.is_empty() {
                return Ok(Batch::default());
            }
            let sent = self.publish(&pending).await;
            if !sent.is_empty() {
                let mark_sql = mark_sent_sql(d, sent.len());
                let mut mark = sqlx::query(&mark_sql);
                for id in &sent {
                    mark = mark.bind(*id);
                }
                mark.execute(&mut *tx).await.context("mark the batch sent")?;
            }
            tx.commit().await.context("commit the batch")?;
            Ok(Batch { claimed: pending.len(), sent: sent.len() })
        })
    }

    /// Sends every row (all in flight at once; the idempotent producer keeps
    /// per-partition order) and returns the ids safe to mark sent: for each key,
    /// the rows before its first failure.
    async fn publish(&self, batch: &[Pending]) -> Vec<i64> {
        let batch_span = tracing::info_span!("outbox.relay", otel.name = "outbox relay batch", outbox.batch_size = batch.len());
        let topics: Vec<String> = batch.iter().map(|row| published_topic(&self.config.topic_prefix, &row.topic)).collect();
        let sends = batch.iter().zip(&topics).map(|(row, topic)| {
            // The publish continues the trace of the request that wrote the row.
            let (span, headers) = glasshouse_telemetry::kafka::producer_span_from_carrier(
                topic,
                &row.key,
                row.trace_carrier.as_deref(),
                OwnedHeaders::new()
                    .insert(Header { key: "event_id", value: Some(row.event_id.as_str()) })
                    .insert(Header { key: "event_type", value: Some(row.event_type.as_str()) }),
            );
            // An injected produce failure stands in for the broker's answer;
            // from here on it takes the same path as a real one.
            let injected = self.config.faults.as_ref().is_some_and(|f| f.fails(KAFKA_PRODUCE_ERROR_RATE));
            let send = (!injected).then(|| {
                let record = FutureRecord::to(topic).key(&row.key).payload(&row.payload).headers(headers);
                self.producer.send(record, self.config.publish_timeout)
            });
            async move {
                let r = match send {
                    Some(send) => send.await.map(|_| ()).map_err(|(e, _)| e.to_string()),
                    None => Err(format!("injected fault ({KAFKA_PRODUCE_ERROR_RATE})")),
                };
                if let Err(e) = &r {
                    tracing::warn!(error = %e, "publish failed");
                    tracing::Span::current().record("otel.status_code", "ERROR");
                }
                r.is_ok()
            }
            .instrument(span)
        });
        let results = futures::future::join_all(sends).instrument(batch_span).await;
        let mut failed_keys = std::collections::HashSet::new();
        let mut ok = Vec::new();
        for ((row, topic), sent) in batch.iter().zip(&topics).zip(results) {
            if sent && !failed_keys.contains(&row.key) {
                ok.push(row.id);
                self.metrics.inc_outbox_published(topic, 1);
            } else {
                failed_keys.insert(row.key.clone());
            }
        }
        ok
    }

    /// Sets `outbox_pending` and `outbox_oldest_age_seconds`; a failed query
    /// leaves the last values (the relay's own warnings say why).
    async fn update_backlog_metrics(&self) {
        let backlog: sqlx::Result<(i64, Option<DateTime<Utc>>)> = with_pool!(&self.db, pool => {
            sqlx::query(BACKLOG_SQL).fetch_one(pool).await.and_then(|row| Ok((row.try_get("n")?, row.try_get("oldest")?)))
        });
        match backlog {
            Ok((pending, oldest)) => {
                let age = oldest.map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(0.0);
                self.metrics.set_outbox(pending, age);
            }
            Err(e) => tracing::debug!(error = %e, "outbox backlog query failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_prefixes_logical_topics_and_keeps_prefixed_ones() {
        assert_eq!(published_topic("", "orders.v1"), "orders.v1");
        assert_eq!(published_topic("e2e_1.", "orders.v1"), "e2e_1.orders.v1");
        // A row written when the outbox held prefixed topics goes where it always went.
        assert_eq!(published_topic("e2e_1.", "e2e_1.orders.v1"), "e2e_1.orders.v1");
        // Another run's prefix is not this one's: prefixed again (and never consumed here).
        assert_eq!(published_topic("e2e_2.", "e2e_1.orders.v1"), "e2e_2.e2e_1.orders.v1");
    }

    #[test]
    fn statements_differ_only_where_the_dialects_do() {
        let pg = lock_sql(Dialect::Postgres, 2);
        let my = lock_sql(Dialect::MySql, 2);
        assert!(
            pg.contains("event_id::text AS event_id") && pg.contains("id IN ($1, $2)") && pg.contains("LIMIT $3 FOR UPDATE SKIP LOCKED"),
            "{pg}"
        );
        assert!(
            my.contains("event_id AS event_id") && my.contains("id IN (?, ?)") && my.contains("LIMIT ? FOR UPDATE SKIP LOCKED"),
            "{my}"
        );
        assert_eq!(mark_sent_sql(Dialect::Postgres, 1), "UPDATE outbox SET sent_at = now() WHERE id IN ($1)");
        assert_eq!(mark_sent_sql(Dialect::MySql, 3), "UPDATE outbox SET sent_at = CURRENT_TIMESTAMP(6) WHERE id IN (?, ?, ?)");
        assert!(heads_sql(Dialect::Postgres).ends_with("LIMIT $1"));
        assert!(heads_sql(Dialect::MySql).ends_with("LIMIT ?"));
        assert!(!heads_sql(Dialect::MySql).contains("FOR UPDATE"), "the heads read must not lock");
    }
}
