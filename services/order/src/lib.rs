//! The Order service: owns the order lifecycle.
//!
//! `POST /orders` (JWT, `Idempotency-Key`) prices the lines through
//! Inventory's HTTP API behind a circuit breaker, then writes the order
//! (`PENDING`) and its `order.created` event to the outbox in ONE PostgreSQL
//! transaction. Inventory's verdict (`inventory.reserved|rejected`) moves it
//! to `CONFIRMED` or `REJECTED`; `POST /orders/{id}/cancel` compensates. An
//! order still `PENDING` at the saga deadline is rejected (`timeout`) and
//! compensated by a background sweeper.
//!
//! # Layout
//! - [`app`]: builds the service's parts and hands them to the platform lifecycle:
//!   `Application::build(settings, metrics)`, `port()`, `run_until_stopped()`; [`app::spec_yaml`].
//! - [`settings`]: typed settings (`config/*.yaml`, `APP_...` overrides).
//! - [`api`]: the HTTP API (poem-openapi; contract in `openapi.yaml`).
//! - [`domain`]: the order state machine, pure.
//! - [`store`]: PostgreSQL access; event-producing writes go through the outbox.
//! - [`events`]: the consumer of Inventory's events.
//! - [`timeout`]: [`SagaTimeouts`], the saga deadline's sweeper.
//! - [`inventory`]: the pricing client.
//! - [`metrics`]: `orders_total`, `order_value_minor_units`, `order_illegal_transitions_total`,
//!   `order_completion_seconds`, `order_saga_timeouts_total`.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod domain;
pub mod events;
pub mod inventory;
pub mod metrics;
pub mod settings;
pub mod store;
pub mod timeout;

pub use app::{Application, SERVICE};
pub use settings::Settings;
pub use timeout::SagaTimeouts;
