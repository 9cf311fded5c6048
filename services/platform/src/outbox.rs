//! The transactional outbox and its relay, once for PostgreSQL and MySQL.
//!
//! A service writes its event into the `outbox` table in the same transaction
//! as the business change ([`enqueue_pg`] / [`enqueue_mysql`]), so an event
//! exists if and only if the change committed. The [`Relay`] then publishes
//! unsent rows to Kafka (key = aggregate id, trace context from the row in the
//! headers), waits for the broker's acknowledgement, and marks them sent:
//! at-least-once, in order per key.
//!
//! # Several relays at once
//! Each batch is claimed with `FOR UPDATE SKIP LOCKED`, so relays never publish
//! the same row concurrently. Per-key order also holds across relays: a row is
//! only claimed when no earlier unsent row of the same key exists (the
//! `NOT EXISTS` below, a plain non-locking read), so a relay never overtakes
//! another one's older row for the same order. Per key, row ids grow in commit
//! order because a service changes one aggregate under that aggregate's row
//! lock before it inserts the event.
//!
//! # Tables
//! `outbox` and `processed_events` come from the platform's own migrations,
//! [`crate::migrations::run_postgres`] / [`crate::migrations::run_mysql`]
//! (`services/platform/sql/`), which each service runs before its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use glasshouse_telemetry::metrics::StandardMetrics;
use opentelemetry::trace::TraceContextExt;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Row;
use tokio::sync::watch;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// One event to publish, as the business transaction writes it.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// The event id (consumers deduplicate on it).
    pub event_id: Uuid,
    pub topic: String,
    /// Kafka message key: the aggregate id, so one order's events share a partition.
    pub key: String,
    pub event_type: String,
    /// The serialized event envelope.
    pub payload: String,
}

impl OutboxMessage {
    /// The outbox row for a contract event: its id, its topic (under
    /// `topic_prefix`, see `KafkaSettings::topic_prefix`), keyed by order id.
    pub fn from_event(event: &glasshouse_contracts::Event, topic_prefix: &str) -> anyhow::Result<Self> {
        Ok(Self {
            event_id: event.id().as_uuid(),
            topic: format!("{topic_prefix}{}", event.topic()),
            key: event.key(),
            event_type: event.event_type().as_str().to_owned(),
            payload: String::from_utf8(event.to_vec()?)?,
        })
    }
}

/// Inserts `msg` in the caller's PostgreSQL transaction, with the current trace context.
pub async fn enqueue_pg(conn: &mut sqlx::PgConnection, msg: &OutboxMessage) -> sqlx::Result<()> {
    let span = glasshouse_telemetry::db::client_span("postgresql", "INSERT", "outbox", "");
    sqlx::query("INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, trace_carrier) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(msg.event_id)
        .bind(&msg.topic)
        .bind(&msg.key)
        .bind(&msg.event_type)
        .bind(&msg.payload)
        .bind(glasshouse_telemetry::propagation::current_carrier())
        .execute(conn)
        .instrument(span)
        .await?;
    Ok(())
}

/// Inserts `msg` in the caller's MySQL transaction, with the current trace context.
pub async fn enqueue_mysql(conn: &mut sqlx::MySqlConnection, msg: &OutboxMessage) -> sqlx::Result<()> {
    let span = glasshouse_telemetry::db::client_span("mysql", "INSERT", "outbox", "");
    sqlx::query("INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, trace_carrier) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(msg.event_id.to_string())
        .bind(&msg.topic)
        .bind(&msg.key)
        .bind(&msg.event_type)
        .bind(&msg.payload)
        .bind(glasshouse_telemetry::propagation::current_carrier())
        .execute(conn)
        .instrument(span)
        .await?;
    Ok(())
}

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

/// The database the relay reads from.
#[derive(Clone, Debug)]
pub enum OutboxDb {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

/// Relay tuning.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows claimed per batch.
    pub batch_size: i64,
    /// Pause between polls when there was nothing to send.
    pub idle_poll: Duration,
    /// Sent rows older than this are deleted.
    pub retain_sent: Duration,
    /// How long one publish may wait for the broker's acknowledgement.
    pub publish_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 200,
            idle_poll: Duration::from_millis(50),
            retain_sent: Duration::from_secs(3600),
            publish_timeout: Duration::from_secs(10),
        }
    }
}

/// Publishes outbox rows to Kafka until shutdown.
pub struct Relay {
    db: OutboxDb,
    producer: FutureProducer,
    metrics: StandardMetrics,
    config: RelayConfig,
}

const PG_CLAIM: &str = "SELECT id, event_id::text AS event_id, topic, partition_key, event_type, payload, trace_carrier \
    FROM outbox o WHERE sent_at IS NULL \
    AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.partition_key = o.partition_key AND p.sent_at IS NULL AND p.id < o.id) \
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";
const MYSQL_CLAIM: &str = "SELECT id, event_id, topic, partition_key, event_type, payload, trace_carrier \
    FROM outbox o WHERE sent_at IS NULL \
    AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.partition_key = o.partition_key AND p.sent_at IS NULL AND p.id < o.id) \
    ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";

impl Relay {
    pub fn new(db: OutboxDb, producer: FutureProducer, metrics: StandardMetrics, config: RelayConfig) -> Self {
        Self { db, producer, metrics, config }
    }

    /// Runs until `shutdown` turns true; the batch in flight is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut last_prune = std::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let sent = match self.relay_once().await {
                Ok(n) => {
                    failures = 0;
                    n
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), failures, "outbox relay batch failed; will retry");
                    0
                }
            };
            if let Err(e) = self.update_backlog_metrics().await {
                tracing::debug!(error = %e, "outbox backlog query failed");
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "outbox prune failed");
                }
            }
            // A full batch means more is waiting: go again at once.
            if sent as i64 >= self.config.batch_size && failures == 0 {
                continue;
            }
            let pause = if failures > 0 {
                crate::backoff::delay(failures, Duration::from_millis(100), Duration::from_secs(5))
            } else {
                self.config.idle_poll
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Claims, publishes and marks one batch; returns how many rows were sent.
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        match &self.db {
            OutboxDb::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(PG_CLAIM).bind(self.config.batch_size).fetch_all(&mut *tx).await?;
                let pending: Vec<Pending> = rows.iter().map(pending_from_pg).collect::<Result<_, _>>()?;
                if pending.is_empty() {
                    return Ok(0);
                }
                let sent = self.publish(&pending).await;
                if !sent.is_empty() {
                    sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)").bind(&sent).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(sent.len())
            }
            OutboxDb::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(MYSQL_CLAIM).bind(self.config.batch_size).fetch_all(&mut *tx).await?;
                let pending: Vec<Pending> = rows.iter().map(pending_from_mysql).collect::<Result<_, _>>()?;
                if pending.is_empty() {
                    return Ok(0);
                }
                let sent = self.publish(&pending).await;
                if !sent.is_empty() {
                    let placeholders = vec!["?"; sent.len()].join(",");
                    let sql = format!("UPDATE outbox SET sent_at = CURRENT_TIMESTAMP(6) WHERE id IN ({placeholders})");
                    let mut q = sqlx::query(&sql);
                    for id in &sent {
                        q = q.bind(id);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(sent.len())
            }
        }
    }

    /// Sends every row (all in flight at once; the idempotent producer keeps
    /// per-partition order) and returns the ids safe to mark sent: for each key,
    /// the rows before its first failure.
    async fn publish(&self, batch: &[Pending]) -> Vec<i64> {
        let batch_span = tracing::info_span!("outbox.relay", otel.name = "outbox relay batch", outbox.batch_size = batch.len());
        let sends = batch.iter().map(|row| {
            let parent = glasshouse_telemetry::propagation::from_carrier(row.trace_carrier.as_deref());
            let span = glasshouse_telemetry::kafka::producer_span(&row.topic, &row.key);
            // The publish continues the trace of the request that wrote the row.
            let _ = span.set_parent(parent.clone());
            // With tracing off the span has no context of its own: pass the stored one through.
            let cx = span.context();
            let cx = if cx.span().span_context().is_valid() { cx } else { parent };
            let headers = glasshouse_telemetry::propagation::inject_kafka(
                &cx,
                OwnedHeaders::new()
                    .insert(Header { key: "event_id", value: Some(row.event_id.as_str()) })
                    .insert(Header { key: "event_type", value: Some(row.event_type.as_str()) }),
            );
            let record = FutureRecord::to(&row.topic).key(&row.key).payload(&row.payload).headers(headers);
            let send = self.producer.send(record, self.config.publish_timeout);
            async move {
                let r = send.await;
                if let Err((e, _)) = &r {
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
        for (row, sent) in batch.iter().zip(results) {
            if sent && !failed_keys.contains(&row.key) {
                ok.push(row.id);
                self.metrics.inc_outbox_published(&row.topic, 1);
            } else {
                failed_keys.insert(row.key.clone());
            }
        }
        ok
    }

    async fn update_backlog_metrics(&self) -> anyhow::Result<()> {
        let (pending, oldest): (i64, Option<DateTime<Utc>>) = match &self.db {
            OutboxDb::Postgres(pool) => {
                let row = sqlx::query("SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE sent_at IS NULL")
                    .fetch_one(pool)
                    .await?;
                (row.try_get("n")?, row.try_get("oldest")?)
            }
            OutboxDb::MySql(pool) => {
                let row = sqlx::query("SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE sent_at IS NULL")
                    .fetch_one(pool)
                    .await?;
                (row.try_get("n")?, row.try_get("oldest")?)
            }
        };
        let age = oldest.map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(0.0);
        self.metrics.set_outbox(pending, age);
        Ok(())
    }

    async fn prune(&self) -> anyhow::Result<()> {
        let secs = self.config.retain_sent.as_secs() as i64;
        match &self.db {
            OutboxDb::Postgres(pool) => {
                sqlx::query("DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)").bind(secs as f64).execute(pool).await?;
            }
            OutboxDb::MySql(pool) => {
                sqlx::query("DELETE FROM outbox WHERE sent_at < CURRENT_TIMESTAMP(6) - INTERVAL ? SECOND").bind(secs).execute(pool).await?;
            }
        }
        Ok(())
    }
}

fn pending_from_pg(row: &sqlx::postgres::PgRow) -> sqlx::Result<Pending> {
    Ok(Pending {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        topic: row.try_get("topic")?,
        key: row.try_get("partition_key")?,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        trace_carrier: row.try_get("trace_carrier")?,
    })
}

fn pending_from_mysql(row: &sqlx::mysql::MySqlRow) -> sqlx::Result<Pending> {
    Ok(Pending {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        topic: row.try_get("topic")?,
        key: row.try_get("partition_key")?,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        trace_carrier: row.try_get("trace_carrier")?,
    })
}
