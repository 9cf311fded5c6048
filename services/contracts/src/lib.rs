//! Contracts between the Glasshouse services.
//!
//! Events cross Kafka as versioned JSON envelopes
//! `{id, type, version, occurred_at, order_id, data}`; this crate will own their
//! Rust types, the topic names, and the committed JSON Schemas that a test keeps
//! in agreement with the types. HTTP contracts are the `openapi.yaml` beside each
//! service.
#![forbid(unsafe_code)]
