//! The Notification service: tells customers what happened to their orders.
//!
//! It consumes Order's lifecycle events (`order.created|confirmed|rejected|cancelled`
//! on `orders.v1`), renders a customer-facing message for each (channel
//! `email`, simulated: stored, never sent) and stores it as ONE MongoDB
//! document, unique on the event id, so a redelivered event stores nothing
//! twice. FerretDB (the local MongoDB) has no transactions and none are
//! needed: see [`store`] for why one atomic insert plus the unique index is
//! exactly-once. `GET /notifications?order_id=|customer_id=` lists them.
//!
//! # Layout
//! - [`app`]: `Application::build(settings, metrics)`, `port()`, `run_until_stopped()`, [`app::spec_yaml`].
//! - [`settings`]: typed settings (`config/*.yaml`, `APP_...` overrides).
//! - [`api`]: the HTTP API (poem-openapi; contract in `openapi.yaml`) and its visibility rules.
//! - [`render`]: subject and body of each notification, pure.
//! - [`store`]: MongoDB access, the dedupe-by-unique-index design, error classification.
//! - [`events`]: the consumer of Order's events.
//! - [`metrics`]: `notifications_total`, `order_to_notification_seconds`.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod events;
pub mod metrics;
pub mod render;
pub mod settings;
pub mod store;

pub use app::{Application, SERVICE};
pub use settings::Settings;
