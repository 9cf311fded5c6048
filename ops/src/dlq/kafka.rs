//! The broker side of dead-letter handling, blocking (librdkafka's own
//! threads do the I/O; callers in async code use `spawn_blocking`).
//!
//! Reading never joins a consumer group: partitions are assigned by hand
//! (`assign`), so reading a dead-letter topic moves nothing. Only
//! [`Broker::commit`] writes, and only the redrive record of
//! [`REDRIVE_GROUP`] (see [`super::progress`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{TimeZone as _, Utc};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header as KafkaHeader, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::progress::{Progress, REDRIVE_GROUP};
use super::{DeadLetter, Header, Republish};

/// How long one broker request (metadata, watermarks, commit) may take, and
/// how long a read may go without receiving anything before giving up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One partition of a dead-letter topic: what it keeps and what was redriven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// Oldest kept offset.
    pub low: i64,
    /// Next offset to be written (one past the newest message).
    pub high: i64,
    pub progress: Progress,
}

impl PartitionState {
    /// Messages kept.
    pub fn kept(&self) -> i64 {
        (self.high - self.low).max(0)
    }

    /// Messages kept and not redriven yet.
    pub fn pending(&self) -> i64 {
        self.progress.pending(self.low, self.high)
    }
}

/// A dead-letter topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub topic: String,
    pub partitions: Vec<PartitionState>,
}

impl TopicState {
    pub fn kept(&self) -> i64 {
        self.partitions.iter().map(PartitionState::kept).sum()
    }

    pub fn pending(&self) -> i64 {
        self.partitions.iter().map(PartitionState::pending).sum()
    }

    pub fn partition(&self, p: i32) -> Option<&PartitionState> {
        self.partitions.iter().find(|s| s.partition == p)
    }
}

/// Where a republished message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// A connection to the brokers for reading, committing redrive progress and
/// republishing.
pub struct Broker {
    brokers: String,
    consumer: BaseConsumer,
    producer: Option<FutureProducer>,
}

impl Broker {
    /// Clients for `brokers` (`host:port[,host:port...]`). Connects lazily:
    /// the first request tells whether the brokers are reachable.
    pub fn connect(brokers: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // Needed to read and commit the redrive record; never subscribes.
            .set("group.id", REDRIVE_GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A requested offset already deleted by retention reads from the oldest kept.
            .set("auto.offset.reset", "earliest")
            // Tells when a partition has been read to its end.
            .set("enable.partition.eof", "true")
            .create()
            .context("create the Kafka consumer")?;
        Ok(Self { brokers: brokers.to_owned(), consumer, producer: None })
    }

    /// The brokers this talks to.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The partitions of `topic`, or `None` if the topic does not exist.
    /// Fails when the brokers cannot be reached.
    pub fn partitions(&self, topic: &str) -> anyhow::Result<Option<Vec<i32>>> {
        let md = self
            .consumer
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .with_context(|| format!("cannot reach Kafka at {} (metadata of {topic})", self.brokers))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
        match t.error() {
            None => {}
            Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => return Ok(None),
            Some(e) => anyhow::bail!("metadata of {topic}: {}", RDKafkaErrorCode::from(e)),
        }
        let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ps.sort_unstable();
        Ok(if ps.is_empty() { None } else { Some(ps) })
    }

    /// Every partition of `topic` with its watermarks and redrive progress;
    /// `None` if the topic does not exist.
    pub fn state(&self, topic: &str) -> anyhow::Result<Option<TopicState>> {
        let Some(partitions) = self.partitions(topic)? else { return Ok(None) };
        let mut marks = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            let (low, high) = self
                .consumer
                .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                .with_context(|| format!("watermarks of {topic} partition {p}"))?;
            marks.insert(p, (low, high));
            tpl.add_partition(topic, p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .with_context(|| format!("committed offsets of group {REDRIVE_GROUP} on {topic}"))?;
        let mut states = Vec::with_capacity(partitions.len());
        for e in committed.elements() {
            let p = e.partition();
            let (low, high) = marks.get(&p).copied().unwrap_or((0, 0));
            let at = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            let progress = Progress::from_commit(at, e.metadata(), low).with_context(|| format!("{topic} partition {p}"))?;
            states.push(PartitionState { partition: p, low, high, progress });
        }
        states.sort_by_key(|s| s.partition);
        Ok(Some(TopicState { topic: topic.to_owned(), partitions: states }))
    }

    /// The messages of `topic` in `[from, to)` of each `(partition, from, to)`,
    /// in offset order per partition. Offsets deleted by retention are
    /// simply absent.
    pub fn read(&self, topic: &str, ranges: &[(i32, i64, i64)]) -> anyhow::Result<Vec<DeadLetter>> {
        let mut open: BTreeMap<i32, i64> = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for &(p, from, to) in ranges.iter().filter(|(_, from, to)| from < to) {
            tpl.add_partition_offset(topic, p, Offset::Offset(from)).with_context(|| format!("{topic} partition {p}"))?;
            open.insert(p, to);
        }
        if open.is_empty() {
            return Ok(Vec::new());
        }
        self.consumer.assign(&tpl).with_context(|| format!("assign {topic}"))?;
        let result = self.drain(topic, &mut open);
        let _ = self.consumer.unassign();
        let mut out = result?;
        out.sort_by_key(|l| (l.partition, l.offset));
        Ok(out)
    }

    fn drain(&self, topic: &str, open: &mut BTreeMap<i32, i64>) -> anyhow::Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        let mut deadline = Instant::now() + REQUEST_TIMEOUT;
        while !open.is_empty() {
            if Instant::now() > deadline {
                anyhow::bail!("reading {topic} from {} stalled: partitions {:?} not read to their end", self.brokers, open.keys());
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => return Err(anyhow::Error::new(e).context(format!("read {topic}"))),
                Some(Ok(m)) => {
                    deadline = Instant::now() + REQUEST_TIMEOUT;
                    let p = m.partition();
                    if let Some(&to) = open.get(&p) {
                        if m.offset() < to {
                            out.push(dead_letter(&m));
                        }
                        if m.offset() + 1 >= to {
                            open.remove(&p);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Stores `progress` as the redrive record of `topic`/`partition`
    /// (a synchronous commit: it is on the broker when this returns).
    pub fn commit(&self, topic: &str, partition: i32, progress: &Progress) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(progress.watermark()))?;
        let metadata = progress.metadata();
        if !metadata.is_empty()
            && let Some(mut e) = tpl.find_partition(topic, partition)
        {
            e.set_metadata(metadata);
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .with_context(|| format!("record redrive progress of {topic} partition {partition} (group {REDRIVE_GROUP})"))
    }

    /// Sends `msg` and waits for the broker's acknowledgement. The producer is
    /// idempotent with `acks=all`: librdkafka's own retries never write it twice.
    pub fn publish(&mut self, msg: &Republish) -> anyhow::Result<Delivered> {
        if self.producer.is_none() {
            let p: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("message.timeout.ms", "30000")
                .create()
                .context("create the Kafka producer")?;
            self.producer = Some(p);
        }
        let Some(producer) = self.producer.as_ref() else { anyhow::bail!("no producer") };
        let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len());
        for h in &msg.headers {
            headers = headers.insert(KafkaHeader { key: &h.key, value: h.value.as_deref() });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&msg.topic).headers(headers);
        if let Some(k) = msg.key.as_deref() {
            record = record.key(k);
        }
        if let Some(p) = msg.payload.as_deref() {
            record = record.payload(p);
        }
        let delivery = producer.send_result(record).map_err(|(e, _)| anyhow::Error::new(e).context(format!("enqueue to {}", msg.topic)))?;
        match futures::executor::block_on(delivery) {
            Ok(Ok(d)) => Ok(Delivered { partition: d.partition, offset: d.offset }),
            Ok(Err((e, _))) => Err(anyhow::Error::new(e).context(format!("publish to {}", msg.topic))),
            Err(_) => anyhow::bail!("publish to {}: the producer went away before the broker answered", msg.topic),
        }
    }
}

fn dead_letter(m: &BorrowedMessage<'_>) -> DeadLetter {
    let headers = m
        .headers()
        .map(|hs| hs.iter().map(|h| Header { key: h.key.to_owned(), value: h.value.map(<[u8]>::to_vec) }).collect())
        .unwrap_or_default();
    DeadLetter {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: m.timestamp().to_millis().and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
    }
}
