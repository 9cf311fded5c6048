//! Kafka as the suite sees it: dead-letter counts straight from the broker,
//! and a poison message.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};

// Topic names as in `services/contracts/src/topics.rs` (the tests crate does
// not depend on the contracts crate). A rename there shows here as a poison
// scenario that finds nothing in its dead-letter topic.
pub const ORDERS: &str = "orders.v1";
const DEAD_LETTER_TOPICS: [&str; 2] = ["orders.v1.dlq", "inventory.v1.dlq"];

/// The dead-letter topics of a saga with topic prefix `prefix`.
pub fn dead_letter_topics(prefix: &str) -> Vec<String> {
    DEAD_LETTER_TOPICS.iter().map(|t| format!("{prefix}{t}")).collect()
}

/// Messages in each dead-letter topic (high minus low watermark, summed over
/// partitions): the broker's own count, which survives service restarts.
pub async fn dead_letters(brokers: &str, prefix: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let brokers = brokers.to_owned();
    let topics = dead_letter_topics(prefix);
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        let mut out = BTreeMap::new();
        for topic in topics {
            let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let mut n = 0u64;
            for t in md.topics() {
                for p in t.partitions() {
                    let (low, high) = consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10))?;
                    n += (high - low).max(0) as u64;
                }
            }
            out.insert(topic, n);
        }
        anyhow::Ok(out)
    })
    .await?
}

/// Produces `payload` to `topic` (key `key`), waiting for the broker's ack.
pub async fn produce(brokers: &str, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers).set("message.timeout.ms", "15000").create()?;
    producer
        .send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(15))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce to {topic}: {e}"))?;
    Ok(())
}

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Every message now in `topic`, from the start (no consumer group).
pub async fn read_all(brokers: &str, topic: &str) -> anyhow::Result<Vec<Read>> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("chaos-reader-{}", uuid::Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut remaining = 0i64;
        let mut ends = BTreeMap::new();
        for t in md.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10))?;
                if high > low {
                    tpl.add_partition_offset(&topic, p.id(), rdkafka::Offset::Offset(low))?;
                    remaining += high - low;
                    ends.insert(p.id(), high);
                }
            }
        }
        let mut out = Vec::new();
        if remaining == 0 {
            return anyhow::Ok(out);
        }
        consumer.assign(&tpl)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (out.len() as i64) < remaining {
            anyhow::ensure!(std::time::Instant::now() < deadline, "read {} of {remaining} messages of {topic} in 30 s", out.len());
            let Some(m) = consumer.poll(Duration::from_millis(500)) else { continue };
            let m = m?;
            if m.offset() >= ends.get(&m.partition()).copied().unwrap_or(0) {
                continue;
            }
            let headers = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
                .unwrap_or_default();
            out.push(Read {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
        anyhow::Ok(out)
    })
    .await?
}
