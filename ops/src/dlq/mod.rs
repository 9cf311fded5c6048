//! Dead letters: what the consumer loop writes to `<topic>.dlq`
//! (`services/platform/src/consumer.rs`), how to read them back, and how to
//! republish one to the topic it came from.
//!
//! A dead letter is the original message untouched (key, payload, headers such
//! as `event_id`, `event_type`, `traceparent`) plus four headers naming why and
//! where it failed: [`HEADER_ERROR`], [`HEADER_TOPIC`], [`HEADER_PARTITION`],
//! [`HEADER_OFFSET`]. A redrive ([`Republish::of`]) sends the original back:
//! same key (so the same partition and per-order order), same headers without
//! the `dlq.*` ones, and [`HEADER_REDRIVEN_FROM`] naming the dead letter.
//!
//! # Layout
//! - [`progress`]: which dead letters were already redriven (stored as the
//!   commit of the consumer group [`progress::REDRIVE_GROUP`]).
//! - [`kafka`]: the broker side: topics, watermarks, reading, committing.
//! - [`redrive`]: selecting and republishing dead letters, with progress.
//! - [`cli`]: the `glasshouse-dlq` command line.

pub mod cli;
pub mod kafka;
pub mod progress;
pub mod redrive;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use glasshouse_contracts::topics;

/// The handler's error, as text.
pub const HEADER_ERROR: &str = "dlq.error";
/// The topic the message was consumed from: where a redrive sends it back.
pub const HEADER_TOPIC: &str = "dlq.topic";
/// Its partition there.
pub const HEADER_PARTITION: &str = "dlq.partition";
/// Its offset there.
pub const HEADER_OFFSET: &str = "dlq.offset";
/// Added by a redrive: `<dlq topic>:<partition>:<offset>` of the dead letter
/// the message was republished from, so a consumer's log can tell a replay.
pub const HEADER_REDRIVEN_FROM: &str = "dlq.redriven_from";
/// Prefix of every header that describes the dead-lettering, not the message.
pub const DLQ_HEADER_PREFIX: &str = "dlq.";

/// The dead-letter topics of the contract topics under `prefix`
/// (`<prefix>orders.v1.dlq`, `<prefix>inventory.v1.dlq`).
pub fn dead_letter_topics(prefix: &str) -> Vec<String> {
    [topics::ORDERS, topics::INVENTORY].iter().map(|t| topics::dead_letter_topic(&format!("{prefix}{t}"))).collect()
}

/// One message header; `value` is `None` for a header without a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// One message read from a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead-letter topic it was read from.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// In the order they are on the message.
    pub headers: Vec<Header>,
    /// When it was dead-lettered (the message's create time), if known.
    pub timestamp: Option<DateTime<Utc>>,
}

impl DeadLetter {
    /// The first header named `key`, as text (lossy UTF-8).
    pub fn header(&self, key: &str) -> Option<String> {
        self.headers.iter().find(|h| h.key == key).and_then(|h| h.value.as_deref()).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The key as text (lossy UTF-8).
    pub fn key_text(&self) -> Option<String> {
        self.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned())
    }

    /// Seconds since it was dead-lettered, at `now`.
    pub fn age_seconds(&self, now: DateTime<Utc>) -> Option<i64> {
        self.timestamp.map(|t| (now - t).num_seconds().max(0))
    }

    /// Where this dead letter sits, as `list` prints it and `--offset` takes it.
    pub fn position(&self) -> Position {
        Position { partition: self.partition, offset: self.offset }
    }
}

/// `PARTITION:OFFSET` of a message in a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

impl FromStr for Position {
    type Err = String;

    /// `0:42`; both parts non-negative integers.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not PARTITION:OFFSET (two non-negative integers, e.g. 0:42)");
        let (p, o) = s.split_once(':').ok_or_else(bad)?;
        let partition: i32 = p.trim().parse().map_err(|_| bad())?;
        let offset: i64 = o.trim().parse().map_err(|_| bad())?;
        if partition < 0 || offset < 0 {
            return Err(bad());
        }
        Ok(Self { partition, offset })
    }
}

/// A dead-letter topic name: `<topic>.dlq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqTopic(String);

impl DlqTopic {
    /// `name` as given, or under `prefix` when it does not already start with
    /// it (so `orders.v1.dlq` with `--topic-prefix e2e.` is `e2e.orders.v1.dlq`).
    /// Refuses a name that is not a dead-letter topic.
    pub fn resolve(name: &str, prefix: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() || name.strip_suffix(topics::DEAD_LETTER_SUFFIX).is_none_or(str::is_empty) {
            return Err(format!("`{name}` is not a dead-letter topic (its name ends with `{}`)", topics::DEAD_LETTER_SUFFIX));
        }
        if name.chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
            return Err(format!("`{name}` is not a valid Kafka topic name (letters, digits, '.', '_', '-')"));
        }
        Ok(Self(if name.starts_with(prefix) { name.to_owned() } else { format!("{prefix}{name}") }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic its messages came from (the name without `.dlq`).
    pub fn source(&self) -> &str {
        self.0.strip_suffix(topics::DEAD_LETTER_SUFFIX).unwrap_or(&self.0)
    }
}

impl fmt::Display for DlqTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a redrive sends for one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Republish {
    /// The original topic (from [`HEADER_TOPIC`]).
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The original headers, then [`HEADER_REDRIVEN_FROM`].
    pub headers: Vec<Header>,
}

/// Why a dead letter cannot be republished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRepublishable {
    /// No [`HEADER_TOPIC`]: nothing says where it came from.
    #[error("it has no `{HEADER_TOPIC}` header, so where it came from is unknown")]
    NoSourceTopic,
    /// [`HEADER_TOPIC`] names another topic than the one the dead-letter
    /// topic belongs to; a redrive never sends a message anywhere else.
    #[error("its `{HEADER_TOPIC}` header names `{found}`, but dead letters of {dlq} come from `{expected}`")]
    ForeignSourceTopic { dlq: String, expected: String, found: String },
}

impl Republish {
    /// The message that puts `letter` (read from `dlq`) back on its topic.
    pub fn of(letter: &DeadLetter, dlq: &DlqTopic) -> Result<Self, NotRepublishable> {
        let topic = letter.header(HEADER_TOPIC).filter(|t| !t.is_empty()).ok_or(NotRepublishable::NoSourceTopic)?;
        if topic != dlq.source() {
            return Err(NotRepublishable::ForeignSourceTopic { dlq: dlq.to_string(), expected: dlq.source().to_owned(), found: topic });
        }
        let mut headers: Vec<Header> = letter.headers.iter().filter(|h| !h.key.starts_with(DLQ_HEADER_PREFIX)).cloned().collect();
        let from = format!("{}:{}:{}", letter.topic, letter.partition, letter.offset);
        headers.push(Header { key: HEADER_REDRIVEN_FROM.to_owned(), value: Some(from.into_bytes()) });
        Ok(Self { topic, key: letter.key.clone(), payload: letter.payload.clone(), headers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: &str, v: &str) -> Header {
        Header { key: k.into(), value: Some(v.as_bytes().to_vec()) }
    }

    fn letter() -> DeadLetter {
        DeadLetter {
            topic: "p.orders.v1.dlq".into(),
            partition: 1,
            offset: 7,
            key: Some(b"order-1".to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: vec![
                h("event_id", "e1"),
                h("event_type", "order.created"),
                h("traceparent", "00-abc-def-01"),
                h(HEADER_ERROR, "permanent: boom"),
                h(HEADER_TOPIC, "p.orders.v1"),
                h(HEADER_PARTITION, "1"),
                h(HEADER_OFFSET, "99"),
            ],
            timestamp: None,
        }
    }

    #[test]
    fn positions_parse_and_refuse_with_the_value_named() {
        assert_eq!("2:40".parse::<Position>().unwrap(), Position { partition: 2, offset: 40 });
        for bad in ["", "1", "a:1", "1:b", "-1:0", "0:-3", "1:2:3"] {
            let e = bad.parse::<Position>().unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn topic_names_resolve_under_the_prefix() {
        assert_eq!(DlqTopic::resolve("orders.v1.dlq", "").unwrap().as_str(), "orders.v1.dlq");
        assert_eq!(DlqTopic::resolve("orders.v1.dlq", "e2e.").unwrap().as_str(), "e2e.orders.v1.dlq");
        assert_eq!(DlqTopic::resolve("e2e.orders.v1.dlq", "e2e.").unwrap().as_str(), "e2e.orders.v1.dlq");
        assert_eq!(DlqTopic::resolve("e2e.orders.v1.dlq", "e2e.").unwrap().source(), "e2e.orders.v1");
        for bad in ["orders.v1", ".dlq", "", "or ders.v1.dlq"] {
            assert!(DlqTopic::resolve(bad, "").is_err(), "{bad}");
        }
        assert_eq!(dead_letter_topics("x."), vec!["x.orders.v1.dlq".to_owned(), "x.inventory.v1.dlq".to_owned()]);
    }

    #[test]
    fn a_republish_keeps_key_payload_and_original_headers_only() {
        let l = letter();
        let r = Republish::of(&l, &DlqTopic::resolve("p.orders.v1.dlq", "").unwrap()).unwrap();
        assert_eq!(r.topic, "p.orders.v1");
        assert_eq!(r.key, l.key);
        assert_eq!(r.payload, l.payload);
        let keys: Vec<&str> = r.headers.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(keys, ["event_id", "event_type", "traceparent", HEADER_REDRIVEN_FROM]);
        assert_eq!(r.headers[3].value.as_deref(), Some(&b"p.orders.v1.dlq:1:7"[..]));
    }

    #[test]
    fn a_letter_redriven_before_gets_a_fresh_origin_header() {
        let mut l = letter();
        l.headers.insert(0, h(HEADER_REDRIVEN_FROM, "p.orders.v1.dlq:0:1"));
        let r = Republish::of(&l, &DlqTopic::resolve("p.orders.v1.dlq", "").unwrap()).unwrap();
        let origins: Vec<_> = r.headers.iter().filter(|h| h.key == HEADER_REDRIVEN_FROM).collect();
        assert_eq!(origins.len(), 1);
        assert_eq!(origins[0].value.as_deref(), Some(&b"p.orders.v1.dlq:1:7"[..]));
    }

    #[test]
    fn no_or_foreign_source_topic_is_refused() {
        let dlq = DlqTopic::resolve("p.orders.v1.dlq", "").unwrap();
        let mut l = letter();
        l.headers.retain(|h| h.key != HEADER_TOPIC);
        assert_eq!(Republish::of(&l, &dlq), Err(NotRepublishable::NoSourceTopic));
        let mut l = letter();
        l.headers.push(h(HEADER_TOPIC, "other"));
        l.headers.retain(|h| h.key != HEADER_TOPIC || h.value.as_deref() == Some(b"other"));
        assert!(matches!(Republish::of(&l, &dlq), Err(NotRepublishable::ForeignSourceTopic { .. })));
    }
}
