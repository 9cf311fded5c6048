//! The event envelope and its typed payloads.
//!
//! Wire format (JSON, UTF-8):
//!
//! ```json
//! {"id": "<uuid>", "type": "order.created", "version": 1,
//!  "occurred_at": "2025-01-01T12:00:00.123456Z", "order_id": "<uuid>",
//!  "data": { ...payload of that type... }}
//! ```
//!
//! `type` + `data` is serde's *adjacently tagged* representation (tag `type`,
//! content `data`). It is written by hand here rather than derived so that a
//! consumer gets a typed [`EventError`] — unknown type, unsupported version,
//! bad envelope or bad data — and can decide between dead-lettering and
//! retrying without parsing error strings.
//!
//! Readers are tolerant: unknown *fields* are ignored (a producer may add an
//! optional field without a version bump), unknown *types* and *versions* are
//! refused (a consumer must not guess what an event it does not know means).

use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{CustomerId, EventId, OrderId};
use crate::lines::{NonEmpty, OrderLine, ShortLine, StockLine};
use crate::money::{Money, MoneyError};
use crate::sku::Sku;
use crate::topics;

/// Every event type, with its wire name, topic and current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// `order.created`: an order was accepted (PENDING); Inventory reserves.
    OrderCreated,
    /// `order.confirmed`: stock is reserved; the order is CONFIRMED.
    OrderConfirmed,
    /// `order.rejected`: stock could not be reserved, or the saga deadline
    /// passed first; the order is REJECTED.
    OrderRejected,
    /// `order.cancelled`: the customer cancelled, or the saga deadline passed
    /// (compensation); Inventory releases whatever it reserved.
    OrderCancelled,
    /// `inventory.reserved`: every line is reserved.
    InventoryReserved,
    /// `inventory.rejected`: nothing was reserved, with the reason.
    InventoryRejected,
    /// `inventory.released`: a reservation was given back after a cancel.
    InventoryReleased,
}

impl EventType {
    /// All types, in a stable order (schema files, docs, tests).
    pub const ALL: [EventType; 7] = [
        EventType::OrderCreated,
        EventType::OrderConfirmed,
        EventType::OrderRejected,
        EventType::OrderCancelled,
        EventType::InventoryReserved,
        EventType::InventoryRejected,
        EventType::InventoryReleased,
    ];

    /// The wire name, e.g. `order.created`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderConfirmed => "order.confirmed",
            EventType::OrderRejected => "order.rejected",
            EventType::OrderCancelled => "order.cancelled",
            EventType::InventoryReserved => "inventory.reserved",
            EventType::InventoryRejected => "inventory.rejected",
            EventType::InventoryReleased => "inventory.released",
        }
    }

    /// Looks a wire name up; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The payload version this build writes and reads. Bumped only for
    /// breaking payload changes; each bump gets its own schema file.
    pub const fn version(self) -> u16 {
        1
    }

    /// The topic events of this type are published to (see [`topics`]).
    pub const fn topic(self) -> &'static str {
        match self {
            EventType::OrderCreated | EventType::OrderConfirmed | EventType::OrderRejected | EventType::OrderCancelled => topics::ORDERS,
            EventType::InventoryReserved | EventType::InventoryRejected | EventType::InventoryReleased => topics::INVENTORY,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `order.created`: everything a consumer needs without calling Order back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCreated {
    /// Owner of the order (JWT subject).
    pub customer_id: CustomerId,
    /// What was ordered, priced.
    pub lines: NonEmpty<OrderLine>,
    /// Sum of `unit_price x quantity` over the lines.
    pub total: Money,
}

impl OrderCreated {
    /// Builds the payload with `total` computed from the lines, so producers
    /// cannot publish a total that disagrees with them.
    pub fn new(customer_id: CustomerId, lines: NonEmpty<OrderLine>) -> Result<Self, MoneyError> {
        let total = Self::total_of(&lines)?;
        Ok(Self { customer_id, lines, total })
    }

    /// Sum of the line prices; fails on mixed currencies or overflow.
    pub fn total_of(lines: &NonEmpty<OrderLine>) -> Result<Money, MoneyError> {
        let mut iter = lines.iter();
        let mut total = match iter.next() {
            Some(first) => first.unit_price.checked_mul(first.quantity)?,
            None => return Err(MoneyError::Overflow), // unreachable: NonEmpty
        };
        for line in iter {
            total = total.checked_add(line.unit_price.checked_mul(line.quantity)?)?;
        }
        Ok(total)
    }
}

/// `order.confirmed`. Carries the customer so Notification can address the
/// message without having seen `order.created` first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmed {
    /// Owner of the order.
    pub customer_id: CustomerId,
}

/// `order.rejected`, with Inventory's reason passed through so the customer
/// learns which SKU was the problem, or `timeout` when Order gave up waiting
/// for Inventory's verdict (the saga deadline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderRejected {
    /// Owner of the order.
    pub customer_id: CustomerId,
    /// Why the order could not be fulfilled.
    pub reason: RejectionReason,
}

/// `order.cancelled`: the compensation step. Inventory releases whatever it
/// reserved for the order, and reserves nothing for it afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    /// Owner of the order.
    pub customer_id: CustomerId,
    /// Who or what cancelled, so the customer is not told "as you asked"
    /// about a cancel they did not ask for. Absent in events written before
    /// the field existed, which were all the customer's.
    #[serde(default)]
    pub reason: CancellationReason,
}

impl OrderCancelled {
    /// The customer asked (`POST /orders/{id}/cancel`).
    pub fn by_customer(customer_id: CustomerId) -> Self {
        Self { customer_id, reason: CancellationReason::Customer }
    }

    /// The saga deadline passed while the order was PENDING.
    pub fn on_timeout(customer_id: CustomerId) -> Self {
        Self { customer_id, reason: CancellationReason::Timeout }
    }
}

/// Why an order was cancelled. Readers refuse a value they do not know, as
/// they do an unknown rejection `code`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// The customer cancelled.
    #[default]
    Customer,
    /// Order's saga deadline passed before Inventory's verdict arrived; the
    /// order was rejected with reason `timeout` in the same transaction.
    Timeout,
}

/// `inventory.reserved`: every line of the order is reserved, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InventoryReserved {
    /// What was reserved.
    pub lines: NonEmpty<StockLine>,
}

/// `inventory.rejected`: nothing was reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InventoryRejected {
    /// Why nothing could be reserved.
    pub reason: RejectionReason,
}

/// `inventory.released`: the reservation of a cancelled order was returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InventoryReleased {
    /// What went back into stock.
    pub lines: NonEmpty<StockLine>,
}

/// Why a reservation failed; tagged by `code` so new reasons can be added
/// as new codes (a consumer that does not know one refuses the event).
// `Deserialize` is written by hand (below) instead of derived: serde's
// internally tagged enums buffer the object and would bypass the strict
// object-only parsing (crate::strict) of the nested lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum RejectionReason {
    /// Some lines ask for more than is in stock.
    OutOfStock {
        /// The lines that are short (only those).
        lines: NonEmpty<ShortLine>,
    },
    /// Some SKUs do not exist in Inventory.
    UnknownSku {
        /// The unknown SKUs.
        skus: NonEmpty<Sku>,
    },
    /// No verdict within the saga deadline: Order rejected the order itself
    /// and cancelled it, so Inventory releases anything it reserved late.
    /// Only in `order.rejected`.
    Timeout,
    /// The order had already been cancelled (compensated) when its
    /// `order.created` reached Inventory, e.g. re-driven from the dead-letter
    /// topic: nothing is reserved for it. Only in `inventory.rejected`.
    Cancelled,
}

impl RejectionReason {
    /// The `code` on the wire, e.g. `out_of_stock` (also stored by Order as
    /// the order's `rejection_reason`).
    pub const fn code(&self) -> &'static str {
        match self {
            RejectionReason::OutOfStock { .. } => "out_of_stock",
            RejectionReason::UnknownSku { .. } => "unknown_sku",
            RejectionReason::Timeout => "timeout",
            RejectionReason::Cancelled => "cancelled",
        }
    }
}

impl<'de> Deserialize<'de> for RejectionReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct OutOfStock {
            lines: NonEmpty<ShortLine>,
        }
        #[derive(Deserialize)]
        struct UnknownSku {
            skus: NonEmpty<Sku>,
        }
        use serde::de::Error as _;
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let value = serde_json::Value::Object(map);
        let code = match &value {
            serde_json::Value::Object(map) => crate::strict::tag(map, "code"),
            _ => Err(serde_json::Error::custom("expected an object")),
        }
        .map_err(D::Error::custom)?;
        let parsed = match code {
            "out_of_stock" => crate::strict::from_value::<OutOfStock>(&value).map(|v| RejectionReason::OutOfStock { lines: v.lines }),
            "unknown_sku" => crate::strict::from_value::<UnknownSku>(&value).map(|v| RejectionReason::UnknownSku { skus: v.skus }),
            "timeout" => Ok(RejectionReason::Timeout),
            "cancelled" => Ok(RejectionReason::Cancelled),
            other => {
                return Err(D::Error::unknown_variant(other, &["out_of_stock", "unknown_sku", "timeout", "cancelled"]));
            }
        };
        parsed.map_err(D::Error::custom)
    }
}

/// The typed `data` of an event; the variant decides `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `order.created`
    OrderCreated(OrderCreated),
    /// `order.confirmed`
    OrderConfirmed(OrderConfirmed),
    /// `order.rejected`
    OrderRejected(OrderRejected),
    /// `order.cancelled`
    OrderCancelled(OrderCancelled),
    /// `inventory.reserved`
    InventoryReserved(InventoryReserved),
    /// `inventory.rejected`
    InventoryRejected(InventoryRejected),
    /// `inventory.released`
    InventoryReleased(InventoryReleased),
}

impl Payload {
    /// The event type this payload is sent as.
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::OrderCreated(_) => EventType::OrderCreated,
            Payload::OrderConfirmed(_) => EventType::OrderConfirmed,
            Payload::OrderRejected(_) => EventType::OrderRejected,
            Payload::OrderCancelled(_) => EventType::OrderCancelled,
            Payload::InventoryReserved(_) => EventType::InventoryReserved,
            Payload::InventoryRejected(_) => EventType::InventoryRejected,
            Payload::InventoryReleased(_) => EventType::InventoryReleased,
        }
    }

    fn from_data(ty: EventType, data: &serde_json::Value) -> Result<Payload, serde_json::Error> {
        use crate::strict::from_value as de;
        Ok(match ty {
            EventType::OrderCreated => Payload::OrderCreated(de(data)?),
            EventType::OrderConfirmed => Payload::OrderConfirmed(de(data)?),
            EventType::OrderRejected => Payload::OrderRejected(de(data)?),
            EventType::OrderCancelled => Payload::OrderCancelled(de(data)?),
            EventType::InventoryReserved => Payload::InventoryReserved(de(data)?),
            EventType::InventoryRejected => Payload::InventoryRejected(de(data)?),
            EventType::InventoryReleased => Payload::InventoryReleased(de(data)?),
        })
    }
}

macro_rules! payload_from {
    ($($t:ident),*) => {$(
        impl From<$t> for Payload {
            fn from(p: $t) -> Self {
                Payload::$t(p)
            }
        }
    )*};
}
payload_from!(OrderCreated, OrderConfirmed, OrderRejected, OrderCancelled, InventoryReserved, InventoryRejected, InventoryReleased);

/// Why bytes could not be read as an [`Event`].
///
/// All variants mean "this message will never parse": a consumer sends it to
/// the dead-letter topic with this error in a header rather than retrying.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or an envelope field is missing or invalid.
    #[error("malformed event envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    /// `type` names no known event.
    #[error(
        "unknown event type {0:?} (known: order.created, order.confirmed, order.rejected, order.cancelled, inventory.reserved, inventory.rejected, inventory.released)"
    )]
    UnknownType(String),
    /// A known type in a version this build cannot read.
    #[error("unsupported version {version} of {event_type} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The event's type.
        event_type: EventType,
        /// The version found.
        version: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// `data` does not match the payload of `type`.
    #[error("invalid data for {event_type}: {source}")]
    Data {
        /// The event's type.
        event_type: EventType,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}

/// One event: the envelope plus its typed payload.
///
/// Fields are private so an event cannot be built with a `version` or `type`
/// that disagrees with its payload; use [`Event::new`] and the accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    id: EventId,
    occurred_at: DateTime<Utc>,
    order_id: OrderId,
    payload: Payload,
}

impl Event {
    /// A new event about `order_id`, with a fresh id and `occurred_at = now`.
    ///
    /// The time is cut to microseconds: PostgreSQL and MariaDB store no more,
    /// and an event read back from an outbox row must equal the one written.
    pub fn new(order_id: OrderId, payload: impl Into<Payload>) -> Self {
        Self { id: EventId::new(), occurred_at: Utc::now().trunc_subsecs(6), order_id, payload: payload.into() }
    }

    /// An event with every envelope field given (tests, fixtures, replays).
    pub fn from_parts(id: EventId, occurred_at: DateTime<Utc>, order_id: OrderId, payload: impl Into<Payload>) -> Self {
        Self { id, occurred_at, order_id, payload: payload.into() }
    }

    /// Parses and validates an event from raw message bytes. Never panics.
    pub fn from_slice(bytes: &[u8]) -> Result<Event, EventError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(EventError::Envelope)?;
        Self::from_value(&value)
    }

    /// Parses and validates an event already read as JSON. Never panics.
    ///
    /// Goes through a strict deserializer that, unlike serde's derive, refuses
    /// a JSON array where an object is expected, so Rust accepts exactly what
    /// the published JSON Schemas accept.
    pub fn from_value(value: &serde_json::Value) -> Result<Event, EventError> {
        let raw: RawEnvelope = crate::strict::from_value(value).map_err(EventError::Envelope)?;
        raw.into_event()
    }

    /// Serializes to the JSON wire form.
    ///
    /// Cannot fail for these types (no non-string map keys, no fallible
    /// `Serialize`), but returns `Result` rather than panicking if that ever changes.
    pub fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Unique id; consumers dedupe on it.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// The `type` field.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The `version` field: always the type's current version.
    pub fn version(&self) -> u16 {
        self.event_type().version()
    }

    /// When the fact happened (not when it was published).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }

    /// The order this event is about.
    pub fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// The typed `data`.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The typed `data`, owned.
    pub fn into_payload(self) -> Payload {
        self.payload
    }

    /// The topic to publish to.
    pub fn topic(&self) -> &'static str {
        self.event_type().topic()
    }

    /// The Kafka message key: the order id, so one order's events stay on one
    /// partition, in order.
    pub fn key(&self) -> String {
        self.order_id.to_string()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Event", 6)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("type", self.event_type().as_str())?;
        s.serialize_field("version", &self.version())?;
        s.serialize_field("occurred_at", &self.occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true))?;
        s.serialize_field("order_id", &self.order_id)?;
        match &self.payload {
            Payload::OrderCreated(d) => s.serialize_field("data", d)?,
            Payload::OrderConfirmed(d) => s.serialize_field("data", d)?,
            Payload::OrderRejected(d) => s.serialize_field("data", d)?,
            Payload::OrderCancelled(d) => s.serialize_field("data", d)?,
            Payload::InventoryReserved(d) => s.serialize_field("data", d)?,
            Payload::InventoryRejected(d) => s.serialize_field("data", d)?,
            Payload::InventoryReleased(d) => s.serialize_field("data", d)?,
        }
        s.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Event::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// The envelope with `data` still untyped: step one of parsing.
#[derive(Deserialize)]
struct RawEnvelope {
    id: EventId,
    #[serde(rename = "type")]
    event_type: String,
    version: u16,
    #[serde(deserialize_with = "rfc3339")]
    occurred_at: DateTime<Utc>,
    order_id: OrderId,
    data: serde_json::Value,
}

impl RawEnvelope {
    fn into_event(self) -> Result<Event, EventError> {
        let ty = EventType::parse(&self.event_type).ok_or_else(|| EventError::UnknownType(self.event_type.clone()))?;
        if self.version != ty.version() {
            return Err(EventError::UnsupportedVersion { event_type: ty, version: self.version, supported: ty.version() });
        }
        let payload = Payload::from_data(ty, &self.data).map_err(|source| EventError::Data { event_type: ty, source })?;
        Ok(Event { id: self.id, occurred_at: self.occurred_at, order_id: self.order_id, payload })
    }
}

/// RFC 3339 only: `chrono`'s parser also takes a space between date and time,
/// which the JSON Schema `date-time` format (and other languages' parsers)
/// refuse. Any offset is accepted and converted to UTC.
fn rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(deserializer)?;
    let separator_ok = matches!(s.as_bytes().get(10), Some(b'T' | b't'));
    match DateTime::parse_from_rfc3339(&s) {
        Ok(t) if separator_ok => Ok(t.with_timezone(&Utc)),
        _ => Err(serde::de::Error::custom(format!("occurred_at {} is not an RFC 3339 date-time", crate::invalid::quoted(&s)))),
    }
}
