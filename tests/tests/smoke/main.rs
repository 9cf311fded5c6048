//! Smoke tests of the local stack: each component, spoken to with the real
//! client the services use. They need `deploy/local/stack up`; a missing
//! component fails the test with a message naming it and how to start it.
//!
//! All of them are safe to run in parallel: every test works in a database,
//! topic, index, collection or service name of its own.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod kafka;
mod logs;
mod mongo;
mod otlp;
mod prometheus;
mod sql;
