//! Proptest strategies that build arbitrary *valid* events through the public
//! constructors only, so they can never produce something the types forbid.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use glasshouse_contracts::{
    CancellationReason, Currency, CustomerId, Event, EventId, InventoryRejected, InventoryReleased, InventoryReserved, Money, NonEmpty,
    OrderCancelled, OrderConfirmed, OrderCreated, OrderId, OrderLine, OrderRejected, Payload, Quantity, RejectionReason, ShortLine, Sku,
    StockLine,
};
use proptest::prelude::*;
use uuid::Uuid;

pub fn sku() -> impl Strategy<Value = Sku> {
    "[A-Z0-9-]{1,64}".prop_map(|s| Sku::parse(&s).expect("strategy yields valid skus"))
}

pub fn quantity() -> impl Strategy<Value = Quantity> {
    (1u32..=1000).prop_map(|n| Quantity::new(n).expect("in range"))
}

pub fn currency() -> impl Strategy<Value = Currency> {
    "[A-Z]{3}".prop_map(|s| Currency::parse(&s).expect("three letters"))
}

pub fn customer() -> impl Strategy<Value = CustomerId> {
    "[!-~]{1,128}".prop_map(|s| CustomerId::parse(&s).expect("printable ascii"))
}

fn non_nil_uuid() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(Uuid::from_bytes).prop_filter("nil is not an id", |u| !u.is_nil())
}

pub fn order_id() -> impl Strategy<Value = OrderId> {
    non_nil_uuid().prop_map(|u| OrderId::from_uuid(u).expect("non-nil"))
}

pub fn event_id() -> impl Strategy<Value = EventId> {
    non_nil_uuid().prop_map(|u| EventId::from_uuid(u).expect("non-nil"))
}

/// Microsecond precision between 1970 and ~2096, what the services produce.
pub fn occurred_at() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_000_000_000, 0u32..1_000_000).prop_map(|(s, us)| DateTime::from_timestamp(s, us * 1000).expect("in range"))
}

fn order_lines() -> impl Strategy<Value = NonEmpty<OrderLine>> {
    currency().prop_flat_map(|cur| {
        prop::collection::vec(
            (sku(), quantity(), 0i64..1_000_000_000).prop_map(move |(sku, quantity, amount)| OrderLine {
                sku,
                quantity,
                unit_price: Money::new(amount, cur).expect("non-negative"),
            }),
            1..=50,
        )
        .prop_map(|v| NonEmpty::new(v).expect("1..=50"))
    })
}

fn stock_lines() -> impl Strategy<Value = NonEmpty<StockLine>> {
    prop::collection::vec((sku(), quantity()).prop_map(|(sku, quantity)| StockLine { sku, quantity }), 1..=20)
        .prop_map(|v| NonEmpty::new(v).expect("non-empty"))
}

pub fn reason() -> impl Strategy<Value = RejectionReason> {
    prop_oneof![
        prop::collection::vec(
            (sku(), quantity(), any::<u32>()).prop_map(|(sku, requested, available)| ShortLine { sku, requested, available }),
            1..=10
        )
        .prop_map(|v| RejectionReason::OutOfStock { lines: NonEmpty::new(v).expect("non-empty") }),
        prop::collection::vec(sku(), 1..=10).prop_map(|v| RejectionReason::UnknownSku { skus: NonEmpty::new(v).expect("non-empty") }),
        Just(RejectionReason::Timeout),
        Just(RejectionReason::Cancelled),
    ]
}

pub fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (customer(), order_lines())
            .prop_map(|(c, l)| Payload::from(OrderCreated::new(c, l).expect("amounts are small enough not to overflow"))),
        customer().prop_map(|customer_id| Payload::from(OrderConfirmed { customer_id })),
        (customer(), reason()).prop_map(|(customer_id, reason)| Payload::from(OrderRejected { customer_id, reason })),
        (customer(), prop_oneof![Just(CancellationReason::Customer), Just(CancellationReason::Timeout)])
            .prop_map(|(customer_id, reason)| Payload::from(OrderCancelled { customer_id, reason })),
        stock_lines().prop_map(|lines| Payload::from(InventoryReserved { lines })),
        reason().prop_map(|reason| Payload::from(InventoryRejected { reason })),
        stock_lines().prop_map(|lines| Payload::from(InventoryReleased { lines })),
    ]
}

pub fn event() -> impl Strategy<Value = Event> {
    (event_id(), occurred_at(), order_id(), payload()).prop_map(|(id, at, order, payload)| Event::from_parts(id, at, order, payload))
}
