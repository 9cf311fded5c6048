//! Shared service plumbing for the three Glasshouse services.
//!
//! Everything a service needs that is not business logic lives here, written
//! once, so that Order, Inventory and Notification differ only in their domain.
//!
//! # Layout (planned, see issue "Order service and the shared service platform")
//! - `config`: layered settings (base file, environment file, `APP_...__...` overrides).
//! - `app`: `Application::build(settings)`, `port()`, `run_until_stopped()`, graceful shutdown.
//! - `problem`: RFC 9457 problem+json errors with a stable `type` per error.
//! - `outbox`: the transactional outbox and its relay, for PostgreSQL and MySQL.
//! - `consumer`: the Kafka consumer loop (dedupe, retries, dead-letter topic).
//! - `http_client`: timeout, jittered retry and circuit breaker for service-to-service calls.
//! - `auth`: JWT bearer validation and the local dev-token minting.
#![forbid(unsafe_code)]
