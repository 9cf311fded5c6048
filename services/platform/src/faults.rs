//! Fault injection for demos and chaos tests, once for every service: flags
//! in a JSON file the service re-reads when it changes (the OpenFeature/flagd
//! idea: flags live outside the binary and flip at run time, without a
//! restart).
//!
//! A service declares its flags ([`FlagSpec`]: a name and a [`FlagKind`]),
//! gets a cheap [`Faults`] handle, and asks it at the point of the fault:
//! [`Faults::latency`], [`Faults::fails`] (a random draw against a rate),
//! [`Faults::is_on`]. [`crate::app::ServiceBuilder::faults`] runs the
//! [`FaultWatcher`] that keeps the handle in step with the file. The outbox
//! relay's own flags ([`RELAY_FLAGS`]) are read by [`crate::outbox::Relay`]
//! when its [`crate::outbox::RelayConfig::faults`] is set.
//!
//! # File format
//! A JSON object; every key optional (absent = off), unknown keys refused
//! with an error naming the key, an absent file = every flag off:
//!
//! ```json
//! {"relay_paused": true, "kafka_produce_error_rate": 0.5}
//! ```
//!
//! - [`FlagKind::LatencyMs`] (`*_latency_ms`): a whole number of milliseconds,
//!   `0..=60000` ([`MAX_LATENCY_MS`]): a typo must not park work for hours.
//! - [`FlagKind::Rate`] (`*_rate`): a probability, `0.0..=1.0`.
//! - [`FlagKind::Switch`]: `true` or `false`.
//!
//! # Watching
//! The file is polled every `faults.poll_ms` (default 1 s). An invalid file is
//! logged with the reason and the previous flags stay; every change is logged
//! with its old and new value and exported as `fault_flag_active{flag}` (1
//! while the flag is non-zero / on).
//!
//! # Where the file is
//! A flag written to a file the service does not read is a fault silently not
//! injected, so the path never depends on the working directory: an absolute
//! `faults.file` is used as is, a relative one is resolved against the stack
//! home, `$GLASSHOUSE_HOME` (which `deploy/local` sets; the local configs say
//! `etc/<service>/faults.json`). A relative path with no (or a relative)
//! `GLASSHOUSE_HOME` stops the start with an error naming both fixes. The
//! absolute path is logged at start and exported as the info metric
//! `fault_flags_file{path}` = 1.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use glasshouse_telemetry::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use tokio::sync::watch;

/// The stack home a relative `faults.file` is resolved against.
pub const HOME_VAR: &str = "GLASSHOUSE_HOME";

/// Longest latency a flag may inject, milliseconds.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// Switch: while on, the outbox relay publishes nothing (its loop keeps
/// running; the events wait in the outbox and go out once it is off).
pub const RELAY_PAUSED: &str = "relay_paused";

/// Rate: each publish of the outbox relay fails as a failed produce would
/// (the row stays unsent and is retried with the relay's backoff).
pub const KAFKA_PRODUCE_ERROR_RATE: &str = "kafka_produce_error_rate";

/// The outbox relay's flags, for every service that runs a relay.
pub const RELAY_FLAGS: [FlagSpec; 2] = [FlagSpec::switch(RELAY_PAUSED), FlagSpec::rate(KAFKA_PRODUCE_ERROR_RATE)];

/// `faults:` — where a service's flag file is and how often it is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// The JSON flag file. Absolute, or relative to the stack home
    /// `$GLASSHOUSE_HOME` — never to the working directory; a relative path
    /// without `GLASSHOUSE_HOME` stops the start (see [`resolve_flag_file`]).
    /// No path (or an empty one) means every flag is off; so does a missing file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// How often the file is re-read, milliseconds (at least 10).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    1000
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self { file: None, poll_ms: default_poll_ms() }
    }
}

/// What a flag's value is, and so how it is checked and when it is "active".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// Milliseconds added before the work, `0..=`[`MAX_LATENCY_MS`].
    LatencyMs,
    /// The probability that the work fails, `0.0..=1.0`.
    Rate,
    /// On or off.
    Switch,
}

/// One flag a service reads: its name in the file and in the `flag` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagSpec {
    pub name: &'static str,
    pub kind: FlagKind,
}

impl FlagSpec {
    pub const fn latency_ms(name: &'static str) -> Self {
        Self { name, kind: FlagKind::LatencyMs }
    }

    pub const fn rate(name: &'static str) -> Self {
        Self { name, kind: FlagKind::Rate }
    }

    pub const fn switch(name: &'static str) -> Self {
        Self { name, kind: FlagKind::Switch }
    }
}

/// A flag's value; the variant matches its spec's [`FlagKind`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlagValue {
    LatencyMs(u64),
    Rate(f64),
    Switch(bool),
}

impl FlagValue {
    /// The "no fault" value of a kind.
    pub fn off(kind: FlagKind) -> Self {
        match kind {
            FlagKind::LatencyMs => Self::LatencyMs(0),
            FlagKind::Rate => Self::Rate(0.0),
            FlagKind::Switch => Self::Switch(false),
        }
    }

    /// Whether it injects anything (`fault_flag_active` = 1).
    pub fn is_active(self) -> bool {
        match self {
            Self::LatencyMs(ms) => ms > 0,
            Self::Rate(r) => r > 0.0,
            Self::Switch(on) => on,
        }
    }

    /// Reads and range-checks `value` as a `kind` flag named `name`; the
    /// error names the flag and says what it must be.
    fn parse(name: &str, kind: FlagKind, value: &serde_json::Value) -> Result<Self, String> {
        match kind {
            FlagKind::LatencyMs => match value.as_u64() {
                Some(ms) if ms <= MAX_LATENCY_MS => Ok(Self::LatencyMs(ms)),
                Some(ms) => Err(format!("{name} = {ms} is above the maximum {MAX_LATENCY_MS}")),
                None => Err(format!("{name} = {value} is not a whole number of milliseconds (0..={MAX_LATENCY_MS})")),
            },
            FlagKind::Rate => match value.as_f64() {
                Some(r) if (0.0..=1.0).contains(&r) => Ok(Self::Rate(r)),
                Some(_) | None => Err(format!("{name} = {value} is outside 0.0..=1.0")),
            },
            FlagKind::Switch => value.as_bool().map(Self::Switch).ok_or_else(|| format!("{name} = {value} is not true or false")),
        }
    }
}

impl fmt::Display for FlagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LatencyMs(ms) => write!(f, "{ms}"),
            Self::Rate(r) => write!(f, "{r}"),
            Self::Switch(on) => write!(f, "{on}"),
        }
    }
}

/// The value of every flag of a service, in its specs' order.
#[derive(Debug, Clone, PartialEq)]
struct FlagSet(Vec<FlagValue>);

impl FlagSet {
    fn off(specs: &[FlagSpec]) -> Self {
        Self(specs.iter().map(|s| FlagValue::off(s.kind)).collect())
    }

    /// Parses and range-checks a flag file's content against `specs`; the
    /// error names the bad key.
    fn parse(specs: &[FlagSpec], bytes: &[u8]) -> Result<Self, String> {
        let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not a fault flag document: {e}"))?;
        let serde_json::Value::Object(map) = doc else {
            return Err(format!("not a fault flag document: expected a JSON object of flags, found {doc}"));
        };
        let mut set = Self::off(specs);
        for (key, value) in &map {
            let Some(i) = specs.iter().position(|s| s.name == key) else {
                let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                return Err(format!("unknown fault flag `{key}` (this service reads: {})", known.join(", ")));
            };
            set.0[i] = FlagValue::parse(key, specs[i].kind, value)?;
        }
        Ok(set)
    }
}

/// The flags in force: a cheap handle shared by the code that injects
/// faults and updated by the [`FaultWatcher`].
#[derive(Clone)]
pub struct Faults {
    specs: Arc<[FlagSpec]>,
    // A std lock: read for a copy of a few numbers, never held across an await.
    current: Arc<RwLock<FlagSet>>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (spec, value) in self.specs.iter().zip(self.snapshot().0) {
            m.entry(&spec.name, &value);
        }
        m.finish()
    }
}

impl Faults {
    /// A handle over `specs`, every flag off until a watcher reads a file.
    pub fn new(specs: impl IntoIterator<Item = FlagSpec>) -> Self {
        let specs: Arc<[FlagSpec]> = specs.into_iter().collect();
        let current = Arc::new(RwLock::new(FlagSet::off(&specs)));
        Self { specs, current }
    }

    /// A handle over `specs` with the flags of `document` (the file format)
    /// set now, without a file: for tests that inject a fault directly.
    pub fn fixed(specs: impl IntoIterator<Item = FlagSpec>, document: &str) -> Result<Self, String> {
        let me = Self::new(specs);
        me.set(FlagSet::parse(&me.specs, document.as_bytes())?);
        Ok(me)
    }

    /// The flags this handle knows.
    pub fn specs(&self) -> &[FlagSpec] {
        &self.specs
    }

    /// The value of flag `name` now; `None` for a name this service does not declare.
    pub fn get(&self, name: &str) -> Option<FlagValue> {
        let i = self.specs.iter().position(|s| s.name == name)?;
        // Read in place: this runs per request and per publish, no copy of the set.
        self.current.read().unwrap_or_else(|e| e.into_inner()).0.get(i).copied()
    }

    /// The latency flag `name` asks for (zero when off, or not a latency flag).
    pub fn latency(&self, name: &str) -> Duration {
        match self.get(name) {
            Some(FlagValue::LatencyMs(ms)) => Duration::from_millis(ms),
            _ => Duration::ZERO,
        }
    }

    /// Waits the latency flag `name` asks for (returns at once when it is 0).
    pub async fn delay(&self, name: &str) {
        let d = self.latency(name);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    /// One random draw against rate flag `name`: `true` means "fail this one".
    /// A rate of 1.0 always fails, 0.0 (or an unknown name) never.
    pub fn fails(&self, name: &str) -> bool {
        match self.get(name) {
            // `random::<f64>()` is in [0, 1).
            Some(FlagValue::Rate(r)) => r > 0.0 && rand::random::<f64>() < r,
            _ => false,
        }
    }

    /// Whether flag `name` is active (a switch on, a latency or rate above 0).
    pub fn is_on(&self, name: &str) -> bool {
        self.get(name).is_some_and(FlagValue::is_active)
    }

    fn snapshot(&self) -> FlagSet {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, flags: FlagSet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = flags;
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlagLabels {
    flag: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: String,
}

/// `fault_flag_active{flag}` and `fault_flags_file{path}`, registered once
/// per process (by [`crate::app::ServiceBuilder::faults`]).
#[derive(Clone, Debug)]
pub struct FaultMetrics {
    active: Family<FlagLabels, Gauge>,
    /// An info metric: one series, value 1, naming the flag file read.
    file: Family<PathLabels, Gauge>,
}

impl FaultMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self { active: Family::default(), file: Family::default() };
        metrics.register("fault_flag_active", "1 while a fault-injection flag is non-zero", m.active.clone());
        metrics.register(
            "fault_flags_file",
            "Info: the absolute path of the fault flag file this process reads (empty: none configured, all flags off)",
            m.file.clone(),
        );
        m
    }

    fn set_flag(&self, flag: &'static str, active: bool) {
        self.active.get_or_create(&FlagLabels { flag }).set(i64::from(active));
    }

    /// Names the file read (absolute; empty when none), replacing any
    /// earlier one: the family always holds one series.
    fn set_file(&self, path: &str) {
        self.file.clear();
        self.file.get_or_create(&PathLabels { path: path.to_owned() }).set(1);
    }
}

/// The absolute path of the flag file: `file` itself when absolute, else
/// `home/file` (`home` = the value of [`HOME_VAR`]). `None` when no file is
/// configured (or the path is empty): every flag stays off. The error names
/// the setting, the variable and what to do.
pub fn resolve_flag_file(file: Option<&Path>, home: Option<&OsStr>) -> Result<Option<PathBuf>, String> {
    let Some(file) = file.filter(|f| !f.as_os_str().is_empty()) else { return Ok(None) };
    if file.is_absolute() {
        return Ok(Some(file.to_owned()));
    }
    let fix = format!("set {HOME_VAR} to the stack home (`deploy/local/stack home`) or faults.file (APP_FAULTS__FILE) to an absolute path");
    match home.filter(|h| !h.is_empty()).map(Path::new) {
        Some(h) if h.is_absolute() => Ok(Some(h.join(file))),
        Some(h) => Err(format!("faults.file {} is relative and {HOME_VAR}={} is not an absolute path: {fix}", file.display(), h.display())),
        None => Err(format!("faults.file {} is relative and {HOME_VAR} is not set to resolve it against: {fix}", file.display())),
    }
}

/// Polls the flag file and applies what changed.
///
/// Each poll reads the file (a few dozen bytes) and compares it with the last
/// version seen, rather than trusting the modification time alone: file
/// times tick coarsely, and two quick edits of the same length would
/// otherwise look like one.
pub struct FaultWatcher {
    path: Option<PathBuf>,
    poll: Duration,
    faults: Faults,
    metrics: FaultMetrics,
    /// The last content seen (`None`: no file).
    seen: Option<Vec<u8>>,
}

impl FaultWatcher {
    /// The watcher the settings ask for: `faults.file` resolved against
    /// `$GLASSHOUSE_HOME` ([`resolve_flag_file`]); an unresolvable path is an
    /// error (the service must not start ignoring its flags).
    pub fn from_settings(settings: &FaultSettings, faults: Faults, metrics: FaultMetrics) -> anyhow::Result<Self> {
        let home = std::env::var_os(HOME_VAR);
        let path = resolve_flag_file(settings.file.as_deref(), home.as_deref()).map_err(anyhow::Error::msg)?;
        Ok(Self::new(path, Duration::from_millis(settings.poll_ms.max(10)), faults, metrics))
    }

    /// A watcher of `path` (absolute; `None`: faults stay off). Logs and
    /// exports the path, sets every flag's series, and loads the file once
    /// now so the flags hold from the first request.
    pub fn new(path: Option<PathBuf>, poll: Duration, faults: Faults, metrics: FaultMetrics) -> Self {
        match &path {
            Some(p) => {
                tracing::info!(path = %p.display(), poll_ms = poll.as_millis() as u64, "fault flags are read from this file");
                if p.parent().is_some_and(|d| !d.is_dir()) {
                    tracing::warn!(path = %p.display(), "the fault flag file's directory does not exist (yet): no flag is set until it does");
                }
            }
            None => tracing::info!("no fault flag file configured: every fault flag is off"),
        }
        metrics.set_file(&path.as_deref().map(|p| p.display().to_string()).unwrap_or_default());
        let mut me = Self { path, poll, faults, metrics, seen: None };
        me.export(&me.faults.snapshot());
        me.check();
        me
    }

    /// Whether there is a file to watch (no file: [`FaultWatcher::run`] returns at once).
    pub fn has_file(&self) -> bool {
        self.path.is_some()
    }

    /// Checks every `poll` until shutdown.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        if self.path.is_none() {
            return Ok(());
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => self.check(),
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// One look at the file: apply it if its content changed.
    fn check(&mut self) {
        let Some(path) = &self.path else { return };
        let content = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "fault flag file unreadable; the previous flags stay");
                return;
            }
        };
        if content == self.seen {
            return;
        }
        let off = FlagSet::off(&self.faults.specs);
        let next = match &content {
            None => {
                if self.faults.snapshot() != off {
                    tracing::warn!(path = %path.display(), "fault flag file is gone: every flag is off");
                }
                off
            }
            Some(bytes) => match FlagSet::parse(&self.faults.specs, bytes) {
                Ok(flags) => flags,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "invalid fault flag file ignored; the previous flags stay");
                    self.seen = content;
                    return;
                }
            },
        };
        self.seen = content;
        self.apply(next);
    }

    fn apply(&self, next: FlagSet) {
        let before = self.faults.snapshot();
        for ((spec, old), new) in self.faults.specs.iter().zip(&before.0).zip(&next.0) {
            if old != new {
                tracing::warn!(flag = spec.name, from = %old, to = %new, "fault flag changed");
            }
        }
        self.export(&next);
        self.faults.set(next);
    }

    /// Sets `fault_flag_active` of every flag from `flags`.
    fn export(&self, flags: &FlagSet) {
        for (spec, value) in self.faults.specs.iter().zip(&flags.0) {
            self.metrics.set_flag(spec.name, value.is_active());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: [FlagSpec; 3] = [FlagSpec::latency_ms("slow_ms"), FlagSpec::rate("error_rate"), FlagSpec::switch("paused")];

    fn parse(doc: &str) -> Result<FlagSet, String> {
        FlagSet::parse(&SPECS, doc.as_bytes())
    }

    #[test]
    fn parses_every_kind_and_defaults_missing_keys_to_off() {
        let f = parse(r#"{"slow_ms": 250, "error_rate": 0.5, "paused": true}"#).unwrap();
        assert_eq!(f.0, vec![FlagValue::LatencyMs(250), FlagValue::Rate(0.5), FlagValue::Switch(true)]);
        assert_eq!(parse("{}").unwrap(), FlagSet::off(&SPECS));
        // A whole number is a rate too.
        assert_eq!(parse(r#"{"error_rate": 1}"#).unwrap().0[1], FlagValue::Rate(1.0));
        // The edges are in range.
        assert_eq!(parse(r#"{"slow_ms": 60000, "error_rate": 0.0}"#).unwrap().0[..2], [FlagValue::LatencyMs(60_000), FlagValue::Rate(0.0)]);
    }

    #[test]
    fn refuses_bad_values_and_unknown_keys_naming_the_key() {
        for (doc, needle) in [
            (r#"{"error_rate": 1.5}"#, "error_rate = 1.5 is outside 0.0..=1.0"),
            (r#"{"error_rate": -0.1}"#, "error_rate"),
            (r#"{"error_rate": "half"}"#, "error_rate"),
            (r#"{"slow_ms": 60001}"#, "slow_ms = 60001 is above the maximum 60000"),
            (r#"{"slow_ms": -1}"#, "slow_ms = -1 is not a whole number"),
            (r#"{"slow_ms": 2.5}"#, "slow_ms"),
            (r#"{"paused": 1}"#, "paused = 1 is not true or false"),
            (r#"{"error_rat": 0.1}"#, "unknown fault flag `error_rat`"),
            ("[1, 2]", "expected a JSON object"),
            ("not json", "not a fault flag document"),
        ] {
            let err = parse(doc).unwrap_err();
            assert!(err.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn the_handle_answers_per_kind() {
        let off = Faults::new(SPECS);
        assert_eq!((off.latency("slow_ms"), off.is_on("paused"), off.is_on("error_rate")), (Duration::ZERO, false, false));
        let on = Faults::fixed(SPECS, r#"{"slow_ms": 7, "error_rate": 1.0, "paused": true}"#).unwrap();
        assert_eq!(on.latency("slow_ms"), Duration::from_millis(7));
        assert!(on.is_on("paused") && on.is_on("slow_ms") && on.is_on("error_rate"));
        for _ in 0..100 {
            assert!(on.fails("error_rate"), "rate 1.0 always fails");
            assert!(!off.fails("error_rate"), "rate 0.0 never fails");
        }
        // A name the service does not declare is off, whatever its kind.
        assert!(!on.fails("nope") && !on.is_on("nope") && on.latency("nope").is_zero() && on.get("nope").is_none());
        // A rate in between fails about that often.
        let half = Faults::fixed(SPECS, r#"{"error_rate": 0.5}"#).unwrap();
        let failed = (0..2000).filter(|_| half.fails("error_rate")).count();
        assert!((800..1200).contains(&failed), "{failed} of 2000 at rate 0.5");
        assert!(Faults::fixed(SPECS, r#"{"paused": "yes"}"#).is_err());
    }

    /// Captures what the watcher logs, as text, for the assertions below.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn flag_series(metrics: &Metrics, flag: &str) -> Option<String> {
        let text = metrics.encode();
        let prefix = format!(r#"fault_flag_active{{flag="{flag}"}} "#);
        text.lines().find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }

    /// Polls `cond` (the watcher task runs meanwhile) until it holds; fails
    /// after 10 s naming `what`, with the logs so far.
    async fn eventually(what: &str, logs: &Captured, cond: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "not within 10 s: {what}\nlogs:\n{}", logs.text());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The running watcher (its real poll loop, on a real file) applies a
    /// change, logs it with old and new values, keeps the previous flags on
    /// an invalid file and logs why; every wait is a poll with a deadline.
    #[tokio::test]
    async fn the_running_watcher_applies_changes_logs_them_and_keeps_flags_on_a_bad_file() {
        let logs = Captured::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let dir = std::env::temp_dir().join(format!("gh-faults-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("faults.json");
        let metrics = Metrics::new("test");
        let faults = Faults::new(SPECS);
        let watcher = FaultWatcher::new(Some(path.clone()), Duration::from_millis(10), faults.clone(), FaultMetrics::register(&metrics));
        assert!(!faults.is_on("paused"), "absent file: all off");
        for s in SPECS {
            assert_eq!(flag_series(&metrics, s.name).as_deref(), Some("0"), "{} series from the start", s.name);
        }
        assert!(metrics.encode().contains(&format!(r#"fault_flags_file{{path="{}"}} 1"#, path.display())));

        let (stop_tx, stop_rx) = watch::channel(false);
        let running = tokio::spawn(watcher.run(stop_rx));

        std::fs::write(&path, br#"{"paused": true, "error_rate": 0.25}"#).unwrap();
        eventually("paused on", &logs, || faults.is_on("paused")).await;
        assert_eq!(faults.get("error_rate"), Some(FlagValue::Rate(0.25)));
        assert_eq!(flag_series(&metrics, "paused").as_deref(), Some("1"));
        let text = logs.text();
        assert!(text.contains("fault flag changed") && text.contains("flag=\"paused\"") && text.contains("from=false to=true"), "{text}");
        assert!(text.contains("flag=\"error_rate\"") && text.contains("from=0 to=0.25"), "{text}");

        std::fs::write(&path, br#"{"paused": true, "error_rate": 7}"#).unwrap();
        eventually("the invalid file logged", &logs, || logs.text().contains("invalid fault flag file ignored")).await;
        let text = logs.text();
        assert!(text.contains("error_rate = 7 is outside 0.0..=1.0"), "{text}");
        assert_eq!((faults.is_on("paused"), faults.get("error_rate")), (true, Some(FlagValue::Rate(0.25))), "previous flags kept");

        std::fs::write(&path, br#"{"slow_ms": 5}"#).unwrap();
        eventually("slow_ms on", &logs, || faults.latency("slow_ms") == Duration::from_millis(5)).await;
        assert!(!faults.is_on("paused") && !faults.is_on("error_rate"));
        assert_eq!(flag_series(&metrics, "paused").as_deref(), Some("0"));
        assert_eq!(flag_series(&metrics, "slow_ms").as_deref(), Some("1"));

        std::fs::remove_file(&path).unwrap();
        eventually("file removed: all off", &logs, || !faults.is_on("slow_ms")).await;
        assert!(logs.text().contains("fault flag file is gone"));

        stop_tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relative_paths_resolve_against_the_stack_home_or_refuse() {
        let rel = Path::new("etc/inventory/faults.json");
        let home = OsStr::new("/srv/gh");
        assert_eq!(resolve_flag_file(Some(rel), Some(home)).unwrap(), Some(PathBuf::from("/srv/gh/etc/inventory/faults.json")));
        // Absolute: as is, whatever the home.
        let abs = Path::new("/etc/gh/faults.json");
        assert_eq!(resolve_flag_file(Some(abs), Some(home)).unwrap(), Some(abs.to_owned()));
        assert_eq!(resolve_flag_file(Some(abs), None).unwrap(), Some(abs.to_owned()));
        // No file (or an empty one): all off.
        assert_eq!(resolve_flag_file(None, None).unwrap(), None);
        assert_eq!(resolve_flag_file(Some(Path::new("")), None).unwrap(), None);
        // Relative without a usable home: an error naming the setting, the variable and the fixes.
        for bad_home in [None, Some(OsStr::new("")), Some(OsStr::new("target/glasshouse"))] {
            let err = resolve_flag_file(Some(rel), bad_home).unwrap_err();
            for needle in ["faults.file etc/inventory/faults.json", "GLASSHOUSE_HOME", "APP_FAULTS__FILE", "absolute path"] {
                assert!(err.contains(needle), "{bad_home:?}: {err}");
            }
        }
    }

    #[test]
    fn no_file_is_exported_as_an_empty_path() {
        let metrics = Metrics::new("test");
        let w = FaultWatcher::new(None, Duration::from_millis(10), Faults::new(SPECS), FaultMetrics::register(&metrics));
        assert!(!w.has_file());
        assert!(metrics.encode().contains(r#"fault_flags_file{path=""} 1"#));
    }
}
