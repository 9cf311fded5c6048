//! Request bodies over `http.max_body_bytes` (65536 by default) are refused
//! with 413 `payload-too-large` before they are read: a declared length at
//! once, a chunked body at the limit. Nothing is stored; a body exactly at the
//! limit is still served.

use glasshouse_platform::auth::Role;
use glasshouse_tests::services::Saga;
use serde_json::Value;

use crate::support::{raw, seed_item, stored_orders};

const LIMIT: usize = 65_536;

/// A valid order for one unit of `sku`, padded with insignificant whitespace
/// to exactly `len` bytes of JSON (an unknown padding member would be a 400).
fn padded_order(sku: &str, len: usize) -> Vec<u8> {
    let head = format!(r#"{{"lines":[{{"sku":"{sku}","quantity":1}}]"#);
    let tail = "}";
    let mut body = head.into_bytes();
    body.resize(len - tail.len(), b' ');
    body.extend_from_slice(tail.as_bytes());
    body
}

fn problem_body(text: &str) -> Value {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn chunks(body: Vec<u8>, size: usize) -> impl Iterator<Item = Vec<u8>> {
    body.chunks(size).map(<[u8]>::to_vec).collect::<Vec<_>>().into_iter()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_before_they_are_read() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    seed_item(&http, &saga, "BIG-1", 100).await?;
    let ann = saga.token("ann", Role::Customer);
    let admin = saga.token("ops", Role::Admin);
    let auth = |token: &str| format!("Authorization: Bearer {token}\r\nContent-Type: application/json");

    // 1. A declared 50 MB order: 413 at once. Only the first 64 KiB are ever
    //    sent, so an answer at all proves the server did not wait for the rest.
    let head = format!("POST /orders HTTP/1.1\r\n{}\r\nIdempotency-Key: big-1\r\nContent-Length: {}", auth(&ann), 50 * 1024 * 1024);
    let (status, text) = raw(saga.order.port, &head, chunks(padded_order("BIG-1", LIMIT), 16 * 1024), false).await?;
    assert_eq!(status, 413, "{text}");
    assert_eq!(problem_body(&text)["type"], "https://glasshouse.dev/problems/payload-too-large", "{text}");

    // 2. The same order chunked, one byte over the limit: 413.
    let head = format!("POST /orders HTTP/1.1\r\n{}\r\nIdempotency-Key: big-2\r\nTransfer-Encoding: chunked", auth(&ann));
    let (status, text) = raw(saga.order.port, &head, chunks(padded_order("BIG-1", LIMIT + 1), 8 * 1024), true).await?;
    assert_eq!(status, 413, "{text}");
    assert_eq!(problem_body(&text)["type"], "https://glasshouse.dev/problems/payload-too-large", "{text}");
    assert_eq!(stored_orders(&saga).await?, 0, "a refused body stores nothing");

    // 3. Inventory's PUT with a 10 MB chunked body: 413, and no item.
    let head = format!("PUT /items/BIG-2 HTTP/1.1\r\n{}\r\nTransfer-Encoding: chunked", auth(&admin));
    let mut item = br#"{"name":"big","price":{"amount_minor":1,"currency":"EUR"},"stock":1,"x":""#.to_vec();
    item.resize(10 * 1024 * 1024, b'x');
    let (status, text) = raw(saga.inventory.port, &head, chunks(item, 64 * 1024), true).await?;
    assert_eq!(status, 413, "{text}");
    let missing = http.get(saga.inventory.url("/items/BIG-2")).send().await?.status().as_u16();
    assert_eq!(missing, 404, "a refused PUT stores nothing");

    // 4. Notification refuses an oversized body too (before routing or auth).
    let head = format!("GET /notifications HTTP/1.1\r\n{}\r\nContent-Length: {}", auth(&ann), LIMIT + 1);
    let (status, text) = raw(saga.notification.port, &head, chunks(vec![b' '; LIMIT + 1], 16 * 1024), false).await?;
    assert_eq!(status, 413, "{text}");

    // 5. Exactly at the limit, declared and chunked: served.
    let head = format!("POST /orders HTTP/1.1\r\n{}\r\nIdempotency-Key: fits-1\r\nContent-Length: {LIMIT}", auth(&ann));
    let (status, text) = raw(saga.order.port, &head, chunks(padded_order("BIG-1", LIMIT), 16 * 1024), false).await?;
    assert_eq!(status, 202, "{text}");
    let head = format!("POST /orders HTTP/1.1\r\n{}\r\nIdempotency-Key: fits-2\r\nTransfer-Encoding: chunked", auth(&ann));
    let (status, text) = raw(saga.order.port, &head, chunks(padded_order("BIG-1", LIMIT), 8 * 1024), true).await?;
    assert_eq!(status, 202, "{text}");
    assert_eq!(stored_orders(&saga).await?, 2);

    saga.stop().await
}
