//! Every breaker state change is a `tracing` event with the peer and both
//! states.
//!
//! Alone in its own test binary on purpose: tracing caches per-callsite
//! interest globally, and a concurrent test touching the same callsites
//! without a subscriber could make the scoped subscriber here miss events.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasshouse_platform::breaker::{BreakerConfig, CircuitBreaker, FailurePolicy, ManualClock};

fn consecutive(threshold: u32, open_ms: u64, trials: u32) -> BreakerConfig {
    BreakerConfig { policy: FailurePolicy::Consecutive { threshold }, open_for: Duration::from_millis(open_ms), half_open_trials: trials }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_state_change_is_logged_with_peer_and_states() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, || {
        let clock = Arc::new(ManualClock::new());
        let b = CircuitBreaker::new("inventory", consecutive(1, 100, 1)).with_clock(clock.clone());
        b.try_acquire().unwrap().failure();
        clock.advance(Duration::from_millis(100));
        b.try_acquire().unwrap().success();
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 3, "one event per change: {logs}");
    assert!(lines[0].contains("WARN") && lines[0].contains("circuit breaker opened"), "{logs}");
    for (line, (from, to)) in lines.iter().zip([("closed", "open"), ("open", "half_open"), ("half_open", "closed")]) {
        assert!(line.contains("peer=inventory"), "{line}");
        assert!(line.contains(&format!("from=\"{from}\"")) && line.contains(&format!("to=\"{to}\"")), "{line}");
    }
}
