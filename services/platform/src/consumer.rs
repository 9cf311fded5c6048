//! The Kafka consumer loop every service uses.
//!
//! For each message, in partition order: a consumer span continuing the
//! producer's trace; the service's [`MessageHandler`] (which does its work and
//! records the event id in `processed_events` in ONE database transaction, see
//! [`mark_processed_pg`]); then the offset is committed, only after that
//! transaction committed. So a crash between the two redelivers the message,
//! and the dedupe row makes the second delivery a no-op: effectively once.
//!
//! Failures: a [`HandleError::Transient`] one (database away, deadlock) is
//! retried in place with jittered backoff, up to `max_attempts`; a
//! [`HandleError::Permanent`] one (malformed event) or a transient one that
//! outlived its attempts goes to `<topic>.dlq` with the error in its headers,
//! and the offset moves on. Nothing is dropped: the dead-letter topic keeps it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glasshouse_telemetry::metrics::{ConsumeOutcome, StandardMetrics};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

/// What the loop hands a handler.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

/// How a handler dealt with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its effects were committed now.
    Processed,
    /// Its event id was already in `processed_events`: nothing was done again.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth retrying: the same message may succeed later.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Will never succeed (malformed, unknown type, violates the contract).
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl HandleError {
    /// Classifies a database error: connection trouble, pool exhaustion,
    /// deadlocks, serialization failures and lock timeouts are transient.
    pub fn from_sqlx(e: sqlx::Error) -> Self {
        if is_transient_sqlx(&e) { Self::Transient(e.into()) } else { Self::Permanent(e.into()) }
    }
}

/// True for database errors that a retry may cure.
pub fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL SQLSTATE: serialization failure, deadlock, connection classes, admin shutdown.
            // MySQL error numbers: 1213 deadlock, 1205 lock wait timeout, 2006/2013 server gone.
            code == "40001"
                || code == "40P01"
                || code.starts_with("08")
                || code == "57P01"
                || ["1213", "1205", "2006", "2013"].contains(&code.as_str())
                || (db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|m| [1213, 1205, 2006, 2013].contains(&m.number())))
        }
        _ => false,
    }
}

#[async_trait::async_trait]
pub trait MessageHandler: Send + Sync {
    async fn handle(&self, msg: &InboundMessage) -> Result<Handled, HandleError>;
}

/// Records `event_id` as processed by `consumer` in the caller's PostgreSQL
/// transaction; false if it already was (then do nothing else).
pub async fn mark_processed_pg(conn: &mut sqlx::PgConnection, consumer: &str, event_id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(consumer)
        .bind(event_id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// MySQL flavour of [`mark_processed_pg`].
pub async fn mark_processed_mysql(conn: &mut sqlx::MySqlConnection, consumer: &str, event_id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query("INSERT IGNORE INTO processed_events (consumer, event_id) VALUES (?, ?)")
        .bind(consumer)
        .bind(event_id.to_string())
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Consumer tuning.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    /// Attempts for a transiently failing message before it is dead-lettered.
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often `messaging_consumer_lag` is refreshed.
    pub lag_interval: Duration,
}

impl ConsumerConfig {
    pub fn new(brokers: &str, group_id: &str, topics: &[&str]) -> Self {
        Self {
            brokers: brokers.to_owned(),
            group_id: group_id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            max_attempts: 8,
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_secs(5),
            lag_interval: Duration::from_secs(5),
        }
    }
}

/// The dead-letter topic of `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Creates `topics` (and their dead-letter topics) if missing; the broker does
/// not auto-create topics, so each service ensures what it uses at start-up.
pub async fn ensure_topics(brokers: &str, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let names: Vec<String> = topics.iter().flat_map(|t| [(*t).to_owned(), dlq_topic(t)]).collect();
    let new: Vec<NewTopic> = names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    for result in admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

/// Runs a handler over a consumer group until shutdown.
pub struct ConsumerLoop {
    consumer: Arc<StreamConsumer>,
    dlq: FutureProducer,
    handler: Arc<dyn MessageHandler>,
    metrics: StandardMetrics,
    config: ConsumerConfig,
}

impl ConsumerLoop {
    pub fn new(config: ConsumerConfig, handler: Arc<dyn MessageHandler>, metrics: StandardMetrics) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .create()?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let dlq: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self { consumer: Arc::new(consumer), dlq, handler, metrics, config })
    }

    /// Consumes until `shutdown` turns true. The message in hand is finished
    /// and its offset committed before returning.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut last_lag = Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let msg = tokio::select! {
                m = self.consumer.recv() => m,
                _ = shutdown.changed() => continue,
                _ = tokio::time::sleep(self.config.lag_interval) => { self.refresh_lag().await; last_lag = Instant::now(); continue; }
            };
            match msg {
                Ok(msg) => {
                    self.process(&msg).await;
                    // Only after the handler's transaction (or the DLQ write) is done.
                    // Async: a lost commit only means a redelivery, which dedupe absorbs.
                    if let Err(e) = self.consumer.commit_message(&msg, CommitMode::Async) {
                        tracing::warn!(error = %e, "offset commit failed; the message may be redelivered (deduplicated)");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka receive error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            if last_lag.elapsed() >= self.config.lag_interval {
                self.refresh_lag().await;
                last_lag = Instant::now();
            }
        }
        // Leave with every processed offset committed, so the next owner of
        // these partitions starts where this one stopped.
        let consumer = self.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
        if let Ok(Err(e)) = committed {
            tracing::debug!(error = %e, "final offset commit (nothing to commit is fine)");
        }
        Ok(())
    }

    async fn process(&self, msg: &BorrowedMessage<'_>) {
        let inbound = InboundMessage {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: msg.payload().unwrap_or_default().to_vec(),
        };
        let span = glasshouse_telemetry::kafka::consumer_span(msg.topic(), msg.partition(), msg.offset(), msg.headers());
        if let Some(id) = header(msg, "event_id") {
            span.record("messaging.message.id", id.as_str());
        }
        async {
            let start = Instant::now();
            let mut attempt = 0u32;
            let outcome = loop {
                attempt += 1;
                match self.handler.handle(&inbound).await {
                    Ok(Handled::Processed) => break ConsumeOutcome::success,
                    Ok(Handled::Duplicate) => {
                        tracing::info!("duplicate event skipped");
                        break ConsumeOutcome::duplicate;
                    }
                    Err(HandleError::Transient(e)) if attempt < self.config.max_attempts => {
                        let pause = crate::backoff::delay(attempt, self.config.retry_base, self.config.retry_cap);
                        tracing::warn!(error = %format!("{e:#}"), attempt, ?pause, "transient failure; retrying");
                        self.metrics.observe_consume(&inbound.topic, ConsumeOutcome::retry, start.elapsed().as_secs_f64());
                        tokio::time::sleep(pause).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, attempt, "message sent to the dead-letter topic");
                        tracing::Span::current().record("otel.status_code", "ERROR");
                        self.dead_letter(msg, &e.to_string()).await;
                        break ConsumeOutcome::dead_letter;
                    }
                }
            };
            self.metrics.observe_consume(&inbound.topic, outcome, start.elapsed().as_secs_f64());
        }
        .instrument(span)
        .await
    }

    /// Writes the message, untouched, with the error in its headers, to
    /// `<topic>.dlq`; retried until the broker takes it, so it is never lost.
    async fn dead_letter(&self, msg: &BorrowedMessage<'_>, error: &str) {
        let topic = dlq_topic(msg.topic());
        let mut headers = OwnedHeaders::new();
        if let Some(h) = msg.headers() {
            for h in h.iter() {
                headers = headers.insert(Header { key: h.key, value: h.value });
            }
        }
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let headers = headers
            .insert(Header { key: "dlq.error", value: Some(error) })
            .insert(Header { key: "dlq.topic", value: Some(msg.topic()) })
            .insert(Header { key: "dlq.partition", value: Some(partition.as_str()) })
            .insert(Header { key: "dlq.offset", value: Some(offset.as_str()) });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut record = FutureRecord::to(&topic).headers(headers.clone());
            if let Some(k) = msg.key() {
                record = record.key(k);
            }
            if let Some(p) = msg.payload() {
                record = record.payload(p);
            }
            match self.dlq.send(record, Duration::from_secs(30)).await {
                Ok(_) => {
                    self.metrics.inc_dead_letter(msg.topic());
                    return;
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, attempt, "dead-letter publish failed; retrying");
                    tokio::time::sleep(crate::backoff::delay(attempt, Duration::from_millis(200), Duration::from_secs(5))).await;
                }
            }
        }
    }

    /// High watermark minus the committed offset, for each assigned partition.
    async fn refresh_lag(&self) {
        let consumer = self.consumer.clone();
        let metrics = self.metrics.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(assignment) = consumer.assignment() else { return };
            let Ok(committed) = consumer.committed_offsets(assignment, Duration::from_secs(2)) else { return };
            for tp in committed.elements() {
                let Ok((_, high)) = consumer.fetch_watermarks(tp.topic(), tp.partition(), Duration::from_secs(2)) else { continue };
                let done = tp.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
                metrics.set_consumer_lag(tp.topic(), tp.partition(), (high - done).max(0));
            }
        })
        .await;
    }
}

fn header(msg: &BorrowedMessage<'_>, key: &str) -> Option<String> {
    msg.headers()?.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}
