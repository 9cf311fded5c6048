//! The HTTP API against the real service (MariaDB, Kafka, port 0): public
//! catalog reads (and Order's real client parsing them), admin writes with
//! auth and validation, restock idempotency, metrics, health, fault flags.

mod support;

use std::time::Duration;

use glasshouse_platform::http_client::{ClientSettings, ServiceClient};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, eventually, spawn_app, stock, write_faults};

const PROBLEM: &str = "application/problem+json";

/// Asserts a problem+json answer with `status` and type slug `slug`; returns the body.
async fn problem(resp: reqwest::Response, status: StatusCode, slug: &str) -> anyhow::Result<Value> {
    let got = resp.status();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = resp.json().await?;
    assert_eq!(got, status, "{body}");
    assert!(ct.starts_with(PROBLEM), "content-type {ct}");
    assert_eq!(body["type"], format!("https://glasshouse.dev/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status.as_u16());
    Ok(body)
}

async fn get_json(t: &TestApp, path: &str) -> anyhow::Result<Value> {
    let resp = t.http.get(t.url(path)).send().await?;
    anyhow::ensure!(resp.status() == StatusCode::OK, "GET {path}: {}", resp.status());
    Ok(resp.json().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_catalog_reads() -> anyhow::Result<()> {
    let t = spawn_app().await?;
    for (i, sku) in ["CAT-A", "CAT-B", "CAT-C", "CAT-D", "CAT-E"].iter().enumerate() {
        t.put_item(sku, i as i64 * 3).await?;
    }

    let item = get_json(&t, "/items/CAT-B").await?;
    assert_eq!(item, json!({"sku": "CAT-B", "name": "Test item CAT-B", "price": {"amount_minor": 1250, "currency": "EUR"}, "stock": 3}));
    problem(t.http.get(t.url("/items/NOPE-9")).send().await?, StatusCode::NOT_FOUND, "not-found").await?;
    let bad = problem(t.http.get(t.url("/items/cat-b")).send().await?, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await?;
    assert_eq!(bad["field"], "sku");

    // Batch read: known ones in SKU order, unknown ones simply absent.
    let batch = get_json(&t, "/items?skus=CAT-E,NOPE-1,CAT-A").await?;
    let skus: Vec<&str> = batch["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(skus, ["CAT-A", "CAT-E"]);
    assert_eq!(batch["next_cursor"], Value::Null);
    for q in [
        "skus=CAT-A,bad",
        "skus=",
        "skus=CAT-A,,CAT-B",
        "skus=CAT-A&limit=5",
        "limit=0",
        "limit=101",
        "limit=-1",
        "cursor=not%20a%20cursor",
    ] {
        problem(t.http.get(t.url(&format!("/items?{q}"))).send().await?, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await?;
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("S-{i}")).collect();
    problem(
        t.http.get(t.url(&format!("/items?skus={}", too_many.join(",")))).send().await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await?;

    // Order's own pricing client reads the batch answer.
    let client = ServiceClient::new(
        "inventory",
        ClientSettings { base_url: t.app.base.clone(), ..Default::default() },
        t.app.metrics.standard.clone(),
    )?;
    let prices = glasshouse_order::inventory::InventoryClient::new(client).prices(&["CAT-C".into(), "NOPE-2".into()]).await?;
    assert_eq!(prices.len(), 1);
    assert_eq!(prices["CAT-C"], glasshouse_order::inventory::Price { amount_minor: 1250, currency: "EUR".into() });

    // Listing: pages of 2 walk all five in order, the last page has no cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/items?limit=2&cursor={c}"),
            None => "/items?limit=2".to_owned(),
        };
        let page = get_json(&t, &path).await?;
        pages += 1;
        seen.extend(page["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, ["CAT-A", "CAT-B", "CAT-C", "CAT-D", "CAT-E"]);
    assert_eq!(pages, 3);
    let default_page = get_json(&t, "/items").await?;
    assert_eq!(default_page["items"].as_array().unwrap().len(), 5);

    // Metrics: the families exist, the low-stock gauge counts stock <= 5
    // (CAT-A 0, CAT-B 3), and requests are labelled by route template.
    eventually("the low-stock gauge", || async { Ok(t.app.sample("inventory_stock_low_items") == Some(2.0)) }).await?;
    let text = t.http.get(t.url("/metrics")).send().await?.text().await?;
    for needle in [
        r#"inventory_reservations_total{outcome="reserved"} 0"#,
        "inventory_stock_low_items 2",
        r#"fault_flag_active{flag="catalog_error_rate"} 0"#,
        r#"method="GET",route="/items","#,
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    // Routes are labelled by template, never by the raw SKU (bounded cardinality).
    let http: Vec<&str> = text.lines().filter(|l| l.starts_with("http_server_request_duration_seconds_count")).collect();
    assert!(http.iter().any(|l| l.contains(r#"method="GET",route="/items/{"#)), "{http:#?}");
    assert!(!http.iter().any(|l| l.contains("CAT-")), "{http:#?}");
    assert_eq!(t.http.get(t.url("/health/live")).send().await?.status(), StatusCode::OK);
    let ready = t.http.get(t.url("/health/ready")).send().await?;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await?;
    assert_eq!((ready["checks"]["mariadb"]["status"].as_str(), ready["checks"]["kafka"]["status"].as_str()), (Some("ok"), Some("ok")));

    // The served contract is the code's spec.
    let served = t.http.get(t.url("/openapi.yaml")).send().await?.text().await?;
    assert_eq!(served, glasshouse_inventory::app::spec_yaml().await?);
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_need_the_admin_role_and_valid_input() -> anyhow::Result<()> {
    let t = spawn_app().await?;
    let admin = t.env.admin();
    let customer = t.env.customer();
    let good = json!({"name": "Lamp", "price": {"amount_minor": 1999, "currency": "EUR"}, "stock": 7});

    // Create 201 with Location, replace 200.
    let created = t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&good).send().await?;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["location"], "/items/ADM-1");
    let replaced = t
        .http
        .put(t.url("/items/ADM-1"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Desk lamp", "price": {"amount_minor": 2499, "currency": "EUR"}, "stock": 4}))
        .send()
        .await?;
    assert_eq!(replaced.status(), StatusCode::OK);
    let before = json!({"sku": "ADM-1", "name": "Desk lamp", "price": {"amount_minor": 2499, "currency": "EUR"}, "stock": 4});
    assert_eq!(replaced.json::<Value>().await?, before);

    // No token: 401; a customer's token: 403 — for both writes, and nothing changes.
    let restock = json!({"quantity": 5});
    problem(t.http.put(t.url("/items/ADM-1")).json(&good).send().await?, StatusCode::UNAUTHORIZED, "unauthenticated").await?;
    problem(t.http.put(t.url("/items/ADM-1")).bearer_auth(&customer).json(&good).send().await?, StatusCode::FORBIDDEN, "forbidden").await?;
    problem(
        t.http.post(t.url("/items/ADM-1/restock")).header("Idempotency-Key", "k0").json(&restock).send().await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;
    problem(
        t.http.post(t.url("/items/ADM-1/restock")).bearer_auth(&customer).header("Idempotency-Key", "k0").json(&restock).send().await?,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    problem(
        t.http.put(t.url("/items/ADM-1")).bearer_auth("not-a-jwt").json(&good).send().await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await?;

    // Bad input: 422 naming the field, and nothing changed.
    let long_name = "x".repeat(201);
    for (body, field) in [
        (json!({"name": "Lamp", "price": {"amount_minor": -1, "currency": "EUR"}, "stock": 1}), "price.amount_minor"),
        (json!({"name": "Lamp", "price": {"amount_minor": 100, "currency": "eur"}, "stock": 1}), "price.currency"),
        (json!({"name": "Lamp", "price": {"amount_minor": 100, "currency": "EURO"}, "stock": 1}), "price.currency"),
        (json!({"name": "Lamp", "price": {"amount_minor": 1_000_000_000_001_i64, "currency": "EUR"}, "stock": 1}), "price.amount_minor"),
        (json!({"name": "Lamp", "price": {"amount_minor": 100, "currency": "EUR"}, "stock": -1}), "stock"),
        (json!({"name": "Lamp", "price": {"amount_minor": 100, "currency": "EUR"}, "stock": 1_000_000_001}), "stock"),
        (json!({"name": long_name, "price": {"amount_minor": 100, "currency": "EUR"}, "stock": 1}), "name"),
        (json!({"name": "   ", "price": {"amount_minor": 100, "currency": "EUR"}, "stock": 1}), "name"),
        (json!({"name": "a\u{0007}b", "price": {"amount_minor": 100, "currency": "EUR"}, "stock": 1}), "name"),
    ] {
        let body422 = problem(
            t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&body).send().await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        )
        .await?;
        assert_eq!(body422["field"], field, "{body}");
    }
    // 200 characters (multi-byte ones) is fine for the length rule: checked on a new SKU.
    let name200 = "é".repeat(200);
    let ok = t
        .http
        .put(t.url("/items/ADM-2"))
        .bearer_auth(&admin)
        .json(&json!({"name": name200, "price": {"amount_minor": 0, "currency": "USD"}, "stock": 0}))
        .send()
        .await?;
    assert_eq!(ok.status(), StatusCode::CREATED);
    problem(
        t.http.put(t.url("/items/adm-1")).bearer_auth(&admin).json(&good).send().await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await?;
    // Unknown fields and wrong types are unreadable requests (400), also changing nothing.
    let extra = json!({"name": "Lamp", "price": {"amount_minor": 100, "currency": "EUR"}, "stock": 1, "colour": "red"});
    problem(t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&extra).send().await?, StatusCode::BAD_REQUEST, "bad-request")
        .await?;
    assert_eq!(get_json(&t, "/items/ADM-1").await?, before, "refused writes changed nothing");

    // Restock: same key + body -> same answer, added once; other body -> 422.
    let first =
        t.http.post(t.url("/items/ADM-1/restock")).bearer_auth(&admin).header("Idempotency-Key", "rs-1").json(&restock).send().await?;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await?;
    assert_eq!(first["stock"], 9);
    let again: Value = t
        .http
        .post(t.url("/items/ADM-1/restock"))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "rs-1")
        .json(&restock)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(again, first);
    assert_eq!(stock(t.env.pool(), "ADM-1").await?, 9, "added once");
    let reused = t
        .http
        .post(t.url("/items/ADM-1/restock"))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "rs-1")
        .json(&json!({"quantity": 6}))
        .send()
        .await?;
    problem(reused, StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused").await?;
    let other_sku =
        t.http.post(t.url("/items/ADM-2/restock")).bearer_auth(&admin).header("Idempotency-Key", "rs-1").json(&restock).send().await?;
    problem(other_sku, StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused").await?;
    // Concurrent repeats of a new key: still added once, all answers equal.
    let answers = futures::future::join_all((0..5).map(|_| {
        t.http
            .post(t.url("/items/ADM-1/restock"))
            .bearer_auth(&admin)
            .header("Idempotency-Key", "rs-2")
            .json(&json!({"quantity": 10}))
            .send()
    }))
    .await;
    for a in answers {
        let a = a?;
        assert_eq!(a.status(), StatusCode::OK);
        assert_eq!(a.json::<Value>().await?["stock"], 19);
    }
    assert_eq!(stock(t.env.pool(), "ADM-1").await?, 19);
    for (q, status, slug) in
        [(0, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"), (1_000_001, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed")]
    {
        let r = t
            .http
            .post(t.url("/items/ADM-1/restock"))
            .bearer_auth(&admin)
            .header("Idempotency-Key", format!("rs-q{q}"))
            .json(&json!({"quantity": q}))
            .send()
            .await?;
        problem(r, status, slug).await?;
    }
    let unknown =
        t.http.post(t.url("/items/NOPE-3/restock")).bearer_auth(&admin).header("Idempotency-Key", "rs-3").json(&restock).send().await?;
    problem(unknown, StatusCode::NOT_FOUND, "not-found").await?;
    let no_key = t.http.post(t.url("/items/ADM-1/restock")).bearer_auth(&admin).json(&restock).send().await?;
    problem(no_key, StatusCode::BAD_REQUEST, "bad-request").await?;
    let bad_key =
        t.http.post(t.url("/items/ADM-1/restock")).bearer_auth(&admin).header("Idempotency-Key", "has space").json(&restock).send().await?;
    problem(bad_key, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await?;
    assert_eq!(stock(t.env.pool(), "ADM-1").await?, 19, "refused restocks changed nothing");
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM restocks").fetch_one(t.env.pool()).await?;
    assert_eq!(keys, 2, "only the two accepted keys are stored");
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_faults_follow_the_flag_file() -> anyhow::Result<()> {
    let t = spawn_app().await?;
    t.put_item("FLT-C", 10).await?;
    assert_eq!(t.http.get(t.url("/items/FLT-C")).send().await?.status(), StatusCode::OK);

    write_faults(&t.env.faults_file, r#"{"catalog_error_rate": 1.0}"#)?;
    eventually("the flag exported", || async { Ok(t.app.sample(r#"fault_flag_active{flag="catalog_error_rate"}"#) == Some(1.0)) }).await?;
    let body = problem(t.http.get(t.url("/items/FLT-C")).send().await?, StatusCode::SERVICE_UNAVAILABLE, "injected-fault").await?;
    assert_eq!(body["flag"], "catalog_error_rate");
    problem(t.http.get(t.url("/items?skus=FLT-C")).send().await?, StatusCode::SERVICE_UNAVAILABLE, "injected-fault").await?;
    problem(t.http.get(t.url("/items")).send().await?, StatusCode::SERVICE_UNAVAILABLE, "injected-fault").await?;
    // Writes are not catalog reads: unaffected.
    t.put_item("FLT-C", 11).await?;

    // (An invalid file keeping the previous flags is covered in `faults`'
    // unit tests, where the watcher's polls are driven step by step.)

    // Latency only: answers come, slower; then the file goes and all is off.
    write_faults(&t.env.faults_file, r#"{"catalog_latency_ms": 300}"#)?;
    eventually("latency flag on", || async { Ok(t.app.sample(r#"fault_flag_active{flag="catalog_latency_ms"}"#) == Some(1.0)) }).await?;
    let start = std::time::Instant::now();
    assert_eq!(t.http.get(t.url("/items/FLT-C")).send().await?.status(), StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(300), "the injected latency was applied");
    std::fs::remove_file(&t.env.faults_file)?;
    eventually("all flags off", || async { Ok(t.app.sample(r#"fault_flag_active{flag="catalog_latency_ms"}"#) == Some(0.0)) }).await?;
    assert_eq!(t.http.get(t.url("/items/FLT-C")).send().await?.status(), StatusCode::OK);
    t.stop().await
}
