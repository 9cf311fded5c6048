//! Hostile input against the three real service processes (issue 13): each
//! module takes one kind of input a client controls and shows that every
//! service answers it with a documented problem, stores nothing, and keeps its
//! telemetry bounded.
//!
//! - `authz`: every route by every kind of caller, as a table.
//! - `body`: bodies over `http.max_body_bytes` (declared and chunked) are 413.
//! - `cursor`: only cursors the API gave out are accepted; all else is 422.
//! - `fields`: unknown or repeated members are 400, broken contract rules 422.
//! - `routes`: 405s carry `Allow`; non-UTF-8 path parameters are 404.
//! - `labels`: invented methods and paths add no metric series.
//! - `nulls`: optional members are absent, never `null`.
//! - `secrets`: no password, signing key or bearer token in the logs.
//! - `trace`: a client cannot switch tracing off (or on) with its traceparent.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod authz;
mod body;
mod cursor;
mod fields;
mod labels;
mod nulls;
mod routes;
mod secrets;
mod support;
mod trace;
