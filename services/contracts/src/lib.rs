//! Contracts between the Glasshouse services.
//!
//! Events cross Kafka as versioned JSON envelopes
//! `{id, type, version, occurred_at, order_id, data}`. This crate owns their
//! Rust types, the topic names, the validated value types used at every edge
//! (HTTP bodies, events, database rows), and the committed JSON Schemas that
//! `tests/schema_agreement.rs` keeps in agreement with the types. HTTP
//! contracts are the `openapi.yaml` beside each service (Order's client of
//! Inventory is generated from Inventory's).
//!
//! # Layout
//! - [`events`]: [`Event`] (envelope), [`EventType`], [`Payload`] and one struct
//!   per event type; parsing from bytes with a typed [`EventError`].
//! - [`topics`]: topic names (`orders.v1`, `inventory.v1`) and their `.dlq`s.
//! - [`sku`], [`quantity`], [`money`], [`ids`]: validated newtypes ([`Sku`],
//!   [`Quantity`], [`Money`]/[`Currency`], [`OrderId`], [`EventId`],
//!   [`CustomerId`]); private fields, `parse`/`TryFrom`, serde validates on
//!   the way in.
//! - [`lines`]: line items inside events and [`NonEmpty`].
//! - [`schema`]: JSON Schema generation (the `glasshouse-event-schemas` binary
//!   writes `schemas/`) and [`schema::examples`], one valid event of each kind.
//! - [`InvalidValue`]: the one error every newtype returns.
#![forbid(unsafe_code)]

pub mod events;
pub mod ids;
mod invalid;
pub mod lines;
pub mod money;
pub mod quantity;
pub mod schema;
pub mod sku;
mod strict;
pub mod topics;

pub use events::{
    CancellationReason, Event, EventError, EventType, InventoryRejected, InventoryReleased, InventoryReserved, OrderCancelled,
    OrderConfirmed, OrderCreated, OrderRejected, Payload, RejectionReason,
};
pub use ids::{CustomerId, EventId, OrderId};
pub use invalid::InvalidValue;
pub use lines::{NonEmpty, OrderLine, ShortLine, StockLine};
pub use money::{Currency, Money, MoneyError};
pub use quantity::Quantity;
pub use sku::Sku;
