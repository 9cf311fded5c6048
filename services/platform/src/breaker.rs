//! Circuit breaker: stop calling a peer that keeps failing, probe it again
//! after a pause, and let calls through once it answers.
//!
//! States (the numbers are the `circuit_breaker_state` gauge values of
//! `telemetry/METRICS.md`):
//! - **closed (0)**: calls pass; failures are counted by the [`FailurePolicy`]
//!   (N consecutive failures, or N failures within a rolling time window).
//!   Reaching the threshold opens the breaker.
//! - **open (2)**: calls are refused at once with [`BreakerOpen`] (which says
//!   how long to wait: the `Retry-After` of a 503) until `open_for` has passed.
//! - **half-open (1)**: up to `half_open_trials` calls are let through as
//!   probes. One failure re-opens (for another `open_for`); `half_open_trials`
//!   successes close.
//!
//! Time comes from a [`Clock`] so tests drive it by hand ([`ManualClock`]) and
//! never sleep. Every state change is logged (`tracing`, target
//! `glasshouse_platform::breaker`) and passed to the registered
//! [`StateListener`]s, which is where a service sets its gauge.
//!
//! Usage: `let permit = breaker.try_acquire()?;` then `permit.success()` or
//! `permit.failure()` once the outcome is known (the caller decides what counts
//! as a failure: a 5xx or timeout is, a 404 is not). [`CircuitBreaker::call`]
//! wraps that for a future whose `Err` always means failure.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A source of monotonic time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to, for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock stopped at an arbitrary instant.
    pub fn new() -> Self {
        Self { start: Instant::now(), offset: Mutex::new(Duration::ZERO) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed,
    /// A few probe calls pass.
    HalfOpen,
    /// Calls are refused.
    Open,
}

impl BreakerState {
    /// `closed`, `half_open` or `open`: for log fields.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The `circuit_breaker_state` gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a closed breaker opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// After `threshold` failures in a row; any success resets the count.
    /// Good for low-traffic peers, where a window would rarely fill.
    Consecutive {
        /// Failures in a row that open the breaker (at least 1).
        threshold: u32,
    },
    /// After `threshold` failures within the last `window`, whatever the
    /// successes in between. Good for busy peers that fail intermittently,
    /// where a single success would keep resetting a consecutive count.
    Window {
        /// Failures within `window` that open the breaker (at least 1).
        threshold: u32,
        /// Length of the rolling window.
        window: Duration,
    },
}

/// Breaker tuning. Deserializes from settings as
/// `{failure_threshold, window_seconds (optional: absent = consecutive),
/// open_seconds, half_open_trials}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BreakerSettings")]
pub struct BreakerConfig {
    /// What opens the breaker.
    pub policy: FailurePolicy,
    /// How long it stays open before probing.
    pub open_for: Duration,
    /// Probe calls allowed at once in half-open, and successes needed to close.
    pub half_open_trials: u32,
}

impl Default for BreakerConfig {
    /// 5 consecutive failures, 5 s open, 1 probe.
    fn default() -> Self {
        Self { policy: FailurePolicy::Consecutive { threshold: 5 }, open_for: Duration::from_secs(5), half_open_trials: 1 }
    }
}

impl BreakerConfig {
    /// Refuses settings that would make the breaker useless or stuck: zero
    /// thresholds, zero trials (half-open would never close), a zero window.
    pub fn validate(&self) -> Result<(), String> {
        let threshold = match self.policy {
            FailurePolicy::Consecutive { threshold } => threshold,
            FailurePolicy::Window { threshold, window } => {
                if window.is_zero() {
                    return Err("window_seconds must be greater than 0".into());
                }
                threshold
            }
        };
        if threshold == 0 {
            return Err("failure_threshold must be at least 1".into());
        }
        if self.half_open_trials == 0 {
            return Err("half_open_trials must be at least 1".into());
        }
        Ok(())
    }
}

/// The settings-file shape of [`BreakerConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerSettings {
    failure_threshold: u32,
    #[serde(default)]
    window_seconds: Option<f64>,
    open_seconds: f64,
    #[serde(default = "one")]
    half_open_trials: u32,
}

fn one() -> u32 {
    1
}

fn seconds(name: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{name} must be a non-negative number of seconds, got {s}"))
}

impl TryFrom<BreakerSettings> for BreakerConfig {
    type Error = String;
    fn try_from(s: BreakerSettings) -> Result<Self, String> {
        let policy = match s.window_seconds {
            None => FailurePolicy::Consecutive { threshold: s.failure_threshold },
            Some(w) => FailurePolicy::Window { threshold: s.failure_threshold, window: seconds("window_seconds", w)? },
        };
        let config = BreakerConfig { policy, open_for: seconds("open_seconds", s.open_seconds)?, half_open_trials: s.half_open_trials };
        config.validate()?;
        Ok(config)
    }
}

/// One state change, as passed to listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange<'a> {
    /// The peer the breaker guards (the `peer` metric label).
    pub peer: &'a str,
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
}

/// Told about every state change, in order.
///
/// Called while the breaker's lock is held, which is what keeps the order of
/// notifications equal to the order of changes (so a gauge never ends on a
/// stale value). Keep it quick (set a gauge, write a log line) and do not call
/// back into the same breaker: that would deadlock.
pub trait StateListener: Send + Sync {
    /// One change happened.
    fn on_state_change(&self, change: &StateChange<'_>);
}

impl<F: Fn(&StateChange<'_>) + Send + Sync> StateListener for F {
    fn on_state_change(&self, change: &StateChange<'_>) {
        self(change);
    }
}

/// A call refused because the breaker is open (or half-open with all probe
/// slots taken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker for {peer} is {state}; retry in {retry_after:?}")]
pub struct BreakerOpen {
    /// The peer.
    pub peer: String,
    /// `open` or `half_open`.
    pub state: BreakerState,
    /// Time until the breaker will let a probe through (zero in half-open:
    /// a slot frees as soon as a probe finishes).
    pub retry_after: Duration,
}

/// The outcome of [`CircuitBreaker::call`].
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// Not attempted: the breaker refused.
    #[error(transparent)]
    Open(BreakerOpen),
    /// Attempted and failed (and counted as a failure).
    #[error(transparent)]
    Inner(E),
}

#[derive(Debug)]
enum State {
    Closed {
        consecutive: u32,
        /// Failure times within the window (Window policy only), oldest first;
        /// never longer than the threshold.
        recent: VecDeque<Instant>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
        successes: u32,
    },
}

impl State {
    fn closed() -> Self {
        State::Closed { consecutive: 0, recent: VecDeque::new() }
    }

    fn public(&self) -> BreakerState {
        match self {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped on every transition; a permit from an earlier generation
    /// reports into a state that no longer exists and is ignored.
    generation: u64,
}

/// A circuit breaker for one peer. Share it (`Arc`) between all callers of
/// that peer; every method takes `&self`.
pub struct CircuitBreaker {
    peer: String,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    listeners: Vec<Arc<dyn StateListener>>,
    // A std mutex: the critical sections are a few integer updates and never
    // await, so an async mutex would only add cost.
    inner: Mutex<Inner>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("peer", &self.peer)
            .field("config", &self.config)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A closed breaker for `peer` on the system clock. `config` should have
    /// passed [`BreakerConfig::validate`] (deserialized configs have); zero
    /// values are raised to 1 rather than producing a breaker that never closes.
    pub fn new(peer: impl Into<String>, config: BreakerConfig) -> Self {
        let mut config = config;
        config.half_open_trials = config.half_open_trials.max(1);
        config.policy = match config.policy {
            FailurePolicy::Consecutive { threshold } => FailurePolicy::Consecutive { threshold: threshold.max(1) },
            FailurePolicy::Window { threshold, window } => FailurePolicy::Window { threshold: threshold.max(1), window },
        };
        Self {
            peer: peer.into(),
            config,
            clock: Arc::new(SystemClock),
            listeners: Vec::new(),
            inner: Mutex::new(Inner { state: State::closed(), generation: 0 }),
        }
    }

    /// Uses `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Registers a listener for state changes (see [`StateListener`] for the
    /// rules). Listeners are not told the initial `closed` state: set the
    /// gauge to 0 when creating the breaker.
    pub fn on_state_change(mut self, listener: impl StateListener + 'static) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// The guarded peer's name.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The configuration in force.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state. An open breaker whose pause is over still reports
    /// `Open` until the next [`try_acquire`](Self::try_acquire) moves it to
    /// half-open: the transition happens when a call wants through.
    pub fn state(&self) -> BreakerState {
        self.lock().state.public()
    }

    /// Asks to make one call. `Ok` carries a [`Permit`] on which to report
    /// the outcome; `Err` means do not call the peer.
    pub fn try_acquire(&self) -> Result<Permit<'_>, BreakerOpen> {
        let mut inner = self.lock();
        let now = self.clock.now();
        if let State::Open { until } = inner.state {
            if now < until {
                return Err(self.refusal(BreakerState::Open, until - now));
            }
            self.transition(&mut inner, State::HalfOpen { in_flight: 0, successes: 0 });
        }
        let generation = inner.generation;
        match &mut inner.state {
            State::Closed { .. } => Ok(Permit::new(self, generation)),
            State::HalfOpen { in_flight, successes } => {
                if *in_flight + *successes < self.config.half_open_trials {
                    *in_flight += 1;
                    Ok(Permit::new(self, generation))
                } else {
                    Err(self.refusal(BreakerState::HalfOpen, Duration::ZERO))
                }
            }
            // Unreachable: handled above; refusing is the safe answer.
            State::Open { until } => {
                let wait = until.saturating_duration_since(now);
                Err(self.refusal(BreakerState::Open, wait))
            }
        }
    }

    /// Runs `call` if the breaker allows it, counting `Ok` as success and
    /// `Err` as failure. If the returned future is dropped before it finishes
    /// (a caller's timeout), the attempt counts as neither.
    pub async fn call<T, E, F, Fut>(&self, call: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(CallError::Open)?;
        match call().await {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.failure();
                Err(CallError::Inner(e))
            }
        }
    }

    fn refusal(&self, state: BreakerState, retry_after: Duration) -> BreakerOpen {
        BreakerOpen { peer: self.peer.clone(), state, retry_after }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking listener must not wedge the breaker for every caller;
        // the state itself is always consistent between statements.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, generation: u64, outcome: Outcome) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let now = self.clock.now();
        let next = match &mut inner.state {
            State::Closed { consecutive, recent } => match (outcome, self.config.policy) {
                (Outcome::Success, _) => {
                    *consecutive = 0;
                    None
                }
                (Outcome::Failure, FailurePolicy::Consecutive { threshold }) => {
                    *consecutive += 1;
                    (*consecutive >= threshold).then_some(self.open_state(now))
                }
                (Outcome::Failure, FailurePolicy::Window { threshold, window }) => {
                    while recent.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
                        recent.pop_front();
                    }
                    recent.push_back(now);
                    (recent.len() >= threshold as usize).then_some(self.open_state(now))
                }
                (Outcome::Abandoned, _) => None,
            },
            State::HalfOpen { in_flight, successes } => {
                *in_flight = in_flight.saturating_sub(1);
                match outcome {
                    Outcome::Success => {
                        *successes += 1;
                        (*successes >= self.config.half_open_trials).then(State::closed)
                    }
                    Outcome::Failure => Some(self.open_state(now)),
                    Outcome::Abandoned => None,
                }
            }
            State::Open { .. } => None,
        };
        if let Some(next) = next {
            self.transition(&mut inner, next);
        }
    }

    fn open_state(&self, now: Instant) -> State {
        State::Open { until: now + self.config.open_for }
    }

    fn transition(&self, inner: &mut Inner, next: State) {
        let from = inner.state.public();
        let to = next.public();
        inner.state = next;
        inner.generation += 1;
        if to == BreakerState::Open {
            tracing::warn!(
                peer = %self.peer,
                from = from.as_str(),
                to = to.as_str(),
                open_for_ms = self.config.open_for.as_millis() as u64,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                peer = %self.peer,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            );
        }
        let change = StateChange { peer: &self.peer, from, to };
        for listener in &self.listeners {
            listener.on_state_change(&change);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Success,
    Failure,
    Abandoned,
}

/// Permission for one call. Report the outcome with [`Permit::success`] or
/// [`Permit::failure`]; dropping it unreported (the call was cancelled)
/// frees its half-open probe slot without a verdict.
#[must_use = "report the call's outcome with success() or failure()"]
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, generation: u64) -> Self {
        Self { breaker, generation, reported: false }
    }

    /// The peer answered as it should.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.generation, Outcome::Success);
    }

    /// The peer failed (5xx, timeout, connection refused...).
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.generation, Outcome::Failure);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.generation, Outcome::Abandoned);
        }
    }
}
