//! Property test: random sequences of calls, outcomes, cancellations and clock
//! moves give the same decisions and states as a small reference model written
//! independently of the implementation, and the listener sees exactly the
//! model's transitions.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasshouse_platform::breaker::{BreakerConfig, BreakerState, CircuitBreaker, FailurePolicy, ManualClock, Permit, StateChange};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Succeed(usize),
    Fail(usize),
    Abandon(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        3 => any::<usize>().prop_map(Op::Succeed),
        3 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Abandon),
        2 => (0u64..300).prop_map(Op::Advance),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    let policy = prop_oneof![
        (1u32..5).prop_map(|threshold| FailurePolicy::Consecutive { threshold }),
        (1u32..5, 1u64..400).prop_map(|(threshold, w)| FailurePolicy::Window { threshold, window: Duration::from_millis(w) }),
    ];
    (policy, 1u64..300, 1u32..4).prop_map(|(policy, open, trials)| BreakerConfig {
        policy,
        open_for: Duration::from_millis(open),
        half_open_trials: trials,
    })
}

/// The reference: time in ms, states as plain data, permits tagged with the
/// "epoch" (number of transitions so far) they were issued in.
struct Model {
    cfg: BreakerConfig,
    now: u64,
    state: BreakerState,
    epoch: u64,
    consecutive: u32,
    failures_at: Vec<u64>,
    open_until: u64,
    in_flight: u32,
    successes: u32,
    transitions: Vec<(BreakerState, BreakerState)>,
}

impl Model {
    fn new(cfg: BreakerConfig) -> Self {
        Model {
            cfg,
            now: 0,
            state: BreakerState::Closed,
            epoch: 0,
            consecutive: 0,
            failures_at: vec![],
            open_until: 0,
            in_flight: 0,
            successes: 0,
            transitions: vec![],
        }
    }

    fn go(&mut self, to: BreakerState) {
        self.transitions.push((self.state, to));
        self.state = to;
        self.epoch += 1;
        self.consecutive = 0;
        self.failures_at.clear();
        self.in_flight = 0;
        self.successes = 0;
        if to == BreakerState::Open {
            self.open_until = self.now + self.cfg.open_for.as_millis() as u64;
        }
    }

    /// Some(epoch) if allowed.
    fn acquire(&mut self) -> Option<u64> {
        if self.state == BreakerState::Open {
            if self.now < self.open_until {
                return None;
            }
            self.go(BreakerState::HalfOpen);
        }
        match self.state {
            BreakerState::Closed => Some(self.epoch),
            BreakerState::HalfOpen if self.in_flight + self.successes < self.cfg.half_open_trials => {
                self.in_flight += 1;
                Some(self.epoch)
            }
            _ => None,
        }
    }

    fn report(&mut self, epoch: u64, outcome: Option<bool>) {
        if epoch != self.epoch {
            return;
        }
        match self.state {
            BreakerState::Closed => match outcome {
                Some(true) => self.consecutive = 0,
                Some(false) => match self.cfg.policy {
                    FailurePolicy::Consecutive { threshold } => {
                        self.consecutive += 1;
                        if self.consecutive >= threshold {
                            self.go(BreakerState::Open);
                        }
                    }
                    FailurePolicy::Window { threshold, window } => {
                        let w = window.as_millis() as u64;
                        let now = self.now;
                        self.failures_at.retain(|t| now - t < w);
                        self.failures_at.push(now);
                        if self.failures_at.len() as u32 >= threshold {
                            self.go(BreakerState::Open);
                        }
                    }
                },
                None => {}
            },
            BreakerState::HalfOpen => {
                self.in_flight -= 1;
                match outcome {
                    Some(true) => {
                        self.successes += 1;
                        if self.successes >= self.cfg.half_open_trials {
                            self.go(BreakerState::Closed);
                        }
                    }
                    Some(false) => self.go(BreakerState::Open),
                    None => {}
                }
            }
            BreakerState::Open => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn implementation_matches_the_model(cfg in config(), ops in prop::collection::vec(op(), 1..120)) {
        let clock = Arc::new(ManualClock::new());
        let seen: Arc<Mutex<Vec<(BreakerState, BreakerState)>>> = Arc::default();
        let sink = seen.clone();
        let breaker = CircuitBreaker::new("peer", cfg)
            .with_clock(clock.clone())
            .on_state_change(move |c: &StateChange<'_>| sink.lock().unwrap().push((c.from, c.to)));
        let mut model = Model::new(cfg);
        let mut permits: Vec<(Permit<'_>, u64)> = Vec::new();

        for op in ops {
            match op {
                Op::Acquire => {
                    let real = breaker.try_acquire();
                    let expected = model.acquire();
                    prop_assert_eq!(real.is_ok(), expected.is_some(), "acquire in {:?}", model.state);
                    if let (Ok(p), Some(epoch)) = (real, expected) {
                        permits.push((p, epoch));
                    }
                }
                Op::Succeed(i) | Op::Fail(i) | Op::Abandon(i) if !permits.is_empty() => {
                    let (permit, epoch) = permits.swap_remove(i % permits.len());
                    let outcome = match op {
                        Op::Succeed(_) => { permit.success(); Some(true) }
                        Op::Fail(_) => { permit.failure(); Some(false) }
                        _ => { drop(permit); None }
                    };
                    model.report(epoch, outcome);
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    model.now += ms;
                }
                _ => {}
            }
            prop_assert_eq!(breaker.state(), model.state);
        }
        drop(permits);
        prop_assert_eq!(&*seen.lock().unwrap(), &model.transitions);
    }
}
