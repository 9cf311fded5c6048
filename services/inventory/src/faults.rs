//! Inventory's fault flags, on the platform's fault injection
//! ([`glasshouse_platform::faults`]: file format, range checks, the watcher,
//! where the file is, `fault_flag_active{flag}` and `fault_flags_file{path}`).
//!
//! Flags (every key optional, unknown keys refused, absent file = all off):
//!
//! ```json
//! {"catalog_latency_ms": 0, "catalog_error_rate": 0.0,
//!  "reservation_latency_ms": 0, "reservation_error_rate": 0.0,
//!  "relay_paused": false, "kafka_produce_error_rate": 0.0}
//! ```
//!
//! - `*_latency_ms` (0..=60000): added before the work.
//! - `*_error_rate` (0.0..=1.0): probability of failing: a catalog `GET`
//!   answers 503 `injected-fault` problem+json; an `order.created` fails with
//!   a transient error, so the consumer retries it until it succeeds, like
//!   any outage (never dead-lettered, never rejected).
//! - `relay_paused`, `kafka_produce_error_rate`: the outbox relay's flags
//!   ([`glasshouse_platform::faults::RELAY_FLAGS`], applied by the platform relay).
//!
//! The local config reads `etc/inventory/faults.json` under `$GLASSHOUSE_HOME`.

use glasshouse_platform::faults::{FlagSpec, RELAY_FLAGS};
use glasshouse_platform::problem::{Problem, ProblemType};
use poem::http::StatusCode;

/// 503: a catalog read failed on purpose (`catalog_error_rate`). A type of its
/// own so a dashboard or test can tell injected faults from real outages.
pub const INJECTED_FAULT: ProblemType = ProblemType::new("injected-fault", "Injected fault", StatusCode::SERVICE_UNAVAILABLE);

const CATALOG_LATENCY_MS: &str = "catalog_latency_ms";
const CATALOG_ERROR_RATE: &str = "catalog_error_rate";
const RESERVATION_LATENCY_MS: &str = "reservation_latency_ms";
const RESERVATION_ERROR_RATE: &str = "reservation_error_rate";

/// Every flag Inventory reads, as in the file and the `flag` label.
pub const FLAGS: [FlagSpec; 6] = [
    FlagSpec::latency_ms(CATALOG_LATENCY_MS),
    FlagSpec::rate(CATALOG_ERROR_RATE),
    FlagSpec::latency_ms(RESERVATION_LATENCY_MS),
    FlagSpec::rate(RESERVATION_ERROR_RATE),
    RELAY_FLAGS[0],
    RELAY_FLAGS[1],
];

/// The flags in force, shared by the handlers, the relay and the watcher.
#[derive(Clone, Debug)]
pub struct Faults(glasshouse_platform::faults::Faults);

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    /// Every flag off until the watcher reads the file.
    pub fn new() -> Self {
        Self(glasshouse_platform::faults::Faults::new(FLAGS))
    }

    /// The flags of `document` (the file format) set now, without a file (tests).
    pub fn fixed(document: &str) -> Result<Self, String> {
        glasshouse_platform::faults::Faults::fixed(FLAGS, document).map(Self)
    }

    /// The platform handle (for `ServiceBuilder::faults` and the relay).
    pub fn handle(&self) -> glasshouse_platform::faults::Faults {
        self.0.clone()
    }

    /// Applies the catalog flags to one request: waits, then maybe fails.
    pub async fn catalog(&self) -> Result<(), Problem> {
        self.0.delay(CATALOG_LATENCY_MS).await;
        if self.0.fails(CATALOG_ERROR_RATE) {
            return Err(Problem::new(INJECTED_FAULT)
                .with_detail("catalog_error_rate is set: this request failed on purpose")
                .with_extension("flag", CATALOG_ERROR_RATE)
                // Every 503 says when to retry (the contract requires it).
                .with_header(poem::http::header::RETRY_AFTER, poem::http::HeaderValue::from_static("1")));
        }
        Ok(())
    }

    /// Applies the reservation flags to one `order.created`: waits, then maybe
    /// fails (the caller turns that into a transient, retried error).
    pub async fn reservation(&self) -> Result<(), &'static str> {
        self.0.delay(RESERVATION_LATENCY_MS).await;
        if self.0.fails(RESERVATION_ERROR_RATE) { Err(RESERVATION_ERROR_RATE) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_one_always_fails_and_zero_never() {
        let faults = Faults::new();
        for _ in 0..50 {
            assert!(faults.catalog().await.is_ok());
            assert!(faults.reservation().await.is_ok());
        }
        let faults = Faults::fixed(r#"{"catalog_error_rate": 1.0, "reservation_error_rate": 1.0}"#).unwrap();
        for _ in 0..50 {
            let p = faults.catalog().await.unwrap_err();
            assert_eq!((p.status(), p.kind().slug()), (StatusCode::SERVICE_UNAVAILABLE, "injected-fault"));
            assert_eq!(faults.reservation().await, Err("reservation_error_rate"));
        }
    }

    #[test]
    fn the_file_format_is_unchanged_and_has_the_relay_flags() {
        let f = Faults::fixed(r#"{"catalog_latency_ms": 250, "reservation_error_rate": 0.5, "relay_paused": true}"#).unwrap();
        let h = f.handle();
        assert_eq!(h.latency("catalog_latency_ms"), std::time::Duration::from_millis(250));
        assert!(h.is_on("reservation_error_rate") && h.is_on("relay_paused") && !h.is_on("kafka_produce_error_rate"));
        for (doc, key) in [
            (r#"{"catalog_error_rate": 1.5}"#, "catalog_error_rate"),
            (r#"{"reservation_error_rate": -0.1}"#, "reservation_error_rate"),
            (r#"{"catalog_latency_ms": 600000}"#, "catalog_latency_ms"),
            (r#"{"consumer_error_rate": 0.1}"#, "consumer_error_rate"),
        ] {
            let err = Faults::fixed(doc).unwrap_err();
            assert!(err.contains(key), "{doc}: {err}");
        }
    }
}
