//! Parsing events from bytes: round trips, typed errors, and no panic on any input.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use glasshouse_contracts::schema::examples;
use glasshouse_contracts::{CancellationReason, Event, EventError, EventType, Payload, RejectionReason, topics};
use proptest::prelude::*;
use serde_json::{Value, json};

fn example(ty: EventType) -> Value {
    let e = examples().into_iter().find(|e| e.event_type() == ty).expect("an example of every type");
    serde_json::to_value(&e).unwrap()
}

fn parse(v: &Value) -> Result<Event, EventError> {
    Event::from_slice(&serde_json::to_vec(v).unwrap())
}

#[test]
fn wire_format_is_the_documented_envelope() {
    let v = example(EventType::OrderCreated);
    assert_eq!(v["type"], "order.created");
    assert_eq!(v["version"], 1);
    assert_eq!(v["occurred_at"], "2025-03-01T12:00:00.123456Z");
    assert_eq!(v["order_id"], "0190f0f5-3c7e-7b7c-9c1a-1234567890ab");
    assert_eq!(v["data"]["customer_id"], "cust-42");
    assert_eq!(v["data"]["lines"][0], json!({"sku": "MUG-BLUE", "quantity": 2, "unit_price": {"amount_minor": 1250, "currency": "EUR"}}));
    // 2 x 12.50 + 1 x 19.99
    assert_eq!(v["data"]["total"], json!({"amount_minor": 4499, "currency": "EUR"}));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
}

#[test]
fn rejection_reasons_are_tagged_by_code() {
    let v = example(EventType::InventoryRejected);
    assert_eq!(v["data"]["reason"]["code"], "out_of_stock");
    assert_eq!(v["data"]["reason"]["lines"][0], json!({"sku": "TEE-L", "requested": 1, "available": 0}));
}

#[test]
fn saga_reasons_are_bare_codes_and_unknown_codes_are_refused() {
    let docs: Vec<Value> = examples().iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    let timeout = docs.iter().find(|v| v["type"] == "order.rejected" && v["data"]["reason"]["code"] == "timeout").expect("example");
    assert_eq!(timeout["data"]["reason"], json!({"code": "timeout"}));
    let Payload::OrderRejected(r) = parse(timeout).unwrap().into_payload() else { panic!("not order.rejected") };
    assert_eq!((r.reason.clone(), r.reason.code()), (RejectionReason::Timeout, "timeout"));
    let cancelled = docs.iter().find(|v| v["type"] == "inventory.rejected" && v["data"]["reason"]["code"] == "cancelled").expect("example");
    assert_eq!(cancelled["data"]["reason"], json!({"code": "cancelled"}));

    let mut v = timeout.clone();
    v["data"]["reason"] = json!({"code": "too_slow"});
    let err = parse(&v).unwrap_err();
    assert!(matches!(err, EventError::Data { event_type: EventType::OrderRejected, .. }), "{err:?}");
    assert!(err.to_string().contains("too_slow") && err.to_string().contains("timeout"), "{err}");
}

#[test]
fn order_cancelled_says_why_and_defaults_to_the_customer() {
    let v = example(EventType::OrderCancelled);
    assert_eq!(v["data"]["reason"], "customer");
    let docs: Vec<Value> = examples().iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    assert!(docs.iter().any(|v| v["type"] == "order.cancelled" && v["data"]["reason"] == "timeout"));
    // Written before the field existed: the customer's cancel.
    let mut old = v.clone();
    old["data"].as_object_mut().unwrap().remove("reason");
    let Payload::OrderCancelled(c) = parse(&old).unwrap().into_payload() else { panic!("not order.cancelled") };
    assert_eq!(c.reason, CancellationReason::Customer);
    let mut bad = v;
    bad["data"]["reason"] = json!("operator");
    assert!(matches!(parse(&bad), Err(EventError::Data { event_type: EventType::OrderCancelled, .. })));
}

#[test]
fn every_type_has_its_topic_and_examples_round_trip() {
    for ty in EventType::ALL {
        let v = example(ty);
        let e = parse(&v).unwrap();
        assert_eq!(e.event_type(), ty);
        assert_eq!(EventType::parse(ty.as_str()), Some(ty));
        let expected_topic = if ty.as_str().starts_with("order.") { topics::ORDERS } else { topics::INVENTORY };
        assert_eq!(e.topic(), expected_topic);
        assert_eq!(e.key(), e.order_id().to_string());
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
    }
}

#[test]
fn unknown_type_is_refused_with_its_name() {
    let mut v = example(EventType::OrderConfirmed);
    v["type"] = json!("order.shipped");
    let err = parse(&v).unwrap_err();
    assert!(matches!(&err, EventError::UnknownType(t) if t == "order.shipped"), "{err:?}");
    assert!(err.to_string().contains("unknown event type \"order.shipped\""), "{err}");
}

#[test]
fn other_versions_are_refused() {
    let mut v = example(EventType::OrderConfirmed);
    v["version"] = json!(2);
    let err = parse(&v).unwrap_err();
    assert!(matches!(err, EventError::UnsupportedVersion { version: 2, supported: 1, .. }), "{err:?}");
}

#[test]
fn bad_data_names_the_type_and_the_problem() {
    let mut v = example(EventType::InventoryReserved);
    v["data"]["lines"][0]["sku"] = json!("lower-case");
    let err = parse(&v).unwrap_err();
    assert!(matches!(err, EventError::Data { event_type: EventType::InventoryReserved, .. }));
    let msg = err.to_string();
    assert!(msg.contains("inventory.reserved") && msg.contains("invalid sku"), "{msg}");

    let mut v = example(EventType::InventoryReserved);
    v["data"]["lines"] = json!([]);
    assert!(parse(&v).unwrap_err().to_string().contains("at least one"));
}

#[test]
fn envelope_problems_are_envelope_errors() {
    assert!(matches!(Event::from_slice(b"not json"), Err(EventError::Envelope(_))));
    assert!(matches!(Event::from_slice(b""), Err(EventError::Envelope(_))));
    let mut v = example(EventType::OrderConfirmed);
    v.as_object_mut().unwrap().remove("order_id");
    assert!(matches!(parse(&v), Err(EventError::Envelope(_))));
    let mut v = example(EventType::OrderConfirmed);
    v["occurred_at"] = json!("2025-03-01 12:00:00Z");
    let err = parse(&v).unwrap_err();
    assert!(err.to_string().contains("RFC 3339"), "{err}");
}

#[test]
fn unknown_fields_are_ignored_and_offsets_become_utc() {
    let mut v = example(EventType::OrderConfirmed);
    v["trace"] = json!("whatever");
    v["data"]["note"] = json!("added later without a version bump");
    v["occurred_at"] = json!("2025-03-01T14:00:07+02:00");
    let e = parse(&v).unwrap();
    assert_eq!(e.occurred_at().to_rfc3339(), "2025-03-01T12:00:07+00:00");
}

#[test]
fn new_events_get_fresh_ids_and_microsecond_times() {
    let e = Event::new(glasshouse_contracts::OrderId::new(), glasshouse_contracts::OrderConfirmed { customer_id: "c-1".parse().unwrap() });
    assert_eq!(e.occurred_at().timestamp_subsec_nanos() % 1000, 0);
    let back = Event::from_slice(&e.to_vec().unwrap()).unwrap();
    assert_eq!(back, e);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_events_round_trip(e in support::event()) {
        let bytes = e.to_vec().unwrap();
        let back = Event::from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &e);
        // And through serde's Deserialize impl, as a consumer using serde_json::from_slice would.
        let via_serde: Event = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(via_serde, e);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Event::from_slice(&bytes);
    }

    #[test]
    fn truncated_or_corrupted_events_never_panic(
        e in support::event(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let bytes = e.to_vec().unwrap();
        let _ = Event::from_slice(&bytes[..cut.index(bytes.len() + 1)]);
        let mut corrupted = bytes;
        let i = flip.index(corrupted.len());
        corrupted[i] = byte;
        if let Ok(parsed) = Event::from_slice(&corrupted) {
            // A corruption that still parses must still be a valid event.
            prop_assert!(Event::from_slice(&parsed.to_vec().unwrap()).is_ok());
        }
    }
}
