//! Redrive: republish dead letters to the topic they came from, once.
//!
//! For each selected dead letter, in offset order per partition:
//! 1. skip it if the redrive record says it was redriven already;
//! 2. build the original message ([`Republish::of`]): original topic, key,
//!    payload and headers, `dlq.*` headers removed, `dlq.redriven_from` added;
//! 3. publish it with the idempotent producer and wait for the acknowledgement;
//! 4. record it as redriven (a synchronous commit of [`super::progress::REDRIVE_GROUP`]).
//!
//! A crash between 3 and 4 republishes that one message again on the next run.
//! That is safe: every consumer deduplicates by event id in the transaction of
//! its effects (`processed_events`, Notification's unique index), and
//! Inventory ignores an `order.created` for an order already cancelled or
//! timed out. With `--all`, a partition stops at the first dead letter that
//! cannot be republished, so later events of the same order never overtake it.

use std::collections::BTreeMap;
use std::io::Write;

use super::kafka::{Broker, TopicState};
use super::{DeadLetter, DlqTopic, HEADER_ERROR, Position, Republish};

/// Which dead letters to redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every dead letter not redriven yet.
    All,
    /// These (each must exist in the topic).
    Offsets(Vec<Position>),
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Republished now (or, with `dry_run`, would be).
    pub redriven: Vec<Position>,
    /// How many selected dead letters were redriven before: left alone.
    pub already: usize,
    /// Could not be republished, with why.
    pub failed: Vec<(Position, String)>,
}

/// Why a redrive did not start.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// The request names something that is not there (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// The brokers could not be asked (exit 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Checks that every selected position exists in `state`, naming the first
/// that does not. Returns them sorted, without repeats.
pub fn validate(state: &TopicState, offsets: &[Position]) -> Result<Vec<Position>, String> {
    let mut sorted = offsets.to_vec();
    sorted.sort();
    sorted.dedup();
    for pos in &sorted {
        let Some(p) = state.partition(pos.partition) else {
            let known: Vec<String> = state.partitions.iter().map(|p| p.partition.to_string()).collect();
            return Err(format!("--offset {pos}: {} has no partition {} (partitions: {})", state.topic, pos.partition, known.join(", ")));
        };
        if p.low >= p.high {
            return Err(format!("--offset {pos}: partition {} of {} holds no messages", pos.partition, state.topic));
        }
        if pos.offset < p.low || pos.offset >= p.high {
            return Err(format!(
                "--offset {pos}: no such message in {} (partition {} holds offsets {}..={})",
                state.topic,
                pos.partition,
                p.low,
                p.high - 1
            ));
        }
    }
    Ok(sorted)
}

/// Redrives `selection` of `topic`, writing one line per message to `out`.
/// With `dry_run` nothing is sent and nothing recorded.
pub fn redrive(
    broker: &mut Broker,
    topic: &DlqTopic,
    selection: &Selection,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Outcome, RedriveError> {
    let Some(state) = broker.state(topic.as_str())? else {
        return Err(RedriveError::BadInput(format!("topic {topic} does not exist on {}", broker.brokers())));
    };
    // (partition, from, to) to read, and whether the partition is read in full.
    let (ranges, all) = match selection {
        Selection::All => {
            let r: Vec<(i32, i64, i64)> =
                state.partitions.iter().map(|p| (p.partition, p.progress.watermark().max(p.low), p.high)).collect();
            (r, true)
        }
        Selection::Offsets(offsets) => {
            let offsets = validate(&state, offsets).map_err(RedriveError::BadInput)?;
            (offsets.iter().map(|o| (o.partition, o.offset, o.offset + 1)).collect(), false)
        }
    };
    let mut progress: BTreeMap<i32, _> = state.partitions.iter().map(|p| (p.partition, p.progress.clone())).collect();
    let letters = broker.read(topic.as_str(), &ranges)?;
    let mut outcome = Outcome::default();
    if all {
        // Those below the watermark are not read again; count every kept one done before.
        outcome.already = state.partitions.iter().map(|p| (p.kept() - p.pending()).max(0) as usize).sum();
    } else {
        for &(p, o, _) in &ranges {
            if !letters.iter().any(|l| l.partition == p && l.offset == o) {
                let pos = Position { partition: p, offset: o };
                outcome.failed.push((pos, "the message is gone (deleted by retention while this ran)".to_owned()));
                let _ = writeln!(out, "fail  {pos}: the message is gone (deleted by retention while this ran)");
            }
        }
    }
    let mut stopped: Vec<i32> = Vec::new();
    for letter in &letters {
        let pos = letter.position();
        if stopped.contains(&pos.partition) {
            continue;
        }
        let Some(record) = progress.get_mut(&pos.partition) else { continue };
        if record.is_done(pos.offset) {
            if !all {
                outcome.already += 1;
                let _ = writeln!(out, "skip  {pos}: already redriven");
            }
            continue;
        }
        if all {
            // Read in order from the watermark: anything before this offset is done or absent.
            record.skip_gap_below(pos.offset);
        }
        let step = redrive_one(broker, topic, letter, record, dry_run);
        match step {
            Ok(line) => {
                outcome.redriven.push(pos);
                let _ = writeln!(out, "{line}");
            }
            Err(e) => {
                let _ = writeln!(out, "fail  {pos}: {e:#}");
                outcome.failed.push((pos, format!("{e:#}")));
                if all {
                    stopped.push(pos.partition);
                }
            }
        }
    }
    Ok(outcome)
}

/// Republishes one dead letter and records it; returns the line to print.
fn redrive_one(
    broker: &mut Broker,
    topic: &DlqTopic,
    letter: &DeadLetter,
    record: &mut super::progress::Progress,
    dry_run: bool,
) -> anyhow::Result<String> {
    let pos = letter.position();
    let msg = Republish::of(letter, topic)?;
    let mut next = record.clone();
    next.mark_done(pos.offset)?;
    let what = describe(letter);
    if dry_run {
        return Ok(format!("would send {pos} -> {} ({what})", msg.topic));
    }
    let delivered = broker.publish(&msg)?;
    broker.commit(topic.as_str(), pos.partition, &next).map_err(|e| {
        e.context(format!("{pos} WAS republished to {} but is not recorded; a later redrive would send it again", msg.topic))
    })?;
    *record = next;
    Ok(format!("sent  {pos} -> {} {}:{} ({what})", msg.topic, delivered.partition, delivered.offset))
}

fn describe(letter: &DeadLetter) -> String {
    let mut parts = Vec::new();
    if let Some(t) = letter.header("event_type") {
        parts.push(t);
    }
    if let Some(id) = letter.header("event_id") {
        parts.push(format!("event {id}"));
    }
    if let Some(k) = letter.key_text() {
        parts.push(format!("key {k}"));
    }
    if parts.is_empty() && letter.header(HEADER_ERROR).is_some() {
        parts.push("no event headers".to_owned());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::kafka::PartitionState;
    use crate::dlq::progress::Progress;

    fn state() -> TopicState {
        TopicState {
            topic: "x.orders.v1.dlq".into(),
            partitions: vec![
                PartitionState { partition: 0, low: 2, high: 5, progress: Progress::default() },
                PartitionState { partition: 1, low: 0, high: 0, progress: Progress::default() },
            ],
        }
    }

    #[test]
    fn selected_offsets_are_sorted_and_deduplicated() {
        let p = |o| Position { partition: 0, offset: o };
        assert_eq!(validate(&state(), &[p(4), p(2), p(4)]).unwrap(), vec![p(2), p(4)]);
    }

    #[test]
    fn offsets_outside_the_topic_are_named() {
        let e = validate(&state(), &[Position { partition: 0, offset: 5 }]).unwrap_err();
        assert!(e.contains("0:5") && e.contains("2..=4"), "{e}");
        let e = validate(&state(), &[Position { partition: 0, offset: 1 }]).unwrap_err();
        assert!(e.contains("0:1"), "{e}");
        let e = validate(&state(), &[Position { partition: 7, offset: 0 }]).unwrap_err();
        assert!(e.contains("no partition 7") && e.contains("0, 1"), "{e}");
        let e = validate(&state(), &[Position { partition: 1, offset: 0 }]).unwrap_err();
        assert!(e.contains("holds no messages"), "{e}");
    }
}
