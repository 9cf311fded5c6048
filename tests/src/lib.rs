//! Tests that drive the running local stack (`deploy/local/stack up`).
//!
//! # Layout
//! - [`stack`]: where each component listens (the same defaults as
//!   `deploy/local/ports.env`, overridable by the same environment variables),
//!   and [`stack::require`], which turns a missing backend into a failure that
//!   names the component and how to start it.
//! - [`poll`]: polling with a deadline, the only way these tests wait.
//! - [`db`]: scratch databases (random names) on the stack's PostgreSQL and MariaDB.
//! - [`services`]: the three services as real processes for end-to-end tests
//!   (and, for chaos tests, against other backends, killed and restarted).
//! - [`private_stack`]: a private PostgreSQL / MariaDB / Kafka a test may stop,
//!   started by the stack script on free ports with the shared cached builds.
//! - [`alerting`]: a private Prometheus + Alertmanager with the time-scaled
//!   alert rules, watching one saga.
//! - `tests/smoke/`: one smoke test per component, each with the real client
//!   the services use; `tests/saga.rs`: the order saga end to end;
//!   `tests/chaos/`: the chaos suite (`make chaos`).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

pub mod alerting;
pub mod db;
pub mod poll;
pub mod private_stack;
pub mod services;
pub mod stack;
