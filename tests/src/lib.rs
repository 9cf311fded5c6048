//! Tests that drive the running local stack (`deploy/local/stack up`).
//!
//! # Layout
//! - [`stack`]: where each component listens (the same defaults as
//!   `deploy/local/ports.env`, overridable by the same environment variables),
//!   and [`stack::require`], which turns a missing backend into a failure that
//!   names the component and how to start it.
//! - [`poll`]: polling with a deadline, the only way these tests wait.
//! - [`db`]: scratch databases (random names) on the stack's PostgreSQL and MariaDB.
//! - [`services`]: the three services as real processes for end-to-end tests.
//! - `tests/smoke/`: one smoke test per component, each with the real client
//!   the services use; `tests/saga.rs`: the order saga end to end.
#![forbid(unsafe_code)]

pub mod db;
pub mod poll;
pub mod services;
pub mod stack;
