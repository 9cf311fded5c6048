//! The Order service: owns the order lifecycle.
//!
//! It will accept `POST /orders` (JWT, `Idempotency-Key`), price the lines
//! through Inventory's HTTP API behind a circuit breaker, and write the order
//! (`PENDING`) together with an `order.created` outbox row in one PostgreSQL
//! transaction; it then follows Inventory's verdict to `CONFIRMED` or
//! `REJECTED`, and compensates on cancel.
#![forbid(unsafe_code)]
