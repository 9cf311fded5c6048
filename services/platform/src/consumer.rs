//! The Kafka consumer loop every service uses.
//!
//! # At least once, effectively once
//! For each message, in partition order: a consumer span continuing the
//! producer's trace; the service's [`MessageHandler`] (which does its work and
//! records the event id in `processed_events` in ONE database transaction, see
//! [`mark_processed_pg`]); then the offset is stored, only after that
//! transaction committed. librdkafka's automatic offset store is off
//! (`enable.auto.offset.store=false`): an offset moves only when this loop
//! stores it for a message that is done, never because a message was merely
//! delivered. So a crash, a shutdown or a lost partition anywhere between
//! delivery and commit redelivers the message, and the dedupe row makes the
//! second delivery a no-op: effectively once.
//!
//! Stored offsets are committed in batches: librdkafka's auto-commit sends
//! the stored ones every [`ConsumerConfig::commit_interval`] (1 s), before a
//! partition is revoked, and the loop commits synchronously when it stops.
//! One commit request per interval instead of one per message (a broker round
//! trip each); what a crash can cost is a redelivery of the last interval's
//! messages, which the dedupe rows absorb.
//!
//! # Failures
//! A [`HandleError::Permanent`] one (malformed event, contract violation)
//! goes to `<topic>.dlq` untouched, with the error in its headers, and then
//! its offset is committed. Nothing is dropped: the dead-letter topic keeps
//! it (14 days by default, see [`ensure_topics_with`]) for a replay.
//!
//! A [`HandleError::Transient`] one (database away, deadlock, statement
//! killed; [`crate::errors`] decides) is retried in place, with jittered
//! backoff capped at `retry_cap`, for as long as it takes. It is never
//! dead-lettered: the message is fine, and a database outage must not turn
//! every event consumed during it into a dead letter. While it is retried:
//! - Every assigned partition is paused and the loop keeps polling the
//!   consumer. Polling tells librdkafka the application is alive (so
//!   `max.poll.interval.ms` never expires and the member is not evicted) and
//!   serves rebalances; being paused, the partitions deliver nothing, so the
//!   messages behind the one in hand wait in Kafka, in order. Pausing sets each
//!   partition's fetch position back to just after the last message handed to
//!   this loop, and the loop asks for the next message only when the previous
//!   one is done, so resuming afterwards skips nothing and repeats nothing.
//! - The offset stays put. If a rebalance revokes the message's partition,
//!   the message is given up uncommitted: the partition's next owner (maybe
//!   this consumer again) starts at the committed offset, so it redelivers the
//!   message; an attempt of ours whose commit raced the revocation is
//!   deduplicated there.
//! - A shutdown gives the message up at once (an attempt in flight is dropped,
//!   which rolls its transaction back), uncommitted, for the next owner.
//! - `messaging_consumer_retry_seconds{topic}` reports how long it has been
//!   retried; the `ConsumerStuck` alert fires when that is too long.
//!
//! An attempt itself is not interrupted by polling: each must end well within
//! `max.poll.interval.ms` (5 min), which the databases' own timeouts ensure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glasshouse_contracts::{Event, EventType};
use glasshouse_telemetry::metrics::{ConsumeOutcome, StandardMetrics};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{Notify, watch};
use tracing::Instrument;
use uuid::Uuid;

/// What the loop hands a handler.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The logical topic (`orders.v1`): the loop has taken
    /// [`ConsumerConfig::topic_prefix`] off the Kafka topic's name.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

impl InboundMessage {
    /// The head every handler starts with: the contract event this message
    /// carries, its id recorded on the consumer span (`messaging.message.id`).
    /// A payload that is not a valid event (the parse error names the bad
    /// field), or an event type not in `consumes`, is a
    /// [`HandleError::Permanent`]: `consumer` (its name in `processed_events`)
    /// will never handle it.
    pub fn event(&self, consumer: &str, consumes: &[EventType]) -> Result<Event, HandleError> {
        let event = Event::from_slice(&self.payload).map_err(|e| HandleError::Permanent(anyhow::anyhow!("not an event: {e}")))?;
        tracing::Span::current().record("messaging.message.id", event.id().to_string().as_str());
        let event_type = event.event_type();
        if !consumes.contains(&event_type) {
            return Err(HandleError::Permanent(anyhow::anyhow!("{consumer} does not consume {event_type} (on {})", self.topic)));
        }
        Ok(event)
    }
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
    /// Worth retrying: the same message may succeed later. Retried until it
    /// does; never dead-lettered.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Will never succeed (malformed, unknown type, violates the contract):
    /// dead-lettered.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl HandleError {
    /// Classifies a SQL database error with [`crate::errors::is_transient_sqlx`].
    pub fn from_sqlx(e: sqlx::Error) -> Self {
        if crate::errors::is_transient_sqlx(&e) { Self::Transient(e.into()) } else { Self::Permanent(e.into()) }
    }

    /// Classifies a MongoDB error with [`crate::errors::is_transient_mongo`].
    pub fn from_mongo(e: mongodb::error::Error) -> Self {
        if crate::errors::is_transient_mongo(&e) { Self::Transient(e.into()) } else { Self::Permanent(e.into()) }
    }
}

/// A service's work for one message.
///
/// The loop may call `handle` again for the same message (a retry, a
/// redelivery) and may drop a retry attempt's future at an `.await` when the
/// service shuts down: do the work in ONE transaction together with the dedupe
/// row, so a repeat is a [`Handled::Duplicate`] and a dropped attempt leaves
/// nothing behind.
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

/// Begins the handler's PostgreSQL transaction and records `event_id` as
/// processed by `consumer` in it ([`mark_processed_pg`]); `None` when it
/// already was (a duplicate: do nothing else, see [`Handled::Duplicate`]).
pub async fn begin_once_pg(
    pool: &sqlx::PgPool,
    consumer: &str,
    event_id: Uuid,
) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, HandleError> {
    let mut tx = pool.begin().await.map_err(HandleError::from_sqlx)?;
    let new = mark_processed_pg(&mut tx, consumer, event_id).await.map_err(HandleError::from_sqlx)?;
    Ok(new.then_some(tx))
}

/// MySQL flavour of [`begin_once_pg`].
pub async fn begin_once_mysql(
    pool: &sqlx::MySqlPool,
    consumer: &str,
    event_id: Uuid,
) -> Result<Option<sqlx::Transaction<'static, sqlx::MySql>>, HandleError> {
    let mut tx = pool.begin().await.map_err(HandleError::from_sqlx)?;
    let new = mark_processed_mysql(&mut tx, consumer, event_id).await.map_err(HandleError::from_sqlx)?;
    Ok(new.then_some(tx))
}

/// Consumer tuning.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: String,
    pub group_id: String,
    /// Logical topic names (`orders.v1`); the loop subscribes to them under `topic_prefix`.
    pub topics: Vec<String>,
    /// Put in front of every topic name (`KafkaSettings::topic_prefix`), so
    /// parallel test runs can share a broker; handlers never see it. The
    /// dead-letter topic is named after the Kafka topic, prefix included
    /// (`<prefix><topic>.dlq`). Empty by default.
    pub topic_prefix: String,
    /// First backoff of a transiently failing message; doubles per attempt
    /// (full jitter, see [`crate::backoff`]).
    pub retry_base: Duration,
    /// Longest backoff between two attempts at one message. There is no limit
    /// on the number of attempts.
    pub retry_cap: Duration,
    /// How often `messaging_consumer_lag` is refreshed.
    pub lag_interval: Duration,
    /// librdkafka's `max.poll.interval.ms`: the longest the loop may go
    /// without polling before the group evicts it. The loop polls between
    /// messages and throughout a retry's backoff, so only one handler attempt
    /// must fit in it. At least `session.timeout.ms` (10 s). Default 5 min.
    pub max_poll_interval: Duration,
    /// How often the stored offsets are committed (librdkafka's
    /// `auto.commit.interval.ms`; module doc, "batches"). Default 1 s.
    pub commit_interval: Duration,
}

impl ConsumerConfig {
    pub fn new(brokers: &str, group_id: &str, topics: &[&str]) -> Self {
        Self {
            brokers: brokers.to_owned(),
            group_id: group_id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            topic_prefix: String::new(),
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_secs(30),
            lag_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(300),
            commit_interval: Duration::from_secs(1),
        }
    }
}

impl ConsumerConfig {
    /// The Kafka topics the loop subscribes to: `topics` under `topic_prefix`.
    pub fn kafka_topics(&self) -> Vec<String> {
        self.topics.iter().map(|t| format!("{}{t}", self.topic_prefix)).collect()
    }

    /// The logical name of the Kafka topic `kafka_topic` (the prefix taken off).
    pub fn logical_topic<'a>(&self, kafka_topic: &'a str) -> &'a str {
        kafka_topic.strip_prefix(self.topic_prefix.as_str()).unwrap_or(kafka_topic)
    }
}

/// The dead-letter topic of `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// How long a dead-letter topic keeps a message unless configured otherwise:
/// long enough to get the `DeadLetterQueueReceiving` ticket, fix the cause and
/// replay, without keeping poison forever.
pub const DEFAULT_DLQ_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// [`ensure_topics_with`] with [`DEFAULT_DLQ_RETENTION`].
pub async fn ensure_topics(brokers: &str, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
    ensure_topics_with(brokers, topics, partitions, DEFAULT_DLQ_RETENTION).await
}

/// Creates `topics` (and their dead-letter topics) if missing; the broker does
/// not auto-create topics, so each service ensures what it uses at start-up.
///
/// Dead-letter topics get an explicit `retention.ms` of `dlq_retention`, so
/// how long a dead letter survives is a decision of ours, not the broker's
/// `log.retention.hours` (7 days by default, 24 h on the local stack). Topics
/// that already exist are left as they are: change their retention with
/// `kafka-configs.sh --alter --add-config retention.ms=...`.
pub async fn ensure_topics_with(brokers: &str, topics: &[&str], partitions: i32, dlq_retention: Duration) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let retention_ms = dlq_retention.as_millis().to_string();
    let dlqs: Vec<String> = topics.iter().map(|t| dlq_topic(t)).collect();
    let mut new: Vec<NewTopic> = topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
    new.extend(dlqs.iter().map(|d| NewTopic::new(d, partitions, TopicReplication::Fixed(1)).set("retention.ms", &retention_ms)));
    for result in admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

/// The consumer's rebalance hook: remembers which partitions were revoked,
/// so a message being retried can tell whether it is still ours.
///
/// Rebalances are served on the polling task (inside `recv`), so the hook
/// runs on the same task as the loop; the mutex only satisfies `Sync`.
#[derive(Default)]
struct GroupContext {
    revoked: Mutex<Vec<(String, i32)>>,
    /// Woken on every revocation, so a retry notices at once.
    revocation: Notify,
}

impl GroupContext {
    /// Forgets what was revoked so far (a new message is in hand).
    fn forget_revocations(&self) {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Whether `topic`/`partition` was revoked since [`Self::forget_revocations`].
    fn was_revoked(&self, topic: &str, partition: i32) -> bool {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(t, p)| t == topic && *p == partition)
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            revoked.extend(tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())));
            self.revocation.notify_one();
        }
    }
}

/// What became of a message whose first attempt failed transiently.
enum Retried {
    /// Handled, or dead-lettered after a permanent error: commit its offset.
    Settled(ConsumeOutcome),
    /// Revoked or shut down: left uncommitted for the partition's next owner.
    GivenUp,
}

/// What the loop carries from one message to the next.
struct Polling {
    shutdown: watch::Receiver<bool>,
    /// A message that arrived while another one was retried, handled next.
    next: Option<OwnedMessage>,
    /// When `messaging_consumer_lag` was last refreshed.
    last_lag: Instant,
}

/// Runs a handler over a consumer group until shutdown.
pub struct ConsumerLoop {
    consumer: Arc<StreamConsumer<GroupContext>>,
    dlq: FutureProducer,
    handler: Arc<dyn MessageHandler>,
    metrics: StandardMetrics,
    config: ConsumerConfig,
}

impl ConsumerLoop {
    pub fn new(config: ConsumerConfig, handler: Arc<dyn MessageHandler>, metrics: StandardMetrics) -> anyhow::Result<Self> {
        let consumer: StreamConsumer<GroupContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            // Commits only what `store` stored, in batches (module doc).
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", config.commit_interval.as_millis().to_string())
            // Offsets are stored by `store` for finished messages only (module doc).
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("max.poll.interval.ms", config.max_poll_interval.as_millis().to_string())
            .create_with_context(GroupContext::default())?;
        let topics = config.kafka_topics();
        consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
        let dlq: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self { consumer: Arc::new(consumer), dlq, handler, metrics, config })
    }

    /// Consumes until `shutdown` turns true. A message whose attempt is under
    /// way when it does is finished and committed first; one being retried is
    /// given up uncommitted (module doc).
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        for topic in &self.config.kafka_topics() {
            self.metrics.set_consumer_retry_seconds(topic, 0.0);
        }
        let mut polling = Polling { shutdown, next: None, last_lag: Instant::now() };
        loop {
            if *polling.shutdown.borrow() {
                break;
            }
            let msg = match polling.next.take() {
                Some(msg) => msg,
                None => tokio::select! {
                    m = self.consumer.recv() => match m {
                        Ok(m) => m.detach(),
                        Err(e) => {
                            tracing::warn!(error = %e, "kafka receive error");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                    _ = signalled(&mut polling.shutdown) => break,
                    _ = tokio::time::sleep(self.config.lag_interval) => { self.refresh_lag(&mut polling).await; continue; }
                },
            };
            // Revocations served before this message arrived were about earlier ones.
            self.consumer.context().forget_revocations();
            if self.process(&msg, &mut polling).await {
                self.store(&msg);
            }
            if polling.last_lag.elapsed() >= self.config.lag_interval {
                self.refresh_lag(&mut polling).await;
            }
        }
        // Leave with every finished offset committed, so the next owner of
        // these partitions starts where this one stopped. Only finished
        // messages' offsets were stored, so this never skips one.
        let consumer = self.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
        if let Ok(Err(e)) = committed {
            tracing::debug!(error = %e, "final offset commit (nothing to commit is fine)");
        }
        Ok(())
    }

    /// Stores the offset after `msg` for the next batched commit: it is done
    /// (effects committed, or on the dead-letter topic). A partition revoked
    /// meanwhile refuses the store, and its next owner redelivers (deduplicated).
    fn store(&self, msg: &OwnedMessage) {
        let mut tpl = TopicPartitionList::new();
        if let Err(e) = tpl.add_partition_offset(msg.topic(), msg.partition(), Offset::Offset(msg.offset() + 1)) {
            tracing::warn!(error = %e, "offset not committed; the message may be redelivered (deduplicated)");
            return;
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::info!(error = %e, "offset not stored (partition no longer assigned); the next owner redelivers (deduplicated)");
        }
    }

    /// Handles one message; true when it is done and its offset may be committed.
    async fn process(&self, msg: &OwnedMessage, polling: &mut Polling) -> bool {
        let inbound = InboundMessage {
            topic: self.config.logical_topic(msg.topic()).to_owned(),
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
            let outcome = match self.handler.handle(&inbound).await {
                Err(HandleError::Transient(e)) => match self.retry(msg, &inbound, e, start, polling).await {
                    Retried::Settled(outcome) => outcome,
                    Retried::GivenUp => return false,
                },
                settled => self.settle(msg, settled, 1).await,
            };
            self.metrics.observe_consume(msg.topic(), outcome, start.elapsed().as_secs_f64());
            true
        }
        .instrument(span)
        .await
    }

    /// Finishes a message whose attempt number `attempt` did not fail transiently.
    async fn settle(&self, msg: &OwnedMessage, result: Result<Handled, HandleError>, attempt: u32) -> ConsumeOutcome {
        match result {
            Ok(Handled::Processed) => ConsumeOutcome::success,
            Ok(Handled::Duplicate) => {
                tracing::info!("duplicate event skipped");
                ConsumeOutcome::duplicate
            }
            Err(e) => {
                tracing::error!(error = %e, attempt, "message sent to the dead-letter topic");
                tracing::Span::current().record("otel.status_code", "ERROR");
                self.dead_letter(msg, &e.to_string()).await;
                ConsumeOutcome::dead_letter
            }
        }
    }

    /// Retries `msg` after its first attempt failed transiently with `error`,
    /// with every assigned partition paused, until it settles, its partition
    /// is revoked, or shutdown (module doc).
    async fn retry(
        &self,
        msg: &OwnedMessage,
        inbound: &InboundMessage,
        error: anyhow::Error,
        start: Instant,
        polling: &mut Polling,
    ) -> Retried {
        let mut paused = match self.consumer.assignment() {
            Ok(assigned) => assigned,
            Err(e) => {
                tracing::warn!(error = %e, "no assignment to pause; stray messages will be rewound");
                TopicPartitionList::new()
            }
        };
        if let Err(e) = self.consumer.pause(&paused) {
            tracing::warn!(error = %e, "pausing the assigned partitions failed; stray messages will be rewound");
        }
        let retried = self.retry_paused(msg, inbound, error, start, polling, &mut paused).await;
        // Fetching restarts after the last message handed to this loop (or,
        // for a partition revoked and assigned again, at its committed offset).
        if let Err(e) = self.consumer.resume(&paused) {
            tracing::warn!(error = %e, "resuming the paused partitions failed");
        }
        self.metrics.set_consumer_retry_seconds(msg.topic(), 0.0);
        retried
    }

    /// The retry loop proper; `paused` grows if a stray message is rewound.
    async fn retry_paused(
        &self,
        msg: &OwnedMessage,
        inbound: &InboundMessage,
        mut error: anyhow::Error,
        start: Instant,
        polling: &mut Polling,
        paused: &mut TopicPartitionList,
    ) -> Retried {
        let context = self.consumer.context().clone();
        // Metrics and revocations speak of the Kafka topic, prefix included.
        let (topic, partition) = (msg.topic(), inbound.partition);
        let mut attempt = 1u32;
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let pause = crate::backoff::delay(attempt, self.config.retry_base, self.config.retry_cap);
            let retrying = start.elapsed();
            tracing::warn!(error = %format!("{error:#}"), attempt, ?pause, retrying_s = retrying.as_secs_f64(), "transient failure; retrying");
            self.metrics.observe_consume(topic, ConsumeOutcome::retry, retrying.as_secs_f64());
            self.metrics.set_consumer_retry_seconds(topic, retrying.as_secs_f64());

            // Wait out the backoff polling the consumer: heartbeat of the
            // application, rebalances served, nothing delivered (paused).
            let backoff = tokio::time::sleep(pause);
            tokio::pin!(backoff);
            loop {
                tokio::select! {
                    _ = &mut backoff => break,
                    _ = signalled(&mut polling.shutdown) => {
                        tracing::info!(attempt, "shutdown while retrying; the message is left uncommitted for the next owner");
                        return Retried::GivenUp;
                    }
                    _ = context.revocation.notified() => {}
                    _ = ticks.tick() => {
                        self.metrics.set_consumer_retry_seconds(topic, start.elapsed().as_secs_f64());
                        if polling.last_lag.elapsed() >= self.config.lag_interval {
                            self.refresh_lag(polling).await;
                        }
                    }
                    m = self.consumer.recv() => match m {
                        Ok(m) => {
                            let stray = m.detach();
                            if context.was_revoked(topic, partition) {
                                // A new assignment started delivering; the message
                                // in hand is no longer ours. Handle this one next.
                                polling.next = Some(stray);
                            } else {
                                self.rewind(&stray, paused);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "kafka receive error while retrying"),
                    },
                }
                if context.was_revoked(topic, partition) {
                    tracing::info!(attempt, "partition revoked while retrying; its next owner redelivers the message");
                    return Retried::GivenUp;
                }
            }

            attempt += 1;
            let result = tokio::select! {
                r = self.handler.handle(inbound) => r,
                _ = signalled(&mut polling.shutdown) => {
                    tracing::info!(attempt, "shutdown during a retry; the attempt is dropped and the message left uncommitted");
                    return Retried::GivenUp;
                }
            };
            match result {
                Err(HandleError::Transient(e)) => error = e,
                settled => {
                    if settled.is_ok() {
                        tracing::info!(attempt, retried_s = start.elapsed().as_secs_f64(), "handled after retries");
                    }
                    return Retried::Settled(self.settle(msg, settled, attempt).await);
                }
            }
        }
    }

    /// A message arrived from a partition that is not paused (assigned while
    /// another message is retried, under an incremental rebalance): pause its
    /// partition too and seek back to it, so it is delivered again, in order,
    /// after the retry.
    fn rewind(&self, stray: &OwnedMessage, paused: &mut TopicPartitionList) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(stray.topic(), stray.partition());
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(error = %e, "pausing a newly assigned partition failed");
        }
        // Zero timeout: queue the seek, do not wait for it (it follows the pause in order).
        if let Err(e) = self.consumer.seek(stray.topic(), stray.partition(), Offset::Offset(stray.offset()), Duration::ZERO) {
            tracing::warn!(error = %e, topic = stray.topic(), partition = stray.partition(), "seek back failed");
        }
        paused.add_partition(stray.topic(), stray.partition());
    }

    /// Writes the message, untouched, with the error in its headers, to
    /// `<topic>.dlq`; retried until the broker takes it, so it is never lost.
    async fn dead_letter(&self, msg: &OwnedMessage, error: &str) {
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
    async fn refresh_lag(&self, polling: &mut Polling) {
        polling.last_lag = Instant::now();
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

/// Resolves once shutdown is signalled (a dropped sender counts as one).
async fn signalled(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn header(msg: &OwnedMessage, key: &str) -> Option<String> {
    msg.headers()?.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribes_under_the_prefix_and_hands_out_logical_topics() {
        let mut c = ConsumerConfig::new("b", "g", &["orders.v1"]);
        assert_eq!(c.kafka_topics(), ["orders.v1"]);
        assert_eq!(c.logical_topic("orders.v1"), "orders.v1");
        c.topic_prefix = "e2e_1.".into();
        assert_eq!(c.kafka_topics(), ["e2e_1.orders.v1"]);
        assert_eq!(c.logical_topic("e2e_1.orders.v1"), "orders.v1");
        assert_eq!(dlq_topic("e2e_1.orders.v1"), "e2e_1.orders.v1.dlq", "dead letters keep the Kafka topic's name");
    }
}
