//! The circuit breaker's state machine, on a manual clock (no sleeps).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasshouse_platform::breaker::{BreakerConfig, BreakerState, CallError, CircuitBreaker, FailurePolicy, ManualClock, StateChange};

type Log = Arc<Mutex<Vec<(BreakerState, BreakerState)>>>;

fn breaker(config: BreakerConfig) -> (CircuitBreaker, Arc<ManualClock>, Log) {
    let clock = Arc::new(ManualClock::new());
    let log: Log = Arc::default();
    let sink = log.clone();
    let b = CircuitBreaker::new("inventory", config).with_clock(clock.clone()).on_state_change(move |c: &StateChange<'_>| {
        assert_eq!(c.peer, "inventory");
        sink.lock().unwrap().push((c.from, c.to));
    });
    (b, clock, log)
}

fn consecutive(threshold: u32, open_ms: u64, trials: u32) -> BreakerConfig {
    BreakerConfig { policy: FailurePolicy::Consecutive { threshold }, open_for: Duration::from_millis(open_ms), half_open_trials: trials }
}

fn fail(b: &CircuitBreaker) {
    b.try_acquire().expect("allowed").failure();
}

fn succeed(b: &CircuitBreaker) {
    b.try_acquire().expect("allowed").success();
}

use BreakerState::{Closed, HalfOpen, Open};

#[test]
fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
    let (b, _clock, log) = breaker(consecutive(3, 1000, 1));
    fail(&b);
    fail(&b);
    succeed(&b);
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), Closed, "2 + 2 failures with a success between");
    fail(&b);
    assert_eq!(b.state(), Open);
    assert_eq!(*log.lock().unwrap(), vec![(Closed, Open)]);
}

#[test]
fn open_refuses_until_the_pause_is_over_then_probes() {
    let (b, clock, log) = breaker(consecutive(1, 1000, 1));
    fail(&b);
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(refused.state, Open);
    assert_eq!(refused.retry_after, Duration::from_millis(1000));
    assert!(refused.to_string().contains("inventory"));

    clock.advance(Duration::from_millis(999));
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Duration::from_millis(1));
    assert_eq!(b.state(), Open);

    clock.advance(Duration::from_millis(1));
    let probe = b.try_acquire().expect("first probe after the pause");
    assert_eq!(b.state(), HalfOpen);
    // Only one probe at a time with half_open_trials = 1.
    let busy = b.try_acquire().unwrap_err();
    assert_eq!(busy.state, HalfOpen);
    probe.success();
    assert_eq!(b.state(), Closed);
    assert_eq!(*log.lock().unwrap(), vec![(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]);
}

#[test]
fn a_failed_probe_reopens_for_a_full_pause() {
    let (b, clock, log) = breaker(consecutive(1, 500, 1));
    fail(&b);
    clock.advance(Duration::from_millis(700));
    fail(&b); // the probe
    assert_eq!(b.state(), Open);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Duration::from_millis(500));
    assert_eq!(*log.lock().unwrap(), vec![(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]);
}

#[test]
fn several_trials_must_all_succeed_to_close() {
    let (b, clock, _log) = breaker(consecutive(1, 100, 3));
    fail(&b);
    clock.advance(Duration::from_millis(100));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err(), "three probes at most");
    p1.success();
    assert_eq!(b.state(), HalfOpen);
    assert!(b.try_acquire().is_err(), "a finished probe does not free a slot: 3 successes are needed in total");
    p2.success();
    p3.success();
    assert_eq!(b.state(), Closed);
}

#[test]
fn an_abandoned_probe_frees_its_slot_without_a_verdict() {
    let (b, clock, _log) = breaker(consecutive(1, 100, 1));
    fail(&b);
    clock.advance(Duration::from_millis(100));
    drop(b.try_acquire().unwrap()); // e.g. the caller's timeout dropped the future
    assert_eq!(b.state(), HalfOpen);
    succeed(&b);
    assert_eq!(b.state(), Closed);
}

#[test]
fn results_of_calls_started_in_an_earlier_state_are_ignored() {
    let (b, clock, _log) = breaker(consecutive(2, 100, 1));
    let slow = b.try_acquire().unwrap(); // started while closed
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), Open);
    clock.advance(Duration::from_millis(100));
    let probe = b.try_acquire().unwrap();
    slow.success(); // must not count as the probe's success
    assert_eq!(b.state(), HalfOpen);
    probe.failure();
    assert_eq!(b.state(), Open);
}

#[test]
fn window_policy_counts_failures_within_the_window_only() {
    let config = BreakerConfig {
        policy: FailurePolicy::Window { threshold: 3, window: Duration::from_secs(10) },
        open_for: Duration::from_secs(1),
        half_open_trials: 1,
    };
    let (b, clock, _log) = breaker(config);
    fail(&b);
    succeed(&b); // successes do not reset a window
    clock.advance(Duration::from_secs(6));
    fail(&b);
    clock.advance(Duration::from_secs(5)); // the first failure is now 11 s old
    fail(&b);
    assert_eq!(b.state(), Closed, "only 2 failures in the last 10 s");
    clock.advance(Duration::from_secs(1));
    fail(&b);
    assert_eq!(b.state(), Open, "3 failures within 10 s");
}

#[tokio::test]
async fn call_counts_err_as_failure_and_refuses_when_open() {
    let (b, _clock, _log) = breaker(consecutive(2, 1000, 1));
    let ok: Result<u32, CallError<&str>> = b.call(|| async { Ok(7) }).await;
    assert_eq!(ok.unwrap(), 7);
    for _ in 0..2 {
        let r: Result<u32, _> = b.call(|| async { Err("503") }).await;
        assert!(matches!(r, Err(CallError::Inner("503"))));
    }
    let mut ran = false;
    let r: Result<u32, CallError<&str>> = b
        .call(|| {
            ran = true;
            async { Ok(1) }
        })
        .await;
    assert!(matches!(r, Err(CallError::Open(_))));
    assert!(!ran, "an open breaker does not call the peer");
}

#[test]
fn gauge_values_match_the_metrics_contract() {
    // telemetry/METRICS.md: circuit_breaker_state 0 closed, 1 half-open, 2 open.
    assert_eq!([Closed, HalfOpen, Open].map(BreakerState::gauge_value), [0, 1, 2]);
}

#[test]
fn settings_deserialize_and_bad_values_are_refused() {
    let c: BreakerConfig = serde_json::from_str(r#"{"failure_threshold": 4, "open_seconds": 2.5}"#).unwrap();
    assert_eq!(c, consecutive(4, 2500, 1));
    let c: BreakerConfig =
        serde_json::from_str(r#"{"failure_threshold": 10, "window_seconds": 30, "open_seconds": 5, "half_open_trials": 2}"#).unwrap();
    assert_eq!(c.policy, FailurePolicy::Window { threshold: 10, window: Duration::from_secs(30) });
    assert_eq!(c.half_open_trials, 2);
    for (bad, says) in [
        (r#"{"failure_threshold": 0, "open_seconds": 1}"#, "failure_threshold"),
        (r#"{"failure_threshold": 1, "open_seconds": 1, "half_open_trials": 0}"#, "half_open_trials"),
        (r#"{"failure_threshold": 1, "open_seconds": -1}"#, "open_seconds"),
        (r#"{"failure_threshold": 1, "window_seconds": 0, "open_seconds": 1}"#, "window_seconds"),
        (r#"{"failure_threshold": 1, "open_second": 1}"#, "open_second"),
    ] {
        let err = serde_json::from_str::<BreakerConfig>(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn concurrent_callers_see_a_consistent_machine() {
    // Threshold 1 so the first failure (thread 0, i = 0) opens for sure and
    // the 200 ms of clock each thread adds move it on: the assertions below
    // hold for every interleaving.
    let (b, clock, log) = breaker(consecutive(1, 10, 2));
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (b, clock) = (&b, &clock);
            s.spawn(move || {
                for i in 0..2_000u64 {
                    if let Ok(p) = b.try_acquire() {
                        if (i * 7 + t) % 3 == 0 { p.failure() } else { p.success() }
                    }
                    if i % 50 == 0 {
                        clock.advance(Duration::from_millis(5));
                    }
                }
            });
        }
    });
    let log = log.lock().unwrap();
    assert!(log.len() > 2, "the workload should move the breaker around: {log:?}");
    assert_eq!(log[0].0, Closed);
    for pair in log.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "notifications form one chain: {pair:?}");
    }
    assert_eq!(log.last().unwrap().1, b.state());
}
