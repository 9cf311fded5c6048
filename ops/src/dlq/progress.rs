//! Which dead letters of one partition were already redriven, as it is stored
//! in Kafka: the committed offset of the consumer group [`REDRIVE_GROUP`] on
//! the dead-letter topic, plus that commit's metadata string.
//!
//! A consumer-group offset alone can only say "everything below N is done".
//! An operator may redrive single messages out of order (`--offset 0:7` before
//! `0:5`), and committing 8 then would mark 5 as done without republishing it.
//! So the committed offset is the *contiguous* watermark (every offset below it
//! was redriven, or no longer exists), and the offsets redriven above it are
//! listed in the commit's metadata (`redriven:7,9`). Redriving the offset at the
//! watermark moves it past every listed offset that follows without a gap.
//!
//! The record is written after each successful republish, so an interrupted
//! redrive resumes where it stopped; a crash between the republish and the
//! commit re-drives one message once more, which the consumers' event-id dedupe
//! absorbs.

use std::collections::BTreeSet;

/// The consumer group whose committed offsets on a dead-letter topic record
/// redrive progress. It never consumes as a group member; only this tool
/// commits for it.
pub const REDRIVE_GROUP: &str = "glasshouse-dlq-redrive";

/// Prefix of the commit metadata listing offsets redriven above the watermark.
const METADATA_PREFIX: &str = "redriven:";

/// Kafka's default `offset.metadata.max.bytes` is 4096; stay well inside it.
pub const MAX_METADATA_BYTES: usize = 3500;

/// Redrive progress of one partition of a dead-letter topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every offset below this was redriven or is gone (retention).
    watermark: i64,
    /// Offsets at or above `watermark` that were redriven individually.
    above: BTreeSet<i64>,
}

/// The stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redrive record `{metadata}` of group {REDRIVE_GROUP} is not `{METADATA_PREFIX}<offset>,...`")]
pub struct BadRecord {
    /// The metadata found.
    pub metadata: String,
}

impl Progress {
    /// The progress from a committed offset (`None`: the group never committed
    /// on this partition) and its metadata, for a partition whose oldest kept
    /// message is at `low` (offsets below `low` were deleted by retention, so
    /// they count as done).
    pub fn from_commit(committed: Option<i64>, metadata: &str, low: i64) -> Result<Self, BadRecord> {
        let bad = || BadRecord { metadata: metadata.to_owned() };
        let mut above = BTreeSet::new();
        if !metadata.is_empty() {
            let list = metadata.strip_prefix(METADATA_PREFIX).ok_or_else(bad)?;
            for part in list.split(',').filter(|p| !p.is_empty()) {
                above.insert(part.parse::<i64>().map_err(|_| bad())?);
            }
        }
        let mut p = Self { watermark: committed.unwrap_or(0).max(low).max(0), above };
        p.settle();
        Ok(p)
    }

    /// The offset to commit: everything below it is done.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The metadata to commit with [`Progress::watermark`].
    pub fn metadata(&self) -> String {
        if self.above.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self.above.iter().map(i64::to_string).collect();
        format!("{METADATA_PREFIX}{}", list.join(","))
    }

    /// True if `offset` was redriven (or lies below the oldest kept message).
    pub fn is_done(&self, offset: i64) -> bool {
        offset < self.watermark || self.above.contains(&offset)
    }

    /// Records `offset` as redriven. Fails, changing nothing, when the record
    /// would outgrow what a commit can carry (redrive the partition with
    /// `--all` then, which advances the watermark instead).
    pub fn mark_done(&mut self, offset: i64) -> Result<(), TooManyOutOfOrder> {
        if self.is_done(offset) {
            return Ok(());
        }
        let mut next = self.clone();
        next.above.insert(offset);
        next.settle();
        if next.metadata().len() > MAX_METADATA_BYTES {
            return Err(TooManyOutOfOrder { listed: self.above.len() });
        }
        *self = next;
        Ok(())
    }

    /// Records that no message exists in `[watermark, offset)`: reading the
    /// partition in order, the next message found was at `offset`.
    pub fn skip_gap_below(&mut self, offset: i64) {
        if offset > self.watermark {
            self.watermark = offset;
            self.settle();
        }
    }

    /// How many of the offsets in `[low, high)` (the kept messages) are not
    /// redriven yet.
    pub fn pending(&self, low: i64, high: i64) -> i64 {
        let from = self.watermark.max(low);
        if high <= from {
            return 0;
        }
        let listed = self.above.range(from..high).count() as i64;
        (high - from) - listed
    }

    /// Moves the watermark over listed offsets that now follow it directly.
    fn settle(&mut self) {
        self.above = self.above.split_off(&self.watermark);
        while self.above.remove(&self.watermark) {
            self.watermark += 1;
        }
    }
}

/// Too many single messages redriven out of order on one partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{listed} messages of this partition were redriven out of order; the redrive record is full. \
     Redrive the partition in order with --all"
)]
pub struct TooManyOutOfOrder {
    /// Offsets listed above the watermark.
    pub listed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_committed_means_nothing_done_from_the_oldest_kept_message() {
        let p = Progress::from_commit(None, "", 3).unwrap();
        assert_eq!(p.watermark(), 3);
        assert!(p.is_done(2), "deleted by retention");
        assert!(!p.is_done(3));
        assert_eq!(p.pending(3, 10), 7);
        assert_eq!(p.metadata(), "");
    }

    #[test]
    fn in_order_redrives_move_the_watermark() {
        let mut p = Progress::from_commit(None, "", 0).unwrap();
        p.mark_done(0).unwrap();
        p.mark_done(1).unwrap();
        assert_eq!((p.watermark(), p.metadata().as_str()), (2, ""));
        assert_eq!(p.pending(0, 5), 3);
    }

    #[test]
    fn out_of_order_redrives_are_listed_then_absorbed() {
        let mut p = Progress::from_commit(None, "", 0).unwrap();
        p.mark_done(3).unwrap();
        p.mark_done(5).unwrap();
        assert_eq!(p.watermark(), 0);
        assert_eq!(p.metadata(), "redriven:3,5");
        assert!(p.is_done(3) && p.is_done(5) && !p.is_done(4) && !p.is_done(0));
        assert_eq!(p.pending(0, 6), 4);
        for o in [0, 1, 2] {
            p.mark_done(o).unwrap();
        }
        assert_eq!((p.watermark(), p.metadata().as_str()), (4, "redriven:5"));
        p.mark_done(4).unwrap();
        assert_eq!((p.watermark(), p.metadata().as_str()), (6, ""));
    }

    #[test]
    fn the_record_round_trips_through_a_commit() {
        let mut p = Progress::from_commit(None, "", 0).unwrap();
        p.mark_done(0).unwrap();
        p.mark_done(4).unwrap();
        let back = Progress::from_commit(Some(p.watermark()), &p.metadata(), 0).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn retention_past_the_watermark_drops_stale_entries() {
        let p = Progress::from_commit(Some(2), "redriven:4,9", 6).unwrap();
        assert_eq!(p.watermark(), 6);
        assert_eq!(p.metadata(), "redriven:9");
    }

    #[test]
    fn gaps_are_skipped_when_reading_in_order() {
        let mut p = Progress::from_commit(Some(2), "redriven:5", 0).unwrap();
        p.skip_gap_below(5);
        assert_eq!((p.watermark(), p.metadata().as_str()), (6, ""));
        p.skip_gap_below(1);
        assert_eq!(p.watermark(), 6, "never moves back");
    }

    #[test]
    fn a_foreign_record_is_refused() {
        assert!(Progress::from_commit(Some(1), "hello", 0).is_err());
        assert!(Progress::from_commit(Some(1), "redriven:x", 0).is_err());
        assert_eq!(Progress::from_commit(Some(1), "redriven:", 0).unwrap().watermark(), 1);
    }

    #[test]
    fn the_record_never_outgrows_a_commit() {
        let mut p = Progress::from_commit(None, "", 0).unwrap();
        let mut o = 1_000_000_000_000i64;
        let err = loop {
            match p.mark_done(o) {
                Ok(()) => o += 2,
                Err(e) => break e,
            }
        };
        assert!(p.metadata().len() <= MAX_METADATA_BYTES);
        assert!(!p.is_done(o), "the refused offset was not recorded");
        assert!(err.to_string().contains("--all"));
    }
}
