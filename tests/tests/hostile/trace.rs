//! Trace context from a client does not steer tracing: an order placed with
//! `traceparent: ...-00` (not sampled) still gets a sampled trace of its own,
//! which links to the client's context and holds the whole saga, including
//! Inventory's catalog read that Order's signed context continued.

use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::Saga;
use glasshouse_tests::stack::JAEGER_QUERY;
use serde_json::{Value, json};

use crate::support::seed_item;

fn hex_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches('0') == b.trim_start_matches('0')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_client_context_is_linked_not_followed() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let ann = saga.token("ann", Role::Customer);
    seed_item(&http, &saga, "TRC-1", 5).await?;

    let (client_trace, client_span) =
        (uuid::Uuid::new_v4().simple().to_string(), uuid::Uuid::new_v4().simple().to_string()[..16].to_owned());
    let resp = http
        .post(saga.order.url("/orders"))
        .bearer_auth(&ann)
        .header("Idempotency-Key", "trc-1")
        .header("traceparent", format!("00-{client_trace}-{client_span}-00"))
        .json(&json!({ "lines": [{ "sku": "TRC-1", "quantity": 1 }] }))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 202);
    let served = resp.headers().get("traceresponse").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let parts: Vec<&str> = served.split('-').collect();
    assert_eq!(parts.len(), 4, "traceresponse {served:?}");
    let trace_id = parts[1].to_owned();
    assert_ne!(trace_id, client_trace, "the client's trace id is not continued");
    assert_eq!(parts[3], "01", "Order's own sampler sampled it, whatever the client's flag");

    let jaeger = JAEGER_QUERY.http();
    let orders_topic = format!("{}orders.v1", saga.prefix);
    let trace = poll::until("the order's trace in Jaeger", Duration::from_secs(90), Duration::from_millis(500), || async {
        let resp = http.get(format!("{jaeger}/api/traces/{trace_id}")).send().await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let v: Value = resp.json().await?;
        let t = v["data"][0].clone();
        let ops: Vec<&str> = t["spans"].as_array().into_iter().flatten().filter_map(|s| s["operationName"].as_str()).collect();
        let complete = ["POST /orders", "GET /items", &format!("{orders_topic} process")].iter().all(|op| ops.contains(op));
        Ok(complete.then_some(t))
    })
    .await?;
    let spans = trace["spans"].as_array().cloned().unwrap_or_default();
    let root = spans.iter().find(|s| s["operationName"] == "POST /orders").unwrap();
    let refs = root["references"].as_array().cloned().unwrap_or_default();
    assert!(
        refs.iter().any(|r| hex_eq(r["traceID"].as_str().unwrap_or(""), &client_trace) && hex_eq(r["spanID"].as_str().unwrap_or(""), &client_span)),
        "POST /orders links the client's context: {refs:?}"
    );
    assert!(
        refs.iter().all(|r| r["refType"] != "CHILD_OF" || hex_eq(r["traceID"].as_str().unwrap_or(""), &trace_id)),
        "and has no parent outside its trace: {refs:?}"
    );
    // Inventory's catalog read is a child inside the same trace (a fellow service's context is followed).
    let catalog = spans.iter().find(|s| s["operationName"] == "GET /items").unwrap();
    assert!(
        catalog["references"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["refType"] == "CHILD_OF" && hex_eq(r["traceID"].as_str().unwrap_or(""), &trace_id)),
        "{catalog}"
    );
    saga.stop().await
}
