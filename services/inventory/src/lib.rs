//! The Inventory service: catalog, stock and reservations on MySQL (MariaDB locally).
//!
//! It will serve the catalog over HTTP and, for every `order.created` event,
//! reserve stock for all lines or none in one transaction, never below zero and
//! never twice for the same order, answering with `inventory.reserved` or
//! `inventory.rejected` through its own outbox.
#![forbid(unsafe_code)]
