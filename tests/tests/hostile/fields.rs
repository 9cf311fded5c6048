//! One policy for request members on every service (docs/contracts.md): an
//! unknown member (at any depth) or a member named twice is a 400
//! `bad-request`; a value breaking a rule the contract states (pattern,
//! length, range, item count) is a 422 `validation-failed` naming the field,
//! from the same validator that writes the rule into the contract. Nothing is
//! stored for any of them.

use glasshouse_platform::auth::Role;
use glasshouse_tests::services::Saga;
use serde_json::json;

use crate::support::{seed_item, send, stored_orders};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_duplicate_members_are_400_and_broken_rules_422() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let ann = saga.token("ann", Role::Customer);
    let admin = saga.token("ops", Role::Admin);
    seed_item(&http, &saga, "FLD-1", 10).await?;
    let orders = saga.order.url("/orders");
    let item = saga.inventory.url("/items/FLD-2");
    let raw = |url: &str, method: reqwest::Method, token: &str, body: &str, key: &str| {
        http.request(method, url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("Idempotency-Key", key)
            .body(body.to_owned())
    };

    // Unknown members, top level and nested; the same member twice.
    let unreadable = [
        (&orders, reqwest::Method::POST, &ann, r#"{"lines": [{"sku": "FLD-1", "quantity": 1}], "coupon": "FREE"}"#),
        (&orders, reqwest::Method::POST, &ann, r#"{"lines": [{"sku": "FLD-1", "quantity": 1, "price": 0}]}"#),
        (&orders, reqwest::Method::POST, &ann, r#"{"lines": [{"sku": "FLD-1", "quantity": 1}], "lines": []}"#),
        (&orders, reqwest::Method::POST, &ann, r#"{"lines": [{"sku": "FLD-1", "quantity": 1, "quantity": 900}]}"#),
        (&item, reqwest::Method::PUT, &admin, r#"{"name": "n", "price": {"amount_minor": 1, "currency": "EUR", "vat": 1}, "stock": 1}"#),
        (&item, reqwest::Method::PUT, &admin, r#"{"name": "n", "price": {"amount_minor": 1, "currency": "EUR"}, "stock": 1, "stock": 5}"#),
    ];
    for (i, (url, method, token, body)) in unreadable.into_iter().enumerate() {
        let a = send(raw(url, method, token, body, &format!("fld-{i}"))).await?;
        a.assert_problem(400, "bad-request");
    }

    // Rules the contract states: 422 naming the field.
    let broken = [
        (json!({"lines": []}), "lines"),
        (json!({"lines": (0..51).map(|i| json!({"sku": format!("S-{i}"), "quantity": 1})).collect::<Vec<_>>()}), "lines"),
        (json!({"lines": [{"sku": "FLD-1", "quantity": 0}]}), "quantity"),
        (json!({"lines": [{"sku": "FLD-1", "quantity": 1001}]}), "quantity"),
        (json!({"lines": [{"sku": "fld-1", "quantity": 1}]}), "sku"),
        (json!({"lines": [{"sku": "FLD-1", "quantity": 1}, {"sku": "FLD-1", "quantity": 2}]}), "lines[1].sku"),
    ];
    for (i, (body, field)) in broken.into_iter().enumerate() {
        let a = send(http.post(&orders).bearer_auth(&ann).header("Idempotency-Key", format!("rule-{i}")).json(&body)).await?;
        a.assert_problem(422, "validation-failed");
        assert_eq!(a.body["field"], field, "{body}: {}", a.body);
    }
    let a = send(
        http.post(&orders)
            .bearer_auth(&ann)
            .header("Idempotency-Key", "k".repeat(256))
            .json(&json!({"lines": [{"sku": "FLD-1", "quantity": 1}]})),
    )
    .await?;
    a.assert_problem(422, "validation-failed");
    assert_eq!(a.body["field"], "Idempotency-Key");
    for (svc, path, field) in [
        (&saga.order, "/orders?limit=101", "limit"),
        (&saga.inventory, "/items?limit=0", "limit"),
        (&saga.inventory, "/items/A_1", "sku"),
        (&saga.notification, "/notifications?customer_id=ann&limit=500", "limit"),
        (&saga.notification, "/notifications?order_id=nope", "order_id"),
    ] {
        let a = send(http.get(svc.url(path)).bearer_auth(&ann)).await?;
        a.assert_problem(422, "validation-failed");
        assert_eq!(a.body["field"], field, "{path}: {}", a.body);
    }
    let a = send(http.get(saga.order.url("/orders?limit=ten")).bearer_auth(&ann)).await?;
    a.assert_problem(400, "bad-request");

    assert_eq!(stored_orders(&saga).await?, 0, "no refused request stored an order");
    let a = send(http.get(&item)).await?;
    a.assert_problem(404, "not-found");
    saga.stop().await
}
