//! The whole order saga, end to end: three real service processes on the real
//! stack. Orders are confirmed, rejected and cancelled; stock follows; the
//! customer is notified; and ONE trace in Jaeger follows an order across
//! HTTP, Kafka and all three databases, with its log lines in both log stores.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::HashMap;
use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::Saga;
use glasshouse_tests::stack::{JAEGER_QUERY, OPENSEARCH, VICTORIALOGS};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
}

impl Client {
    async fn json(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }
}

async fn wait_order(c: &Client, saga: &Saga, token: &str, id: &str, status: &str) -> anyhow::Result<Value> {
    poll::until(&format!("order {id} {status}"), Duration::from_secs(60), Duration::from_millis(200), || async {
        let (_, o) = c.json(c.http.get(saga.order.url(&format!("/orders/{id}"))).bearer_auth(token)).await?;
        Ok((o["status"] == status).then_some(o))
    })
    .await
}

async fn stock(c: &Client, saga: &Saga, sku: &str) -> anyhow::Result<i64> {
    let (_, item) = c.json(c.http.get(saga.inventory.url(&format!("/items/{sku}")))).await?;
    item["stock"].as_i64().ok_or_else(|| anyhow::anyhow!("no stock in {item}"))
}

async fn notification_types(c: &Client, saga: &Saga, token: &str, order_id: &str, want: usize) -> anyhow::Result<Vec<String>> {
    poll::until(&format!("{want} notifications for {order_id}"), Duration::from_secs(60), Duration::from_millis(200), || async {
        let (_, page) =
            c.json(c.http.get(saga.notification.url(&format!("/notifications?order_id={order_id}"))).bearer_auth(token)).await?;
        let types: Vec<String> =
            page["items"].as_array().into_iter().flatten().filter_map(|n| n["event_type"].as_str().map(str::to_owned)).collect();
        Ok((types.len() >= want).then_some(types))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_reject_cancel_with_stock_notifications_one_trace_and_logs() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let c = Client { http: reqwest::Client::new() };
    let admin = saga.token("ops", Role::Admin);
    let ann = saga.token("ann", Role::Customer);
    for (sku, stock) in [("E2E-TEA", 5), ("E2E-RARE", 0)] {
        let (st, body) = c
            .json(c.http.put(saga.inventory.url(&format!("/items/{sku}"))).bearer_auth(&admin).json(&json!({
                "name": format!("{sku} for the saga test"), "price": { "amount_minor": 350, "currency": "EUR" }, "stock": stock
            })))
            .await?;
        assert!(st == 200 || st == 201, "seed {sku}: {st} {body}");
    }

    // 1. An order that can be filled: CONFIRMED, stock down, two notifications,
    //    all under the trace this request starts. The client's own traceparent
    //    is only linked (telemetry/README.md); Order names its trace in `traceresponse`.
    let client_trace = uuid::Uuid::new_v4().simple().to_string();
    let traceparent = format!("00-{client_trace}-{}-01", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let resp = c
        .http
        .post(saga.order.url("/orders"))
        .bearer_auth(&ann)
        .header("Idempotency-Key", "e2e-1")
        .header("traceparent", &traceparent)
        .json(&json!({ "lines": [{ "sku": "E2E-TEA", "quantity": 2 }] }))
        .send()
        .await?;
    let st = resp.status().as_u16();
    let trace_id = trace_of(&resp);
    assert_ne!(trace_id, client_trace, "a client does not choose the trace");
    let order: Value = resp.json().await?;
    assert_eq!(st, 202, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    wait_order(&c, &saga, &ann, &id, "CONFIRMED").await?;
    assert_eq!(stock(&c, &saga, "E2E-TEA").await?, 3);
    let mut types = notification_types(&c, &saga, &ann, &id, 2).await?;
    types.sort();
    assert_eq!(types, ["order.confirmed", "order.created"]);

    // 2. An order for stock that is not there: REJECTED with the reason, stock unchanged.
    let (st, rejected) = c
        .json(
            c.http
                .post(saga.order.url("/orders"))
                .bearer_auth(&ann)
                .header("Idempotency-Key", "e2e-2")
                .json(&json!({ "lines": [{ "sku": "E2E-RARE", "quantity": 1 }] })),
        )
        .await?;
    assert_eq!(st, 202);
    let rid = rejected["id"].as_str().unwrap().to_owned();
    let r = wait_order(&c, &saga, &ann, &rid, "REJECTED").await?;
    assert_eq!(r["rejection_reason"], "out_of_stock");
    assert_eq!(stock(&c, &saga, "E2E-RARE").await?, 0);
    assert!(notification_types(&c, &saga, &ann, &rid, 2).await?.contains(&"order.rejected".to_owned()));

    // 3. Cancel the confirmed order: stock restored once, even if asked twice.
    let resp = c.http.post(saga.order.url(&format!("/orders/{id}/cancel"))).bearer_auth(&ann).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    let cancel_trace = trace_of(&resp);
    let (st, again) = c.json(c.http.post(saga.order.url(&format!("/orders/{id}/cancel"))).bearer_auth(&ann)).await?;
    assert_eq!(st, 200, "a repeated cancel is a no-op: {again}");
    poll::until("stock restored", Duration::from_secs(60), Duration::from_millis(200), || async {
        Ok((stock(&c, &saga, "E2E-TEA").await? == 5).then_some(()))
    })
    .await?;
    assert!(notification_types(&c, &saga, &ann, &id, 3).await?.contains(&"order.cancelled".to_owned()));
    // The release happened once: a second release would have made it 7.
    assert_eq!(stock(&c, &saga, "E2E-TEA").await?, 5);

    // 4. One trace: HTTP in, PostgreSQL, the outbox publish, Inventory's consume
    //    + MySQL + publish, Order's consume, Notification's consume + MongoDB.
    let jaeger = JAEGER_QUERY.http();
    let orders_topic = format!("{}orders.v1", saga.prefix);
    let inventory_topic = format!("{}inventory.v1", saga.prefix);
    let want: Vec<(&str, String)> = vec![
        ("order", "POST /orders".into()),
        // Order's catalog call continues the trace: Inventory trusts a fellow service's context.
        ("inventory", "GET /items".into()),
        ("order", "INSERT orders".into()),
        ("order", format!("{orders_topic} publish")),
        ("inventory", format!("{orders_topic} process")),
        ("inventory", format!("{inventory_topic} publish")),
        ("order", format!("{inventory_topic} process")),
        ("order", "UPDATE orders".into()),
        ("notification", format!("{orders_topic} process")),
        ("notification", "insert notifications".into()),
        // The reservation's statements, each a DB span: lock, take, record.
        ("inventory", "SELECT items".into()),
        ("inventory", "UPDATE items".into()),
        ("inventory", "INSERT reservations".into()),
    ];
    let trace = poll::until("the saga's spans in one trace", Duration::from_secs(90), Duration::from_millis(500), || async {
        let resp = c.http.get(format!("{jaeger}/api/traces/{trace_id}")).send().await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let v: Value = resp.json().await?;
        let t = v["data"][0].clone();
        let have = spans_by_service(&t);
        let complete = want.iter().all(|(svc, op)| have.iter().any(|(s, o, _)| s == svc && o == op))
            && have.iter().any(|(s, _, tags)| s == "inventory" && tags.get("db.system.name").is_some_and(|v| v == "mysql"));
        Ok(complete.then_some(t))
    })
    .await
    .map_err(|e| e.context("spans expected: see `want` in the test"))?;

    // The server span says whose order it is (declared on another span, these
    // were dropped before); every DB span carries the semantic-convention names.
    let have = spans_by_service(&trace);
    let place = have.iter().find(|(s, o, _)| s == "order" && o == "POST /orders").map(|(_, _, t)| t).unwrap();
    assert_eq!(place.get("order.id"), Some(&id), "order.id on POST /orders: {place:?}");
    assert_eq!(place.get("enduser.id").map(String::as_str), Some("ann"), "enduser.id on POST /orders: {place:?}");
    for (svc, op, tags) in have.iter().filter(|(_, o, _)| ["SELECT ", "UPDATE ", "INSERT "].iter().any(|p| o.starts_with(p))) {
        let system = if svc == "inventory" { "mysql" } else { "postgresql" };
        let (operation, table) = op.split_once(' ').unwrap();
        assert_eq!(tags.get("db.system.name").map(String::as_str), Some(system), "{svc} {op}: {tags:?}");
        assert_eq!(tags.get("db.operation.name").map(String::as_str), Some(operation), "{svc} {op}: {tags:?}");
        assert_eq!(tags.get("db.collection.name").map(String::as_str), Some(table), "{svc} {op}: {tags:?}");
    }
    let mongo = have.iter().find(|(s, o, _)| s == "notification" && o == "insert notifications").map(|(_, _, t)| t).unwrap();
    assert_eq!(mongo.get("db.system.name").map(String::as_str), Some("mongodb"), "{mongo:?}");
    assert_eq!(mongo.get("db.collection.name").map(String::as_str), Some("notifications"), "{mongo:?}");
    assert!(mongo.contains_key("server.address") && mongo.contains_key("server.port"), "{mongo:?}");

    // The cancel's trace: its server span names the order and the customer,
    // and Inventory's release shows as DB spans under it.
    poll::until("the cancel's spans", Duration::from_secs(90), Duration::from_millis(500), || async {
        let resp = c.http.get(format!("{jaeger}/api/traces/{cancel_trace}")).send().await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let v: Value = resp.json().await?;
        let have = spans_by_service(&v["data"][0]);
        let server = have.iter().find(|(s, o, _)| s == "order" && o == "POST /orders/{id}/cancel");
        let released = have.iter().any(|(s, o, _)| s == "inventory" && o == "UPDATE reservations");
        Ok(server.filter(|_| released).map(|(_, _, t)| t.clone()))
    })
    .await
    .and_then(|tags| {
        anyhow::ensure!(tags.get("order.id") == Some(&id), "order.id on the cancel span: {tags:?}");
        anyhow::ensure!(tags.get("enduser.id").map(String::as_str) == Some("ann"), "enduser.id on the cancel span: {tags:?}");
        Ok(())
    })?;

    // Causal shape: every consumer span is a child of a producer span of the
    // same topic; nothing in the trace points at a parent outside it.
    let spans = trace["spans"].as_array().unwrap();
    let by_id: HashMap<&str, &Value> = spans.iter().map(|s| (s["spanID"].as_str().unwrap(), s)).collect();
    let parent = |s: &Value| -> Option<&Value> {
        let r = s["references"].as_array()?.iter().find(|r| r["refType"] == "CHILD_OF")?;
        by_id.get(r["spanID"].as_str()?).copied()
    };
    for s in spans {
        let name = s["operationName"].as_str().unwrap();
        if let Some(topic) = name.strip_suffix(" process") {
            let p = parent(s).unwrap_or_else(|| panic!("{name} has no parent in the trace"));
            assert_eq!(p["operationName"], format!("{topic} publish"), "{name} continues its producer");
        }
    }
    let root: Vec<&Value> = spans.iter().filter(|s| parent(s).is_none()).collect();
    assert!(
        root.iter().all(|s| s["operationName"] == "POST /orders"),
        "the HTTP request is the only root: {:?}",
        root.iter().map(|s| &s["operationName"]).collect::<Vec<_>>()
    );

    // 5. The order's log lines, found by trace id in both log stores.
    let http = &c.http;
    let vl = VICTORIALOGS.http();
    let lines = poll::until("the saga's log lines in VictoriaLogs", Duration::from_secs(60), Duration::from_millis(300), || async {
        http.get(format!("{vl}/internal/force_flush")).send().await?;
        let body = http
            .post(format!("{vl}/select/logsql/query"))
            .form(&[("query", format!(r#"trace_id:="{trace_id}""#))])
            .send()
            .await?
            .text()
            .await?;
        let rows: Vec<Value> = body.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        Ok(rows.iter().any(|r| r["_msg"] == "order placed").then_some(rows))
    })
    .await?;
    assert!(lines.iter().all(|r| r["trace_id"] == trace_id));
    let os = OPENSEARCH.http();
    poll::until("the saga's log lines in OpenSearch", Duration::from_secs(60), Duration::from_millis(300), || async {
        let resp = http
            .post(format!("{os}/glasshouse-logs-*/_search"))
            .json(&json!({ "query": { "term": { "trace.id.keyword": trace_id } } }))
            .send()
            .await?;
        let v: Value = resp.json().await?;
        let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
        Ok(hits.iter().any(|h| h["_source"]["message"] == "order placed" && h["_source"]["service"]["name"] == "order").then_some(()))
    })
    .await?;

    saga.stop().await
}

/// The trace Order started for this request, from its `traceresponse` header.
fn trace_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .map(str::to_owned)
        .expect("Order names the trace it started in traceresponse")
}

/// `(service, operation, tags)` for every span of a Jaeger trace.
fn spans_by_service(trace: &Value) -> Vec<(String, String, HashMap<String, String>)> {
    let Some(spans) = trace["spans"].as_array() else { return Vec::new() };
    spans
        .iter()
        .map(|s| {
            let svc =
                trace["processes"][s["processID"].as_str().unwrap_or_default()]["serviceName"].as_str().unwrap_or_default().to_owned();
            let tags = s["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap_or_default().to_owned(),
                        t["value"].as_str().map(str::to_owned).unwrap_or_else(|| t["value"].to_string()),
                    )
                })
                .collect();
            (svc, s["operationName"].as_str().unwrap_or_default().to_owned(), tags)
        })
        .collect()
}
