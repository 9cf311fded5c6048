//! Recording samples: HDR histograms per step and per time bucket, outcome
//! counts, checks, and the slowest requests with their trace ids.
//!
//! One mutex guards the aggregate. Recording a sample is a handful of array
//! increments and one histogram update, so the lock is held for well under a
//! microsecond; on the runner's usual one- or two-thread runtime it is
//! uncontended. Prometheus counters are updated outside the lock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::sample::{Outcome, Sample, TraceId};

/// Largest latency the histograms hold (longer ones are clamped): one hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// A slow request kept for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowRequest {
    pub latency_us: u64,
    pub step: usize,
    pub trace_id: TraceId,
    pub status: Option<u16>,
    pub outcome: Outcome,
    /// Seconds since the run started, when the response ended.
    pub at_s_millis: u64,
}

impl Ord for SlowRequest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.latency_us, self.trace_id.0).cmp(&(other.latency_us, other.trace_id.0))
    }
}
impl PartialOrd for SlowRequest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Aggregates for one step over the whole run.
#[derive(Debug, Clone)]
pub struct StepStats {
    /// Latency in microseconds, 3 significant digits.
    pub latency: Histogram<u64>,
    /// Count per [`Outcome::index`].
    pub outcomes: [u64; 7],
    /// Count per received HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Up to `slowest` requests, smallest at the top of the heap.
    slowest: BinaryHeap<Reverse<SlowRequest>>,
    /// One example message per failure class (the first seen).
    pub error_examples: BTreeMap<Outcome, String>,
}

impl StepStats {
    /// Requests recorded, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Requests whose outcome is not success.
    pub fn errors(&self) -> u64 {
        self.requests() - self.outcomes[Outcome::Success.index()]
    }
}

/// One time bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Per step: latency (µs, 2 significant digits) and error count.
    pub steps: Vec<(Histogram<u32>, u64)>,
    /// Iterations whose intended start fell in this bucket and that started.
    pub iterations_started: u64,
    /// Iterations whose intended start fell in this bucket and were dropped.
    pub dropped: u64,
}

impl Bucket {
    /// The latencies of every step in this bucket, in one histogram.
    pub fn merged(&self) -> Histogram<u32> {
        let mut merged = hist_u32();
        for (h, _) in &self.steps {
            let _ = merged.add(h);
        }
        merged
    }
}

/// Pass/fail counts of one named check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckCount {
    pub passes: u64,
    pub fails: u64,
}

/// Everything recorded, handed to the report when the run ends.
#[derive(Debug, Clone)]
pub struct Results {
    pub step_names: Vec<String>,
    pub steps: Vec<StepStats>,
    /// Whole-iteration latency (µs).
    pub iterations: Histogram<u64>,
    pub iterations_completed: u64,
    pub iterations_failed: u64,
    pub iterations_started: u64,
    pub dropped: u64,
    /// Open model: how late the first request of an iteration was sent (µs).
    pub lag: Histogram<u64>,
    /// Keyed by (step index, check name).
    pub checks: BTreeMap<(usize, &'static str), CheckCount>,
    /// Free counters, e.g. `order_final_status.CONFIRMED`.
    pub counters: BTreeMap<String, u64>,
    pub interval: Duration,
    pub buckets: Vec<Bucket>,
}

impl Results {
    /// Slowest requests of one step, slowest first.
    pub fn slowest(&self, step: usize) -> Vec<SlowRequest> {
        let mut v: Vec<SlowRequest> = self.steps[step].slowest.iter().map(|r| r.0.clone()).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

/// Numbers the progress line shows; read without stopping the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub requests: u64,
    pub errors: u64,
    /// Requests in the last complete bucket divided by its width.
    pub recent_rate: f64,
    /// p99 of the last complete bucket, all steps (ms).
    pub recent_p99_ms: f64,
    pub dropped: u64,
    pub in_flight: u64,
}

/// The run's sink for samples; shared by every iteration.
pub struct Recorder {
    start: Instant,
    interval: Duration,
    step_names: Vec<String>,
    slowest: usize,
    state: Mutex<Results>,
    /// Iterations running now (open model's concurrency bound reads it).
    pub in_flight: AtomicU64,
    metrics: Option<Arc<Metrics>>,
}

/// A histogram of microseconds up to an hour, 3 significant digits.
pub(crate) fn hist_u64() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// A per-bucket histogram, 2 significant digits; auto-resizing, so a bucket
/// only grows to the largest latency it saw.
pub(crate) fn hist_u32() -> Histogram<u32> {
    Histogram::new(2).expect("static histogram precision is valid")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_MICROS)
}

impl Recorder {
    /// A recorder for a run starting at `start`, with `interval`-wide time buckets.
    pub fn new(start: Instant, interval: Duration, step_names: Vec<String>, slowest: usize, metrics: Option<Arc<Metrics>>) -> Recorder {
        let step = || StepStats {
            latency: hist_u64(),
            outcomes: [0; 7],
            statuses: BTreeMap::new(),
            slowest: BinaryHeap::new(),
            error_examples: BTreeMap::new(),
        };
        let results = Results {
            step_names: step_names.clone(),
            steps: step_names.iter().map(|_| step()).collect(),
            iterations: hist_u64(),
            iterations_completed: 0,
            iterations_failed: 0,
            iterations_started: 0,
            dropped: 0,
            lag: hist_u64(),
            checks: BTreeMap::new(),
            counters: BTreeMap::new(),
            interval,
            buckets: Vec::new(),
        };
        Recorder { start, interval, step_names, slowest, state: Mutex::new(results), in_flight: AtomicU64::new(0), metrics }
    }

    /// The run's start instant (time zero of the report).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Step names, indexed as in [`Sample::step`].
    pub fn step_names(&self) -> &[String] {
        &self.step_names
    }

    fn bucket_index(&self, at: Instant) -> usize {
        let since = at.saturating_duration_since(self.start);
        (since.as_nanos() / self.interval.as_nanos().max(1)) as usize
    }

    fn bucket<'a>(&self, st: &'a mut Results, idx: usize) -> &'a mut Bucket {
        let n = self.step_names.len();
        while st.buckets.len() <= idx {
            st.buckets.push(Bucket { steps: (0..n).map(|_| (hist_u32(), 0)).collect(), iterations_started: 0, dropped: 0 });
        }
        &mut st.buckets[idx]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Results> {
        // A panic while holding the lock cannot leave the counters torn in a
        // way that matters for a report, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one request; `detail` is kept as the example message for a failure class.
    pub fn record(&self, s: &Sample, detail: Option<&str>) {
        let us = micros(s.latency);
        if let Some(m) = &self.metrics {
            m.observe(s.step, s.outcome, s.latency, s.trace_id);
        }
        let b = self.bucket_index(s.finished);
        let at_s_millis = s.finished.saturating_duration_since(self.start).as_millis() as u64;
        let is_error = s.outcome != Outcome::Success;
        let mut st = self.lock();
        let step = &mut st.steps[s.step];
        step.latency.saturating_record(us);
        step.outcomes[s.outcome.index()] += 1;
        if let Some(code) = s.status {
            *step.statuses.entry(code).or_insert(0) += 1;
        }
        if is_error && let Some(d) = detail {
            step.error_examples.entry(s.outcome).or_insert_with(|| d.chars().take(300).collect());
        }
        if self.slowest > 0 {
            let entry =
                SlowRequest { latency_us: us, step: s.step, trace_id: s.trace_id, status: s.status, outcome: s.outcome, at_s_millis };
            if step.slowest.len() == self.slowest && step.slowest.peek().is_some_and(|min| min.0.latency_us < us) {
                step.slowest.pop();
            }
            if step.slowest.len() < self.slowest {
                step.slowest.push(Reverse(entry));
            }
        }
        let (h, errs) = &mut self.bucket(&mut st, b).steps[s.step];
        // `record`, not `saturating_record`: the latter clamps instead of growing an auto-resizing histogram.
        let _ = h.record(us);
        *errs += u64::from(is_error);
    }

    /// An iteration started `lag` after its intended start.
    pub fn iteration_started(&self, intended: Instant, lag: Option<Duration>) {
        let b = self.bucket_index(intended);
        let mut st = self.lock();
        st.iterations_started += 1;
        if let Some(l) = lag {
            st.lag.saturating_record(micros(l));
        }
        self.bucket(&mut st, b).iterations_started += 1;
    }

    /// An iteration ended; `duration` from its intended start.
    pub fn iteration_finished(&self, duration: Duration, failed: bool) {
        let mut st = self.lock();
        st.iterations.saturating_record(micros(duration));
        st.iterations_completed += 1;
        st.iterations_failed += u64::from(failed);
    }

    /// The open model could not start an iteration (max in flight reached).
    pub fn dropped(&self, intended: Instant) {
        if let Some(m) = &self.metrics {
            m.dropped();
        }
        let b = self.bucket_index(intended);
        let mut st = self.lock();
        st.dropped += 1;
        self.bucket(&mut st, b).dropped += 1;
    }

    /// Records a named check of a step.
    pub fn check(&self, step: usize, name: &'static str, passed: bool) {
        let mut st = self.lock();
        let c = st.checks.entry((step, name)).or_default();
        if passed {
            c.passes += 1;
        } else {
            c.fails += 1;
        }
    }

    /// Adds one to a free counter (e.g. final order states).
    pub fn count(&self, key: &str) {
        let mut st = self.lock();
        match st.counters.get_mut(key) {
            Some(v) => *v += 1,
            None => drop(st.counters.insert(key.to_string(), 1)),
        }
    }

    /// Current totals and the last complete bucket, for the progress line.
    pub fn live(&self, now: Instant) -> Live {
        let current = self.bucket_index(now);
        let st = self.lock();
        let mut live = Live {
            requests: st.steps.iter().map(StepStats::requests).sum(),
            errors: st.steps.iter().map(StepStats::errors).sum(),
            dropped: st.dropped,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            ..Live::default()
        };
        if let Some(b) = current.checked_sub(1).and_then(|i| st.buckets.get(i)) {
            let merged = b.merged();
            live.recent_rate = merged.len() as f64 / self.interval.as_secs_f64();
            if !merged.is_empty() {
                live.recent_p99_ms = merged.value_at_quantile(0.99) as f64 / 1000.0;
            }
        }
        live
    }

    /// Everything recorded so far; the recorder stays usable (late samples
    /// of aborted iterations are simply not in the report).
    pub fn snapshot(&self) -> Results {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rec: &Recorder, step: usize, ms: u64, outcome: Outcome, id: u128) -> Sample {
        Sample {
            step,
            latency: Duration::from_millis(ms),
            finished: rec.start() + Duration::from_millis(ms),
            outcome,
            status: Some(200),
            trace_id: TraceId(id),
        }
    }

    #[test]
    fn keeps_the_slowest_and_counts_outcomes() {
        let rec = Recorder::new(Instant::now(), Duration::from_secs(1), vec!["a".into(), "b".into()], 3, None);
        for i in 1..=100u64 {
            let o = if i % 10 == 0 { Outcome::Http5xx } else { Outcome::Success };
            rec.record(&sample(&rec, 0, i, o, i as u128), Some("boom"));
        }
        rec.record(&sample(&rec, 1, 5, Outcome::Timeout, 999), None);
        let r = rec.snapshot();
        let slow: Vec<u64> = r.slowest(0).iter().map(|s| s.latency_us / 1000).collect();
        assert_eq!(slow, vec![100, 99, 98]);
        assert_eq!(r.steps[0].outcomes[Outcome::Http5xx.index()], 10);
        assert_eq!(r.steps[0].outcomes[Outcome::Success.index()], 90);
        assert_eq!(r.steps[1].outcomes[Outcome::Timeout.index()], 1);
        assert_eq!(r.steps[0].error_examples.get(&Outcome::Http5xx).map(String::as_str), Some("boom"));
        let p50 = r.steps[0].latency.value_at_quantile(0.5) as f64 / 1000.0;
        assert!((p50 - 50.0).abs() < 0.1, "{p50}");
        // Every sample ended within the first 1 s bucket.
        assert_eq!(r.buckets.len(), 1);
        assert_eq!(r.buckets[0].steps[0].0.len(), 100);
        let bucket_p50 = r.buckets[0].steps[0].0.value_at_quantile(0.5) as f64 / 1000.0;
        assert!((bucket_p50 - 50.0).abs() < 1.0, "bucket histograms grow to hold the values: {bucket_p50}");
    }
}
