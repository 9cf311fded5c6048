//! Shared service plumbing for the three Glasshouse services.
//!
//! Everything a service needs that is not business logic lives here, written
//! once, so that Order, Inventory and Notification differ only in their domain.
//!
//! # Layout
//! - [`config`]: typed layered settings (`base.yaml`, `<APP_ENVIRONMENT>.yaml`,
//!   `APP_SECTION__KEY` env overrides); invalid config exits 64 naming the key.
//! - [`app`]: the service lifecycle every service shares: [`app::ServiceBuilder`]
//!   takes the API, checks, consumers, relay and tasks; [`app::App`] runs them and
//!   stops them in order (HTTP drain, consumers, relay last); [`app::run_main`].
//! - [`supervise`]: a background task that dies fails readiness, is logged,
//!   counted (`service_task_up`, `service_task_restarts_total`) and restarted.
//! - [`backoff`]: exponential backoff with full jitter for every retry loop.
//! - [`service`]: the HTTP surface, readiness checks and pool gauge every service assembles.
//! - [`settings`]: the `http`, `kafka` and `faults` settings sections every service shares.
//! - [`faults`]: fault-injection flags read from a JSON file at run time (demos,
//!   chaos): typed specs, the [`faults::Faults`] handle, the watcher,
//!   `fault_flag_active{flag}` and `fault_flags_file{path}`; the relay's own flags.
//! - [`edge`]: what the HTTP edge refuses before a handler runs (bodies over
//!   `http.max_body_bytes`: 413; non-UTF-8 paths: 404) and `Allow` on every 405.
//! - [`contract`]: what every contract states besides poem-openapi's derive: one
//!   documented response per error status ([`contract::Problems`]), links,
//!   `additionalProperties: false` on request schemas, header spelling ([`contract::served_spec`]).
//! - [`cursor`]: HMAC-signed list cursors; any other cursor is a 422 `invalid-cursor`.
//! - [`migrations`]: the platform's tables (`outbox`, `processed_events`) for both dialects.
//! - [`problem`]: RFC 9457 problem+json errors with a stable `type` URI per error,
//!   opaque logged 500s, and the [`problem::ProblemJson`] middleware.
//! - [`idempotency`]: the `Idempotency-Key` flow of keyed `POST`s: key validation,
//!   request fingerprint, replay or 422 `idempotency-key-reused` (services keep the SQL).
//! - [`outbox`]: the transactional outbox and its relay, for PostgreSQL and MySQL.
//! - [`prune`]: batched deletion of rows past their retention (`processed_events`,
//!   idempotency keys, sent outbox rows), counted in `db_rows_pruned_total`.
//! - [`consumer`]: the Kafka consumer loop (dedupe, retries, dead-letter topic).
//! - [`errors`]: which database errors are transient (retried) or permanent
//!   (dead-lettered), for SQL (sqlx) and MongoDB, by server code.
//! - [`http_client`]: timeout, jittered retry and circuit breaker for service-to-service calls.
//! - [`auth`]: JWT bearer validation (RS256/ES256, JWKS file or URL) into a
//!   [`auth::Principal`]; 401/403 problems; dev keys and tokens (`glasshouse-dev-token`).
//! - [`breaker`]: circuit breaker (closed/open/half-open) with an injectable clock
//!   and a state-change hook for the `circuit_breaker_state` gauge.
#![forbid(unsafe_code)]

/// The global allocator [`app::service_main!`] installs in every service.
pub use mimalloc;

pub mod app;
pub mod auth;
pub mod backoff;
pub mod breaker;
pub mod config;
pub mod consumer;
pub mod contract;
pub mod cursor;
pub mod edge;
pub mod errors;
pub mod faults;
pub mod http_client;
pub mod idempotency;
pub mod migrations;
pub mod outbox;
pub mod problem;
pub mod prune;
pub mod service;
pub mod settings;
pub mod supervise;
