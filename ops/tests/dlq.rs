//! `glasshouse-dlq` against the real broker, on topics of a prefix of its own:
//! dead letters written the way the platform's consumer loop writes them are
//! listed, shown, redriven to their original topic with their original key
//! and headers, and never redriven twice.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::{Run, brokers, run, unique};

const DLQ: &str = env!("CARGO_BIN_EXE_glasshouse-dlq");

/// One dead letter as the test wrote it.
#[derive(Debug, Clone)]
struct Written {
    key: String,
    event_id: String,
    payload: String,
    /// The headers of the original message (what a redrive must restore).
    original: Vec<(String, String)>,
    partition: i32,
    offset: i64,
}

impl Written {
    fn position(&self) -> String {
        format!("{}:{}", self.partition, self.offset)
    }
}

/// Topics `<prefix>orders.v1` and `<prefix>orders.v1.dlq` (2 partitions each).
async fn topics() -> anyhow::Result<(String, String)> {
    let prefix = format!("{}.", unique("ops_dlq"));
    let source = format!("{prefix}orders.v1");
    glasshouse_platform::consumer::ensure_topics(&brokers(), &[&source], 2).await?;
    Ok((prefix, source))
}

/// Writes a dead letter of `source` as `ConsumerLoop::dead_letter` does: the
/// original key, payload and headers, then the four `dlq.*` headers.
async fn dead_letter(producer: &FutureProducer, source: &str, key: &str, n: usize) -> anyhow::Result<Written> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let payload = format!(r#"{{"id":"{event_id}","type":"order.created","version":1,"order_id":"{key}","data":{{"n":{n}}}}}"#);
    let original = vec![
        ("event_id".to_owned(), event_id.clone()),
        ("event_type".to_owned(), "order.created".to_owned()),
        ("traceparent".to_owned(), format!("00-{}-00f067aa0ba902b7-01", uuid::Uuid::new_v4().simple())),
    ];
    let mut headers = OwnedHeaders::new();
    for (k, v) in &original {
        headers = headers.insert(Header { key: k, value: Some(v) });
    }
    let headers = headers
        .insert(Header { key: "dlq.error", value: Some("permanent: not an event: test poison") })
        .insert(Header { key: "dlq.topic", value: Some(source) })
        .insert(Header { key: "dlq.partition", value: Some("1") })
        .insert(Header { key: "dlq.offset", value: Some(&n.to_string()) });
    let dlq = format!("{source}.dlq");
    // One partition, so the offsets are 0, 1, 2 in writing order.
    let record = FutureRecord::to(&dlq).key(key).payload(&payload).headers(headers).partition(0);
    let (partition, offset) = producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).map(|d| (d.partition, d.offset))?;
    Ok(Written { key: key.to_owned(), event_id, payload, original, partition, offset })
}

fn producer() -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new().set("bootstrap.servers", brokers()).set("enable.idempotence", "true").create()?)
}

/// A message read back from the source topic.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Read {
    key: Option<String>,
    payload: Option<String>,
    headers: Vec<(String, String)>,
}

/// Every message of `topic` (all partitions), read to the current end.
async fn read_all(topic: &str) -> anyhow::Result<Vec<Read>> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", unique("ops_dlq_reader"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut open = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..2 {
            let (low, high) = c.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            if high > low {
                tpl.add_partition_offset(&topic, p, Offset::Offset(low))?;
                open.insert(p, high);
            }
        }
        let mut out = Vec::new();
        if open.is_empty() {
            return Ok(out);
        }
        c.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !open.is_empty() {
            anyhow::ensure!(Instant::now() < deadline, "timed out reading {topic}");
            let Some(m) = c.poll(Duration::from_millis(200)) else { continue };
            let m = m?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push(Read {
                key: m.key().map(text),
                payload: m.payload().map(text),
                headers: m
                    .headers()
                    .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.map(text).unwrap_or_default())).collect())
                    .unwrap_or_default(),
            });
            if open.get(&m.partition()).is_some_and(|high| m.offset() + 1 >= *high) {
                open.remove(&m.partition());
            }
        }
        Ok(out)
    })
    .await?
}

/// The message a redrive of `w` must produce.
fn expected(w: &Written, dlq: &str) -> Read {
    let mut headers = w.original.clone();
    headers.push(("dlq.redriven_from".to_owned(), format!("{dlq}:{}", w.position())));
    Read { key: Some(w.key.clone()), payload: Some(w.payload.clone()), headers }
}

async fn dlq(prefix: &str, args: &[&str]) -> Run {
    let b = brokers();
    let mut all = vec!["--brokers", b.as_str(), "--topic-prefix", prefix];
    all.extend_from_slice(args);
    run(DLQ, &all).await
}

#[tokio::test]
async fn dead_letters_are_listed_shown_and_redriven_once_with_their_key_and_headers() -> anyhow::Result<()> {
    let (prefix, source) = topics().await?;
    let dlq_topic = format!("{source}.dlq");
    let producer = producer()?;
    let mut written = Vec::new();
    for (n, key) in ["order-a", "order-b", "order-c"].iter().enumerate() {
        written.push(dead_letter(&producer, &source, key, n).await?);
    }

    // list: every dead letter with its position, key, event and error.
    let list = dlq(&prefix, &["list"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.contains(&format!("{dlq_topic}: 3 kept, 3 not redriven")), "{list:?}");
    assert!(list.stdout.contains(&format!("{prefix}inventory.v1.dlq: no such topic")), "{list:?}");
    for w in &written {
        let line = list.stdout.lines().find(|l| l.contains(&w.event_id)).unwrap_or_else(|| panic!("{} not listed: {list:?}", w.event_id));
        assert!(line.trim_start().starts_with(&w.position()), "{line}");
        for part in ["pending", w.key.as_str(), "order.created", "permanent: not an event: test poison"] {
            assert!(line.contains(part), "{part} missing in: {line}");
        }
    }

    // show: headers and the pretty-printed payload.
    let first = &written[0];
    assert_eq!(written.iter().map(Written::position).collect::<Vec<_>>(), ["0:0", "0:1", "0:2"]);
    let show = dlq(&prefix, &["show", "orders.v1.dlq", &first.position()]).await;
    assert_eq!(show.code, 0, "{show:?}");
    assert!(show.stdout.contains(&format!("  event_id: {}", first.event_id)), "{show:?}");
    assert!(show.stdout.contains(&format!("  dlq.topic: {source}")), "{show:?}");
    assert!(show.stdout.contains("\"type\": \"order.created\""), "payload not pretty-printed: {show:?}");

    // A dry run sends nothing.
    let dry = dlq(&prefix, &["redrive", "orders.v1.dlq", "--all", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would redrive 3, already redriven 0, failed 0"), "{dry:?}");
    assert!(read_all(&source).await?.is_empty(), "a dry run published something");

    // One message, out of order (the last one): back on its topic with its
    // key, payload and original headers; recorded above the watermark.
    let first = &written[2];
    let one = dlq(&prefix, &["redrive", "orders.v1.dlq", "--offset", &first.position()]).await;
    assert_eq!(one.code, 0, "{one:?}");
    assert!(one.stdout.contains("redriven 1, already redriven 0, failed 0"), "{one:?}");
    assert_eq!(read_all(&source).await?, vec![expected(first, &dlq_topic)]);

    // The same message again: nothing sent.
    let again = dlq(&prefix, &["redrive", "orders.v1.dlq", "--offset", &first.position()]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains(&format!("skip  {}: already redriven", first.position())), "{again:?}");
    assert!(again.stdout.contains("redriven 0, already redriven 1, failed 0"), "{again:?}");
    assert_eq!(read_all(&source).await?.len(), 1, "the second redrive published again");

    let list = dlq(&prefix, &["list"]).await;
    assert!(list.stdout.contains(&format!("{dlq_topic}: 3 kept, 2 not redriven")), "{list:?}");

    // --all: the other two, not that one once more; then nothing is left.
    let all = dlq(&prefix, &["redrive", "orders.v1.dlq", "--all"]).await;
    assert_eq!(all.code, 0, "{all:?}");
    assert!(all.stdout.contains("redriven 2, already redriven 1, failed 0"), "{all:?}");
    let mut got = read_all(&source).await?;
    let mut want: Vec<Read> = written.iter().map(|w| expected(w, &dlq_topic)).collect();
    got.sort_by(|a, b| a.key.cmp(&b.key));
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(got, want);
    let rest = dlq(&prefix, &["redrive", "orders.v1.dlq", "--all"]).await;
    assert!(rest.stdout.contains("redriven 0, already redriven 3, failed 0"), "{rest:?}");
    assert_eq!(read_all(&source).await?.len(), 3);

    let after = dlq(&prefix, &["list"]).await;
    assert!(after.stdout.contains(&format!("{dlq_topic}: 3 kept, 0 not redriven")), "{after:?}");
    assert_eq!(after.stdout.matches(" redriven ").count(), 3, "{after:?}");
    Ok(())
}

#[tokio::test]
async fn a_dead_letter_without_its_source_topic_is_not_redriven_and_blocks_its_partition() -> anyhow::Result<()> {
    let (prefix, source) = topics().await?;
    let dlq_topic = format!("{source}.dlq");
    let producer = producer()?;
    // No dlq.topic header: nothing says where it belongs.
    let record = FutureRecord::to(&dlq_topic).key("order-x").payload("{}").partition(0);
    let bad = producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?.offset;
    let good = dead_letter(&producer, &source, "order-y", 0).await?;

    let r = dlq(&prefix, &["redrive", &dlq_topic, "--all"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(&format!("fail  0:{bad}: it has no `dlq.topic` header")), "{r:?}");
    assert!(read_all(&source).await?.is_empty(), "a later message of the blocked partition overtook the failed one");

    // The operator can still send the good one on its own; the bad one stays.
    let one = dlq(&prefix, &["redrive", &dlq_topic, "--offset", &good.position()]).await;
    assert_eq!(one.code, 0, "{one:?}");
    assert_eq!(read_all(&source).await?, vec![expected(&good, &dlq_topic)]);
    let again = dlq(&prefix, &["redrive", &dlq_topic, "--all"]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stdout.contains("redriven 0, already redriven 1, failed 1"), "{again:?}");
    assert_eq!(read_all(&source).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn bad_arguments_exit_2_naming_the_bad_value() -> anyhow::Result<()> {
    let (prefix, _source) = topics().await?;
    let cases: &[(&[&str], &str)] = &[
        (&["redrive", "orders.v1.dlq"], "--offset"),
        (&["redrive", "orders.v1.dlq", "--offset", "0-5"], "`0-5` is not PARTITION:OFFSET"),
        (&["redrive", "orders.v1.dlq", "--offset", "0:1", "--all"], "--all"),
        (&["show", "orders.v1", "0:0"], "`orders.v1` is not a dead-letter topic"),
        (&["show", "orders.v1.dlq", "zero"], "`zero` is not PARTITION:OFFSET"),
        (&["redrive", "orders.v1.dlq", "--offset", "0:999"], "--offset 0:999:"),
        (&["redrive", "orders.v1.dlq", "--offset", "9:0"], "has no partition 9"),
        (&["redrive", "missing.v1.dlq", "--all"], &format!("topic {prefix}missing.v1.dlq does not exist")),
        (&["list", "orders.v1.dlq", "typo.v1.dlq"], &format!("topic {prefix}typo.v1.dlq does not exist")),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, needle) in cases {
        let r = dlq(&prefix, args).await;
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}: {r:?}");
    }
    for (args, needle) in [(vec!["--brokers", "nope", "list"], "`nope` is not host:port"), (vec!["--topic-prefix", "a b", "list"], "`a b`")]
    {
        let r = run(DLQ, &args).await;
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {r:?}");
    }
    Ok(())
}
