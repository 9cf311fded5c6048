//! The Inventory service: catalog, stock and reservations on MySQL (MariaDB locally).
//!
//! It serves the catalog over HTTP (public reads, admin writes) and, for every
//! `order.created` event, reserves stock for all lines or none in ONE
//! transaction — never below zero, never twice for the same order — answering
//! `inventory.reserved` or `inventory.rejected` through its outbox;
//! `order.cancelled` releases the reservation once (`inventory.released`).
//!
//! # Locking strategy
//! Sessions run at `READ COMMITTED` (record locks only, no gap locks). A
//! reservation locks its items with `SELECT ... FOR UPDATE` in SKU order (one
//! statement over the primary key), decides in memory, then decrements and
//! records one `reservations` row per `(order_id, sku)` (primary key). Orders
//! sharing SKUs queue on the same rows in the same order, so they do not
//! deadlock each other; any deadlock or lock-wait timeout that still happens is
//! a transient error the consumer retries, never a rejection. Details in
//! [`events`].
//!
//! # Layout
//! - [`app`]: `Application::build(settings, metrics)`, `port()`, `pool()`,
//!   `shutdown_handle()`, `run_until_stopped()`; [`app::spec_yaml`].
//! - [`settings`]: typed settings (`config/*.yaml`, `APP_...` overrides).
//! - [`api`]: the HTTP API (poem-openapi; contract in `openapi.yaml`).
//! - [`reservation`]: the all-or-nothing decision, pure (property-tested).
//! - [`events`]: the consumer of Order's events; the reservation transaction.
//! - [`store`]: MySQL access, sessions, the outbox message of an event.
//! - [`faults`]: Inventory's fault-injection flags (catalog, reservations, its
//!   relay) on the platform's flag file and watcher (demos, chaos).
//! - [`stock_low`]: the refresher of the `inventory_stock_low_items` gauge.
//! - [`metrics`]: `inventory_reservations_total`, `inventory_stock_low_items`.
//! - [`seed`]: the deterministic demo catalog (`glasshouse-inventory-seed`).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod events;
pub mod faults;
pub mod metrics;
pub mod reservation;
pub mod seed;
pub mod settings;
pub mod stock_low;
pub mod store;

pub use app::{Application, SERVICE};
pub use settings::Settings;
