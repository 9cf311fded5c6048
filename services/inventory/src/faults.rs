//! Fault injection for demos and chaos tests: latency and errors on the
//! catalog endpoints and on reservation handling, switched by a JSON flag file
//! the service re-reads when it changes (the OpenFeature/flagd idea: flags
//! live outside the binary and flip at run time, without a restart).
//!
//! File format (every key optional, unknown keys refused, absent file = all off):
//!
//! ```json
//! {"catalog_latency_ms": 0, "catalog_error_rate": 0.0,
//!  "reservation_latency_ms": 0, "reservation_error_rate": 0.0}
//! ```
//!
//! - `*_latency_ms` (0..=60000): added before the work.
//! - `*_error_rate` (0.0..=1.0): probability of failing: a catalog `GET`
//!   answers 503 `injected-fault` problem+json; an `order.created` fails with
//!   a transient error, so the consumer retries it until it succeeds, like
//!   any outage (never dead-lettered, never rejected).
//!
//! The file is polled every `faults.poll_ms` (default 1 s). An invalid file is
//! logged and the previous flags stay; every change is logged and exported as
//! `fault_flag_active{flag}` (1 while non-zero).
//!
//! # Where the file is
//! A flag written to a file the service does not read is a fault silently not
//! injected, so the path never depends on the working directory: an absolute
//! `faults.file` is used as is, a relative one is resolved against the stack
//! home, `$GLASSHOUSE_HOME` (which `deploy/local` sets; the local config says
//! `etc/inventory/faults.json`). A relative path with no (or a relative)
//! `GLASSHOUSE_HOME` stops the start with an error naming both fixes. The
//! absolute path is logged at start and exported as the info metric
//! `fault_flags_file{path}` = 1.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use glasshouse_platform::problem::{Problem, ProblemType};
use poem::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metrics::InventoryMetrics;
use crate::settings::FaultSettings;

/// The stack home a relative `faults.file` is resolved against.
pub const HOME_VAR: &str = "GLASSHOUSE_HOME";

/// 503: a catalog read failed on purpose (`catalog_error_rate`). A type of its
/// own so a dashboard or test can tell injected faults from real outages.
pub const INJECTED_FAULT: ProblemType = ProblemType::new("injected-fault", "Injected fault", StatusCode::SERVICE_UNAVAILABLE);

/// Longest latency a flag may inject, milliseconds (a typo must not park
/// requests for hours).
pub const MAX_LATENCY_MS: u64 = 60_000;

/// The flag names, as in the file and the `flag` label.
pub const FLAG_NAMES: [&str; 4] = ["catalog_latency_ms", "catalog_error_rate", "reservation_latency_ms", "reservation_error_rate"];

/// The flags. `Default` is "no faults".
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultFlags {
    pub catalog_latency_ms: u64,
    pub catalog_error_rate: f64,
    pub reservation_latency_ms: u64,
    pub reservation_error_rate: f64,
}

impl FaultFlags {
    /// Parses and range-checks a flag file's content; the error names the bad key.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let flags: FaultFlags = serde_json::from_slice(bytes).map_err(|e| format!("not a fault flag document: {e}"))?;
        for (name, ms) in [("catalog_latency_ms", flags.catalog_latency_ms), ("reservation_latency_ms", flags.reservation_latency_ms)] {
            if ms > MAX_LATENCY_MS {
                return Err(format!("{name} = {ms} is above the maximum {MAX_LATENCY_MS}"));
            }
        }
        for (name, rate) in [("catalog_error_rate", flags.catalog_error_rate), ("reservation_error_rate", flags.reservation_error_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} = {rate} is outside 0.0..=1.0"));
            }
        }
        Ok(flags)
    }

    /// `(name, value as text, active)` per flag, in [`FLAG_NAMES`] order.
    fn entries(&self) -> [(&'static str, String, bool); 4] {
        [
            (FLAG_NAMES[0], self.catalog_latency_ms.to_string(), self.catalog_latency_ms > 0),
            (FLAG_NAMES[1], self.catalog_error_rate.to_string(), self.catalog_error_rate > 0.0),
            (FLAG_NAMES[2], self.reservation_latency_ms.to_string(), self.reservation_latency_ms > 0),
            (FLAG_NAMES[3], self.reservation_error_rate.to_string(), self.reservation_error_rate > 0.0),
        ]
    }
}

/// The flags in force, shared by the handlers and updated by [`FaultWatcher`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    // A std lock: read for a copy of four numbers, never held across an await.
    current: Arc<RwLock<FaultFlags>>,
}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    /// The flags now.
    pub fn get(&self) -> FaultFlags {
        *self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, flags: FaultFlags) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = flags;
    }

    /// Applies the catalog flags to one request: waits, then maybe fails.
    pub async fn catalog(&self) -> Result<(), Problem> {
        let f = self.get();
        inject(f.catalog_latency_ms, f.catalog_error_rate).await.map_err(|()| {
            Problem::new(INJECTED_FAULT)
                .with_detail("catalog_error_rate is set: this request failed on purpose")
                .with_extension("flag", "catalog_error_rate")
        })
    }

    /// Applies the reservation flags to one `order.created`: waits, then maybe
    /// fails (the caller turns that into a transient, retried error).
    pub async fn reservation(&self) -> Result<(), &'static str> {
        let f = self.get();
        inject(f.reservation_latency_ms, f.reservation_error_rate).await.map_err(|()| "reservation_error_rate")
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

async fn inject(latency_ms: u64, error_rate: f64) -> Result<(), ()> {
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    // `random::<f64>()` is in [0, 1): a rate of 1.0 always fails, 0.0 never.
    if error_rate > 0.0 && rand::random::<f64>() < error_rate { Err(()) } else { Ok(()) }
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
    metrics: InventoryMetrics,
    /// The last content seen (`None`: no file).
    seen: Option<Vec<u8>>,
}

impl FaultWatcher {
    /// The watcher the settings ask for: `faults.file` resolved against
    /// `$GLASSHOUSE_HOME` ([`resolve_flag_file`]); an unresolvable path is an
    /// error (the service must not start ignoring its flags).
    pub fn from_settings(settings: &FaultSettings, faults: Faults, metrics: InventoryMetrics) -> anyhow::Result<Self> {
        let home = std::env::var_os(HOME_VAR);
        let path = resolve_flag_file(settings.file.as_deref(), home.as_deref()).map_err(anyhow::Error::msg)?;
        Ok(Self::new(path, Duration::from_millis(settings.poll_ms.max(10)), faults, metrics))
    }

    /// A watcher of `path` (absolute; `None`: faults stay off). Logs and
    /// exports the path, sets every flag's series, and loads the file once
    /// now so the flags hold from the first request.
    pub fn new(path: Option<PathBuf>, poll: Duration, faults: Faults, metrics: InventoryMetrics) -> Self {
        match &path {
            Some(p) => {
                tracing::info!(path = %p.display(), poll_ms = poll.as_millis() as u64, "fault flags are read from this file");
                if p.parent().is_some_and(|d| !d.is_dir()) {
                    tracing::warn!(path = %p.display(), "the fault flag file's directory does not exist (yet): no flag is set until it does");
                }
            }
            None => tracing::info!("no fault flag file configured: every fault flag is off"),
        }
        metrics.set_fault_flags_file(&path.as_deref().map(|p| p.display().to_string()).unwrap_or_default());
        let mut me = Self { path, poll, faults, metrics, seen: None };
        me.export(me.faults.get());
        me.check();
        me
    }

    /// Checks every `poll` until shutdown.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if self.path.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => self.check(),
                _ = shutdown.changed() => return,
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
        let next = match &content {
            None => {
                if self.faults.get() != FaultFlags::default() {
                    tracing::warn!(path = %path.display(), "fault flag file is gone: every flag is off");
                }
                FaultFlags::default()
            }
            Some(bytes) => match FaultFlags::parse(bytes) {
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

    fn apply(&self, next: FaultFlags) {
        let before = self.faults.get();
        for ((name, old, _), (_, new, _)) in before.entries().into_iter().zip(next.entries()) {
            if old != new {
                tracing::warn!(flag = name, from = %old, to = %new, "fault flag changed");
            }
        }
        self.export(next);
        self.faults.set(next);
    }

    /// Sets `fault_flag_active` of every flag from `flags`.
    fn export(&self, flags: FaultFlags) {
        for (name, _, active) in flags.entries() {
            self.metrics.set_fault_flag(name, active);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format_and_defaults_missing_keys() {
        let f = FaultFlags::parse(br#"{"catalog_latency_ms": 250, "reservation_error_rate": 0.5}"#).unwrap();
        assert_eq!(f, FaultFlags { catalog_latency_ms: 250, reservation_error_rate: 0.5, ..FaultFlags::default() });
        assert_eq!(FaultFlags::parse(b"{}").unwrap(), FaultFlags::default());
    }

    #[test]
    fn refuses_bad_values_naming_the_key() {
        for (doc, key) in [
            (r#"{"catalog_error_rate": 1.5}"#, "catalog_error_rate"),
            (r#"{"reservation_error_rate": -0.1}"#, "reservation_error_rate"),
            (r#"{"catalog_latency_ms": 600000}"#, "catalog_latency_ms"),
            (r#"{"catalog_latency_ms": -1}"#, "fault flag document"),
            (r#"{"catalog_error_rat": 0.1}"#, "catalog_error_rat"),
            ("not json", "fault flag document"),
        ] {
            let err = FaultFlags::parse(doc.as_bytes()).unwrap_err();
            assert!(err.contains(key), "{doc}: {err}");
        }
    }

    #[tokio::test]
    async fn rate_one_always_fails_and_zero_never() {
        let faults = Faults::new();
        for _ in 0..50 {
            assert!(faults.catalog().await.is_ok());
            assert!(faults.reservation().await.is_ok());
        }
        faults.set(FaultFlags { catalog_error_rate: 1.0, reservation_error_rate: 1.0, ..FaultFlags::default() });
        for _ in 0..50 {
            let p = faults.catalog().await.unwrap_err();
            assert_eq!((p.status(), p.kind().slug()), (StatusCode::SERVICE_UNAVAILABLE, "injected-fault"));
            assert_eq!(faults.reservation().await, Err("reservation_error_rate"));
        }
    }

    #[test]
    fn the_watcher_follows_the_file_and_keeps_flags_on_a_bad_one() {
        let dir = std::env::temp_dir().join(format!("gh-faults-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("faults.json");
        let metrics = glasshouse_telemetry::Metrics::new("inventory");
        let m = InventoryMetrics::register(&metrics);
        let faults = Faults::new();
        let mut w = FaultWatcher::new(Some(path.clone()), Duration::from_millis(10), faults.clone(), m);
        assert_eq!(faults.get(), FaultFlags::default(), "absent file: all off");
        let text = metrics.encode();
        for flag in FLAG_NAMES {
            assert!(text.contains(&format!(r#"fault_flag_active{{flag="{flag}"}} 0"#)), "{flag} series from the start:\n{text}");
        }
        assert!(text.contains(&format!(r#"fault_flags_file{{path="{}"}} 1"#, path.display())), "{text}");

        std::fs::write(&path, br#"{"catalog_error_rate": 0.25}"#).unwrap();
        w.check();
        assert_eq!(faults.get().catalog_error_rate, 0.25);
        assert!(metrics.encode().contains(r#"fault_flag_active{flag="catalog_error_rate"} 1"#));

        std::fs::write(&path, br#"{"catalog_error_rate": 7}"#).unwrap();
        w.check();
        assert_eq!(faults.get().catalog_error_rate, 0.25, "invalid file: previous flags kept");

        std::fs::write(&path, br#"{"reservation_latency_ms": 5}"#).unwrap();
        w.check();
        assert_eq!(faults.get(), FaultFlags { reservation_latency_ms: 5, ..FaultFlags::default() });
        let text = metrics.encode();
        assert!(text.contains(r#"fault_flag_active{flag="catalog_error_rate"} 0"#), "{text}");
        assert!(text.contains(r#"fault_flag_active{flag="reservation_latency_ms"} 1"#), "{text}");

        std::fs::remove_file(&path).unwrap();
        w.check();
        assert_eq!(faults.get(), FaultFlags::default(), "file removed: all off");
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
        let metrics = glasshouse_telemetry::Metrics::new("inventory");
        let _w = FaultWatcher::new(None, Duration::from_millis(10), Faults::new(), InventoryMetrics::register(&metrics));
        assert!(metrics.encode().contains(r#"fault_flags_file{path=""} 1"#));
    }
}
