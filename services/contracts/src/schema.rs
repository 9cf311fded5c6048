//! JSON Schemas (draft 2020-12) of the events, generated from the Rust types.
//!
//! The committed files under `services/contracts/schemas/` are the published
//! contract for anyone who is not Rust (a Python notebook reading the DLQ, a
//! schema registry). They are written by [`write_all`] (run
//! `cargo run -p glasshouse-contracts --bin glasshouse-event-schemas`), and
//! `tests/schema_agreement.rs` fails when
//! - a committed file differs from what the types generate now (a type changed
//!   and nobody regenerated, or somebody edited a file by hand),
//! - an event the Rust code writes does not validate against its schema, or
//! - Rust and the schema disagree about a mutated event (one accepts, the other
//!   refuses), which catches a generator that describes the types wrongly.

use std::path::Path;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use crate::events::{
    Event, EventType, InventoryRejected, InventoryReleased, InventoryReserved, OrderCancelled, OrderConfirmed, OrderCreated, OrderRejected,
    RejectionReason,
};
use crate::ids::{CustomerId, EventId, OrderId};
use crate::lines::{NonEmpty, OrderLine, ShortLine, StockLine};
use crate::money::Money;
use crate::quantity::Quantity;
use crate::sku::Sku;

/// Where the schemas of this crate are published (`$id` prefix). Not fetched
/// by anything; an `$id` must be an absolute URI.
pub const SCHEMA_BASE_URI: &str = "https://glasshouse.dev/schemas/events/";

/// File name of the schema of `ty` in its current version, e.g.
/// `order.created.v1.schema.json`.
pub fn file_name(ty: EventType) -> String {
    format!("{}.v{}.schema.json", ty.as_str(), ty.version())
}

/// The schema of the whole envelope for events of type `ty`.
pub fn event_schema(ty: EventType) -> Value {
    let mut generator: SchemaGenerator = SchemaSettings::draft2020_12().for_deserialize().into_generator();
    let data = match ty {
        EventType::OrderCreated => data_schema::<OrderCreated>(&mut generator),
        EventType::OrderConfirmed => data_schema::<OrderConfirmed>(&mut generator),
        EventType::OrderRejected => data_schema::<OrderRejected>(&mut generator),
        EventType::OrderCancelled => data_schema::<OrderCancelled>(&mut generator),
        EventType::InventoryReserved => data_schema::<InventoryReserved>(&mut generator),
        EventType::InventoryRejected => data_schema::<InventoryRejected>(&mut generator),
        EventType::InventoryReleased => data_schema::<InventoryReleased>(&mut generator),
    };
    let event_id = generator.subschema_for::<EventId>().to_value();
    let order_id = generator.subschema_for::<OrderId>().to_value();
    let defs = generator.take_definitions(true);
    let examples: Vec<Value> =
        examples().into_iter().filter(|e| e.event_type() == ty).filter_map(|e| serde_json::to_value(&e).ok()).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{SCHEMA_BASE_URI}{}", file_name(ty)),
        "$comment": "GENERATED from the Rust types in services/contracts by `cargo run -p glasshouse-contracts --bin glasshouse-event-schemas`; do not edit. tests/schema_agreement.rs fails when this file and the types differ.",
        "title": format!("{} event, version {}", ty.as_str(), ty.version()),
        "description": format!(
            "Envelope of an event of type `{}` as published on the `{}` topic (message key = order_id). Unknown fields are ignored by readers; unknown types and versions are refused.",
            ty.as_str(), ty.topic()
        ),
        "type": "object",
        "required": ["id", "type", "version", "occurred_at", "order_id", "data"],
        "properties": {
            "id": event_id,
            "type": { "const": ty.as_str() },
            "version": { "const": ty.version() },
            "occurred_at": {
                "description": "When the fact happened, RFC 3339; written in UTC with a `Z` suffix.",
                "type": "string",
                "format": "date-time"
            },
            "order_id": order_id,
            "data": data
        },
        "$defs": defs,
        "examples": examples
    })
}

fn data_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// Every schema, serialized as committed: pretty JSON and a final newline.
pub fn rendered() -> Vec<(String, String)> {
    EventType::ALL
        .into_iter()
        .map(|ty| {
            let text = serde_json::to_string_pretty(&event_schema(ty)).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            (file_name(ty), text + "\n")
        })
        .collect()
}

/// Writes every schema into `dir` (created if missing); returns the paths.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in rendered() {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// Fixed, realistic events: at least one of every type and every rejection
/// reason. Embedded as `examples` in the schemas, and a ready-made valid
/// message for tests (e.g. dead-letter and dedupe tests in the services).
pub fn examples() -> Vec<Event> {
    // Built from literals that are valid by construction; `filter_map` keeps
    // this free of panics should one ever be mistyped (a test then notices
    // that a type has no example).
    fn build() -> Option<Vec<Event>> {
        let order = OrderId::parse("0190f0f5-3c7e-7b7c-9c1a-1234567890ab").ok()?;
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc));
        let id = |s: &str| EventId::parse(s).ok();
        let customer = CustomerId::parse("cust-42").ok()?;
        let sku = |s: &str| Sku::parse(s).ok();
        let qty = |n: u32| Quantity::new(n).ok();
        let eur = |n: i64| Money::parse(n, "EUR").ok();
        let lines = NonEmpty::new(vec![
            OrderLine { sku: sku("MUG-BLUE")?, quantity: qty(2)?, unit_price: eur(1250)? },
            OrderLine { sku: sku("TEE-L")?, quantity: qty(1)?, unit_price: eur(1999)? },
        ])
        .ok()?;
        let stock = NonEmpty::new(vec![
            StockLine { sku: sku("MUG-BLUE")?, quantity: qty(2)? },
            StockLine { sku: sku("TEE-L")?, quantity: qty(1)? },
        ])
        .ok()?;
        let out_of_stock =
            RejectionReason::OutOfStock { lines: NonEmpty::one(ShortLine { sku: sku("TEE-L")?, requested: qty(1)?, available: 0 }) };
        let unknown = RejectionReason::UnknownSku { skus: NonEmpty::one(sku("NO-SUCH-SKU")?) };
        let created = OrderCreated::new(customer.clone(), lines).ok()?;
        Some(vec![
            Event::from_parts(id("0190f0f5-3c7f-7000-8000-000000000001")?, at("2025-03-01T12:00:00.123456Z")?, order, created),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000002")?,
                at("2025-03-01T12:00:01Z")?,
                order,
                InventoryReserved { lines: stock.clone() },
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000003")?,
                at("2025-03-01T12:00:02Z")?,
                order,
                OrderConfirmed { customer_id: customer.clone() },
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000004")?,
                at("2025-03-01T12:00:03Z")?,
                order,
                OrderCancelled::by_customer(customer.clone()),
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000005")?,
                at("2025-03-01T12:00:04Z")?,
                order,
                InventoryReleased { lines: stock },
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000006")?,
                at("2025-03-01T12:00:05Z")?,
                order,
                InventoryRejected { reason: out_of_stock.clone() },
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000007")?,
                at("2025-03-01T12:00:06Z")?,
                order,
                InventoryRejected { reason: unknown.clone() },
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000008")?,
                at("2025-03-01T12:00:07Z")?,
                order,
                OrderRejected { customer_id: customer.clone(), reason: out_of_stock },
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-000000000009")?,
                at("2025-03-01T12:00:08Z")?,
                order,
                OrderRejected { customer_id: customer.clone(), reason: unknown },
            ),
            // The saga deadline: rejected and compensated in one transaction;
            // a re-driven order.created for it then reserves nothing.
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-00000000000a")?,
                at("2025-03-01T12:02:00Z")?,
                order,
                OrderRejected { customer_id: customer.clone(), reason: RejectionReason::Timeout },
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-00000000000b")?,
                at("2025-03-01T12:02:00Z")?,
                order,
                OrderCancelled::on_timeout(customer),
            ),
            Event::from_parts(
                id("0190f0f5-3c7f-7000-8000-00000000000c")?,
                at("2025-03-01T12:05:00Z")?,
                order,
                InventoryRejected { reason: RejectionReason::Cancelled },
            ),
        ])
    }
    build().unwrap_or_default()
}
