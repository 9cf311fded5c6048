//! The HTTP API against the real service (MariaDB, Kafka, port 0): public
//! catalog reads (and Order's real client parsing them), admin writes with
//! auth and validation, stock that changes only by deltas (a stale write
//! cannot undo reservations made through Kafka; `If-Match`; adjustments),
//! restock and adjustment idempotency, the stock ledger, metrics, health,
//! and fault flags (also through the real binary started elsewhere).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::time::Duration;

use glasshouse_contracts::{EventType, Payload};
use glasshouse_platform::http_client::{ClientSettings, ServiceClient};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Env, Process, TestApp, TopicReader, assert_books_balance, count, eventually, order_created, spawn_app, stock, write_faults};

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
    let got = t.http.get(t.url("/items/CAT-B")).send().await?;
    assert_eq!(got.headers()["etag"], "\"1\"", "a new item is version 1");
    problem(t.http.get(t.url("/items/NOPE-9")).send().await?, StatusCode::NOT_FOUND, "not-found").await?;
    let bad = problem(t.http.get(t.url("/items/cat-b")).send().await?, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await?;
    assert_eq!(bad["field"], "sku");

    // Batch read: known ones in SKU order, unknown ones simply absent.
    let batch = get_json(&t, "/items?skus=CAT-E,NOPE-1,CAT-A").await?;
    let skus: Vec<&str> = batch["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(skus, ["CAT-A", "CAT-E"]);
    assert_eq!(batch["next_cursor"], Value::Null);
    for q in ["skus=CAT-A,bad", "skus=", "skus=CAT-A,,CAT-B", "skus=CAT-A&limit=5", "limit=0", "limit=101", "limit=-1"] {
        problem(t.http.get(t.url(&format!("/items?{q}"))).send().await?, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await?;
    }
    // A cursor the API did not give out (a bare SKU was once accepted).
    for c in ["not%20a%20cursor", "CAT-A"] {
        problem(t.http.get(t.url(&format!("/items?cursor={c}"))).send().await?, StatusCode::UNPROCESSABLE_ENTITY, "invalid-cursor").await?;
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("S-{i}")).collect();
    problem(
        t.http.get(t.url(&format!("/items?skus={}", too_many.join(",")))).send().await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await?;

    // The batch answer, through the platform client: the known SKU priced as
    // stored, the unknown one absent, no cursor on a batch (Order's generated
    // client decodes the same answer: tests/tests/inventory_client.rs).
    let client = ServiceClient::new(
        "inventory",
        ClientSettings { base_url: t.app.base.clone(), ..Default::default() },
        t.app.metrics.standard.clone(),
    )?;
    let page: serde_json::Value = client.get_json("/items?skus=CAT-C,NOPE-2").await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["items"][0]["price"], serde_json::json!({ "amount_minor": 1250, "currency": "EUR" }));
    assert!(page.get("next_cursor").is_none(), "absent, not null: {page}");

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

    // Create 201 with Location and ETag; update name and price 200 (stock left out, untouched).
    let created = t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&good).send().await?;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["location"], "/items/ADM-1");
    assert_eq!(created.headers()["etag"], "\"1\"");
    let renamed = json!({"name": "Desk lamp", "price": {"amount_minor": 2499, "currency": "EUR"}});
    let replaced = t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&renamed).send().await?;
    assert_eq!(replaced.status(), StatusCode::OK);
    assert_eq!(replaced.headers()["etag"], "\"2\"");
    let before = json!({"sku": "ADM-1", "name": "Desk lamp", "price": {"amount_minor": 2499, "currency": "EUR"}, "stock": 7});
    assert_eq!(replaced.json::<Value>().await?, before);
    // The same document again: accepted, nothing changed, same version. The
    // current stock may be repeated; another one is refused, changing nothing.
    let same = t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&renamed).send().await?;
    assert_eq!((same.status(), same.headers()["etag"].to_str()?), (StatusCode::OK, "\"2\""));
    let mut with_stock = renamed.clone();
    with_stock["stock"] = json!(7);
    let same = t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&with_stock).send().await?;
    assert_eq!((same.status(), same.headers()["etag"].to_str()?), (StatusCode::OK, "\"2\""));
    with_stock["stock"] = json!(4);
    let refused = problem(
        t.http.put(t.url("/items/ADM-1")).bearer_auth(&admin).json(&with_stock).send().await?,
        StatusCode::CONFLICT,
        "stock-not-writable",
    )
    .await?;
    assert_eq!(refused["stock"], 7);
    // Creating needs an initial stock.
    let no_stock = problem(
        t.http.put(t.url("/items/ADM-9")).bearer_auth(&admin).json(&renamed).send().await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await?;
    assert_eq!(no_stock["field"], "stock");
    problem(t.http.get(t.url("/items/ADM-9")).send().await?, StatusCode::NOT_FOUND, "not-found").await?;

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

    // Bad input: 422 naming the field (the innermost member, as the
    // contract's validators report it), and nothing changed.
    let long_name = "x".repeat(201);
    for (body, field) in [
        (json!({"name": "Lamp", "price": {"amount_minor": -1, "currency": "EUR"}, "stock": 1}), "amount_minor"),
        (json!({"name": "Lamp", "price": {"amount_minor": 100, "currency": "eur"}, "stock": 1}), "currency"),
        (json!({"name": "Lamp", "price": {"amount_minor": 100, "currency": "EURO"}, "stock": 1}), "currency"),
        (json!({"name": "Lamp", "price": {"amount_minor": 1_000_000_000_001_i64, "currency": "EUR"}, "stock": 1}), "amount_minor"),
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
    assert_eq!(first["stock"], 12);
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
    assert_eq!(stock(t.env.pool(), "ADM-1").await?, 12, "added once");
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
        assert_eq!(a.json::<Value>().await?["stock"], 22);
    }
    assert_eq!(stock(t.env.pool(), "ADM-1").await?, 22);
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
    assert_eq!(stock(t.env.pool(), "ADM-1").await?, 22, "refused restocks changed nothing");
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM restocks").fetch_one(t.env.pool()).await?;
    assert_eq!(keys, 2, "only the two accepted keys are stored");
    assert_books_balance(t.env.pool()).await?;
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
    let rename = json!({"name": "Renamed", "price": {"amount_minor": 1300, "currency": "EUR"}});
    let put = t.http.put(t.url("/items/FLT-C")).bearer_auth(t.env.admin()).json(&rename).send().await?;
    assert_eq!(put.status(), StatusCode::OK);

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

/// Waits until the inventory topic holds `n` verdicts (reserved or rejected)
/// and returns how many of them were reservations.
async fn verdicts(reader: &mut TopicReader, n: usize) -> anyhow::Result<usize> {
    let got = reader.until(&format!("{n} verdicts"), Duration::from_secs(60), |evs| evs.len() >= n).await?;
    anyhow::ensure!(got.len() == n, "more verdicts than orders: {:?}", support::summary(got));
    Ok(count(got, EventType::InventoryReserved))
}

/// The case seen live: stock 10; three 1-unit orders reserve (stock 7); an
/// admin PUTs a new price with the `stock: 10` read before the orders; ten
/// more 1-unit orders. Before, the PUT answered 200 and put 10 back, and all
/// ten confirmed: 13 sold from 10. Now the stale stock is refused (409,
/// nothing changed), a stale `If-Match` too (412), the price changes without
/// touching stock, and exactly 7 of the 10 later orders are reserved.
/// Reservations run the real path: `order.created` through Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_stock_write_cannot_undo_reservations() -> anyhow::Result<()> {
    let t = spawn_app().await?;
    let admin = t.env.admin();
    t.put_item("LIVE-1", 10).await?;
    let read = t.http.get(t.url("/items/LIVE-1")).send().await?;
    let read_etag = read.headers()["etag"].to_str()?.to_owned();
    let read: Value = read.json().await?;
    assert_eq!(read["stock"], 10);

    let producer = support::producer()?;
    let mut reader = TopicReader::new(&t.env.inventory_topic())?;
    for _ in 0..3 {
        support::send(&producer, &t.env.orders_topic(), &order_created(&[("LIVE-1", 1)])).await?;
    }
    assert_eq!(verdicts(&mut reader, 3).await?, 3, "the first three orders are reserved");
    assert_eq!(stock(t.env.pool(), "LIVE-1").await?, 7);

    // The routine price change, with the stock read before the orders.
    let mut stale = read.clone();
    stale.as_object_mut().unwrap().remove("sku");
    stale["price"]["amount_minor"] = json!(1499);
    let refused = problem(
        t.http.put(t.url("/items/LIVE-1")).bearer_auth(&admin).json(&stale).send().await?,
        StatusCode::CONFLICT,
        "stock-not-writable",
    )
    .await?;
    assert_eq!(refused["stock"], 7, "{refused}");
    // The ETag read before the orders is stale: reservations changed the item.
    let mut price_only = stale.clone();
    price_only.as_object_mut().unwrap().remove("stock");
    let precondition =
        t.http.put(t.url("/items/LIVE-1")).bearer_auth(&admin).header("If-Match", &read_etag).json(&price_only).send().await?;
    let current_etag = precondition.headers().get("etag").map(|v| v.to_str().map(str::to_owned)).transpose()?;
    problem(precondition, StatusCode::PRECONDITION_FAILED, "precondition-failed").await?;
    assert_ne!(current_etag.as_deref(), Some(read_etag.as_str()));
    let unchanged = get_json(&t, "/items/LIVE-1").await?;
    assert_eq!(
        (unchanged["stock"].as_i64(), unchanged["price"]["amount_minor"].as_i64()),
        (Some(7), Some(1250)),
        "refusals changed nothing"
    );

    // With the current ETag (as the 412 gave it), the price changes; stock stays.
    let ok = t
        .http
        .put(t.url("/items/LIVE-1"))
        .bearer_auth(&admin)
        .header("If-Match", current_etag.as_deref().unwrap_or_default())
        .json(&price_only)
        .send()
        .await?;
    assert_eq!(ok.status(), StatusCode::OK);
    let ok: Value = ok.json().await?;
    assert_eq!((ok["stock"].as_i64(), ok["price"]["amount_minor"].as_i64()), (Some(7), Some(1499)));

    for _ in 0..10 {
        support::send(&producer, &t.env.orders_topic(), &order_created(&[("LIVE-1", 1)])).await?;
    }
    assert_eq!(verdicts(&mut reader, 13).await?, 10, "10 sold from 10: exactly 7 of the later 10 are reserved");
    for e in &reader.events[3..] {
        if let Payload::InventoryRejected(r) = e.payload() {
            assert!(matches!(r.reason, glasshouse_contracts::RejectionReason::OutOfStock { .. }), "{:?}", r.reason);
        }
    }
    assert_eq!(stock(t.env.pool(), "LIVE-1").await?, 0);
    assert_books_balance(t.env.pool()).await?;
    t.stop().await
}

/// `If-Match` on PUT: a stale tag is 412 (problem+json, current ETag given)
/// and changes nothing; the current one, `*` and a list holding it pass; a
/// weak or malformed tag never matches; a missing item matches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_match_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let t = spawn_app().await?;
    let admin = t.env.admin();
    t.put_item("ETAG-1", 5).await?;
    let v1 = t.http.get(t.url("/items/ETAG-1")).send().await?.headers()["etag"].to_str()?.to_owned();
    assert_eq!(v1, "\"1\"");
    let put = |tag: &str, amount: i64| {
        t.http
            .put(t.url("/items/ETAG-1"))
            .bearer_auth(&admin)
            .header("If-Match", tag)
            .json(&json!({"name": "Etag item", "price": {"amount_minor": amount, "currency": "EUR"}}))
            .send()
    };
    let first = put(&v1, 200).await?;
    assert_eq!(first.status(), StatusCode::OK);
    let v2 = first.headers()["etag"].to_str()?.to_owned();
    assert_eq!(v2, "\"2\"");
    let before = get_json(&t, "/items/ETAG-1").await?;

    // The tag read before that write is stale now.
    let stale = put(&v1, 300).await?;
    assert_eq!(stale.headers().get("etag").map(|v| v.to_str().unwrap_or_default()), Some(v2.as_str()));
    let body = problem(stale, StatusCode::PRECONDITION_FAILED, "precondition-failed").await?;
    assert_eq!(body["etag"], v2.as_str());
    for tag in ["W/\"2\"", "2", "\"nonsense\""] {
        problem(put(tag, 300).await?, StatusCode::PRECONDITION_FAILED, "precondition-failed").await?;
    }
    assert_eq!(get_json(&t, "/items/ETAG-1").await?, before, "refused writes changed nothing");
    let version: i64 = sqlx::query_scalar("SELECT version FROM items WHERE sku = 'ETAG-1'").fetch_one(t.env.pool()).await?;
    assert_eq!(version, 2);

    // A list holding the current tag, and `*`, pass.
    let listed = put(&format!("\"7\", {v2}"), 400).await?;
    assert_eq!((listed.status(), listed.headers()["etag"].to_str()?), (StatusCode::OK, "\"3\""));
    let any = put("*", 500).await?;
    assert_eq!((any.status(), any.headers()["etag"].to_str()?), (StatusCode::OK, "\"4\""));

    // No item: no tag matches, not even `*`; nothing is created.
    for tag in ["*", "\"1\""] {
        let missing = t
            .http
            .put(t.url("/items/ETAG-2"))
            .bearer_auth(&admin)
            .header("If-Match", tag)
            .json(&json!({"name": "New", "price": {"amount_minor": 1, "currency": "EUR"}, "stock": 1}))
            .send()
            .await?;
        problem(missing, StatusCode::PRECONDITION_FAILED, "precondition-failed").await?;
    }
    problem(t.http.get(t.url("/items/ETAG-2")).send().await?, StatusCode::NOT_FOUND, "not-found").await?;
    t.stop().await
}

async fn adjust(t: &TestApp, token: Option<&str>, sku: &str, key: Option<&str>, body: Value) -> anyhow::Result<reqwest::Response> {
    let mut req = t.http.post(t.url(&format!("/items/{sku}/adjustments"))).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    Ok(req.send().await?)
}

/// `POST /items/{sku}/adjustments`: admin only; a delta with a reason, on
/// the ledger; never below zero (409, nothing changed, key not used up);
/// idempotent by key (same body: same answer, applied once, also when
/// concurrent; other body: 422); bad input refused, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adjustments_change_stock_by_recorded_deltas() -> anyhow::Result<()> {
    let t = spawn_app().await?;
    let pool = t.env.pool();
    let admin = t.env.admin();
    let admin = Some(admin.as_str());
    t.put_item("ADJ-1", 5).await?;
    t.put_item("ADJ-2", 5).await?;
    let damaged = json!({"delta": -2, "reason": "damaged"});

    // 401 without a token, 403 for a customer: nothing changes.
    problem(adjust(&t, None, "ADJ-1", Some("a0"), damaged.clone()).await?, StatusCode::UNAUTHORIZED, "unauthenticated").await?;
    let customer = t.env.customer();
    problem(adjust(&t, Some(&customer), "ADJ-1", Some("a0"), damaged.clone()).await?, StatusCode::FORBIDDEN, "forbidden").await?;
    assert_eq!(stock(pool, "ADJ-1").await?, 5);

    // Applied once; the same key and body again: the same answer.
    let first = adjust(&t, admin, "ADJ-1", Some("a1"), damaged.clone()).await?;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await?;
    assert_eq!(first["stock"], 3);
    let again = adjust(&t, admin, "ADJ-1", Some("a1"), damaged.clone()).await?;
    assert_eq!((again.status(), again.json::<Value>().await?), (StatusCode::OK, first.clone()));
    assert_eq!(stock(pool, "ADJ-1").await?, 3, "applied once");
    // The same key with another delta, reason or SKU: 422, nothing changed.
    for (sku, body) in [
        ("ADJ-1", json!({"delta": -1, "reason": "damaged"})),
        ("ADJ-1", json!({"delta": -2, "reason": "lost"})),
        ("ADJ-2", damaged.clone()),
    ] {
        problem(adjust(&t, admin, sku, Some("a1"), body).await?, StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused").await?;
    }
    assert_eq!((stock(pool, "ADJ-1").await?, stock(pool, "ADJ-2").await?), (3, 5));

    // Below zero: 409 with the current stock; nothing changed, the key is still free.
    let lost = json!({"delta": -4, "reason": "lost"});
    let below = problem(adjust(&t, admin, "ADJ-1", Some("a2"), lost.clone()).await?, StatusCode::CONFLICT, "insufficient-stock").await?;
    assert_eq!(below["stock"], 3);
    assert_eq!(stock(pool, "ADJ-1").await?, 3);
    let found = adjust(&t, admin, "ADJ-1", Some("a3"), json!({"delta": 10, "reason": "found"})).await?;
    assert_eq!(found.json::<Value>().await?["stock"], 13);
    let later = adjust(&t, admin, "ADJ-1", Some("a2"), lost).await?;
    assert_eq!((later.status(), later.json::<Value>().await?["stock"].as_i64()), (StatusCode::OK, Some(9)));
    // Exactly to zero is fine; a count correction goes either way.
    let zero = adjust(&t, admin, "ADJ-2", Some("a4"), json!({"delta": -5, "reason": "count_correction"})).await?;
    assert_eq!(zero.json::<Value>().await?["stock"], 0);
    let up = adjust(&t, admin, "ADJ-2", Some("a5"), json!({"delta": 2, "reason": "count_correction"})).await?;
    assert_eq!(up.json::<Value>().await?["stock"], 2);

    // Concurrent repeats of a new key: applied once, every answer the same.
    let answers =
        futures::future::join_all((0..5).map(|_| adjust(&t, admin, "ADJ-1", Some("a6"), json!({"delta": -1, "reason": "lost"})))).await;
    for a in answers {
        let a = a?;
        assert_eq!(a.status(), StatusCode::OK);
        assert_eq!(a.json::<Value>().await?["stock"], 8);
    }
    assert_eq!(stock(pool, "ADJ-1").await?, 8);

    // Bad input: 422 naming the field (or 400 for an unreadable body), nothing changed.
    for (body, field) in [
        (json!({"delta": 0, "reason": "count_correction"}), "delta"),
        (json!({"delta": 1, "reason": "damaged"}), "delta"),
        (json!({"delta": 1, "reason": "lost"}), "delta"),
        (json!({"delta": -1, "reason": "found"}), "delta"),
        (json!({"delta": 1_000_001, "reason": "found"}), "delta"),
        (json!({"delta": -1_000_001, "reason": "count_correction"}), "delta"),
    ] {
        let p =
            problem(adjust(&t, admin, "ADJ-1", Some("bad"), body.clone()).await?, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed")
                .await?;
        assert_eq!(p["field"], field, "{body}");
    }
    for body in [json!({"delta": -1, "reason": "stolen"}), json!({"delta": -1}), json!({"delta": -1, "reason": "lost", "note": "x"})] {
        problem(adjust(&t, admin, "ADJ-1", Some("bad"), body).await?, StatusCode::BAD_REQUEST, "bad-request").await?;
    }
    problem(adjust(&t, admin, "ADJ-1", None, damaged.clone()).await?, StatusCode::BAD_REQUEST, "bad-request").await?;
    let bad_key = problem(
        adjust(&t, admin, "ADJ-1", Some("has space"), damaged.clone()).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await?;
    assert_eq!(bad_key["field"], "Idempotency-Key");
    problem(adjust(&t, admin, "NOPE-1", Some("a7"), damaged.clone()).await?, StatusCode::NOT_FOUND, "not-found").await?;
    problem(adjust(&t, admin, "nope", Some("a7"), damaged).await?, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await?;
    assert_eq!((stock(pool, "ADJ-1").await?, stock(pool, "ADJ-2").await?), (8, 2), "refusals changed nothing");

    // The ledger: two initial rows, then one row per accepted adjustment.
    let rows: Vec<(Vec<u8>, i64, Vec<u8>)> =
        sqlx::query_as("SELECT sku, delta, reason FROM stock_adjustments ORDER BY id").fetch_all(pool).await?;
    let rows: Vec<(String, i64, String)> =
        rows.into_iter().map(|(s, d, r)| (String::from_utf8_lossy(&s).into_owned(), d, String::from_utf8_lossy(&r).into_owned())).collect();
    let want: Vec<(String, i64, String)> = [
        ("ADJ-1", 5, "initial"),
        ("ADJ-2", 5, "initial"),
        ("ADJ-1", -2, "damaged"),
        ("ADJ-1", 10, "found"),
        ("ADJ-1", -4, "lost"),
        ("ADJ-2", -5, "count_correction"),
        ("ADJ-2", 2, "count_correction"),
        ("ADJ-1", -1, "lost"),
    ]
    .into_iter()
    .map(|(s, d, r)| (s.to_owned(), d, r.to_owned()))
    .collect();
    assert_eq!(rows, want);
    assert_books_balance(pool).await?;
    t.stop().await
}

/// The real binary, started in a working directory that is not the stack
/// home, with the committed (relative) `faults.file` and `GLASSHOUSE_HOME`
/// set as deploy/local sets it: the flag written at the documented place,
/// `$GLASSHOUSE_HOME/etc/inventory/faults.json`, takes effect, and
/// `fault_flags_file{path}` names that absolute path. (Before, the path was
/// taken relative to the working directory, and the flag was never read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_flags_are_read_from_the_stack_home_whatever_the_working_directory() -> anyhow::Result<()> {
    let env = Env::new(1).await?;
    let home = env.dir.join("home");
    let elsewhere = env.dir.join("elsewhere");
    std::fs::create_dir_all(home.join("etc/inventory"))?;
    std::fs::create_dir_all(&elsewhere)?;
    let mut service = Process::spawn(&env, &elsewhere, &[("GLASSHOUSE_HOME", home.to_str().unwrap())])?;
    service.ready().await?;
    let http = reqwest::Client::new();
    let flag_file = home.join("etc/inventory/faults.json");
    let metrics = http.get(format!("{}/metrics", service.base)).send().await?.text().await?;
    let series = format!(r#"fault_flags_file{{path="{}"}}"#, flag_file.display());
    assert_eq!(support::sample(&metrics, &series), Some(1.0), "{series} in\n{metrics}");
    assert!(service.output().contains(&flag_file.display().to_string()), "the path is logged at start:\n{}", service.output());

    let created = http
        .put(format!("{}/items/HOME-1", service.base))
        .bearer_auth(env.admin())
        .json(&json!({"name": "Home", "price": {"amount_minor": 100, "currency": "EUR"}, "stock": 1}))
        .send()
        .await?;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(http.get(format!("{}/items/HOME-1", service.base)).send().await?.status(), StatusCode::OK);

    write_faults(&flag_file, r#"{"catalog_error_rate": 1.0}"#)?;
    let url = format!("{}/items/HOME-1", service.base);
    eventually("the flag in the stack home to take effect", || async {
        Ok(http.get(&url).send().await?.status() == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await?;
    problem(http.get(&url).send().await?, StatusCode::SERVICE_UNAVAILABLE, "injected-fault").await?;
    let metrics = http.get(format!("{}/metrics", service.base)).send().await?.text().await?;
    assert_eq!(support::sample(&metrics, r#"fault_flag_active{flag="catalog_error_rate"}"#), Some(1.0));
    assert!(!elsewhere.join("etc").exists(), "nothing is looked for under the working directory");
    drop(service);
    env.drop().await
}

/// A relative `faults.file` with no `GLASSHOUSE_HOME` to resolve it against
/// stops the start with a message naming both fixes, instead of running with
/// flags nobody can set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_flag_file_without_a_stack_home_stops_the_start() -> anyhow::Result<()> {
    let env = Env::new(1).await?;
    let mut service = Process::spawn(&env, &env.dir, &[])?;
    let status = service.exit().await?;
    assert!(!status.success());
    let out = service.output();
    for needle in ["faults.file etc/inventory/faults.json", "GLASSHOUSE_HOME", "APP_FAULTS__FILE"] {
        assert!(out.contains(needle), "missing {needle} in\n{out}");
    }
    // An absolute path needs no home.
    let flag_file = env.dir.join("flags.json");
    let mut absolute = Process::spawn(&env, &env.dir, &[("APP_FAULTS__FILE", flag_file.to_str().unwrap())])?;
    absolute.ready().await?;
    let metrics = reqwest::get(format!("{}/metrics", absolute.base)).await?.text().await?;
    assert_eq!(support::sample(&metrics, &format!(r#"fault_flags_file{{path="{}"}}"#, flag_file.display())), Some(1.0));
    drop(absolute);
    env.drop().await
}

/// The ledger migration on a database that already has history (items,
/// restocks, held and released reservations, written as the code before the
/// ledger did): each item gets the `opening_balance` that makes the books
/// balance, and from there on the code keeps them balanced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_migration_opens_balanced_books_for_existing_items() -> anyhow::Result<()> {
    let db = glasshouse_tests::db::ScratchMySql::new().await?;
    let pool = &db.pool;
    // The schema as it was: the platform's tables and the first inventory migration.
    let mut before = sqlx::migrate!("./migrations");
    let first = before.migrations.iter().take(1).cloned().collect::<Vec<_>>();
    before.migrations = first.into();
    glasshouse_platform::migrations::run_mysql(pool, Some(before)).await?;
    for sql in [
        "INSERT INTO items (sku, name, price_minor, currency, stock) VALUES ('OLD-A', 'a', 100, 'EUR', 4), ('OLD-B', 'b', 100, 'EUR', 0), ('OLD-C', 'c', 100, 'EUR', 9)",
        "INSERT INTO restocks (idempotency_key, sku, quantity, response_body) VALUES ('r1', 'OLD-A', 5, '{}'), ('r2', 'OLD-C', 20, '{}')",
        "INSERT INTO reservations (order_id, sku, quantity) VALUES ('00000000-0000-0000-0000-000000000001', 'OLD-A', 3), ('00000000-0000-0000-0000-000000000002', 'OLD-B', 2)",
        "INSERT INTO reservations (order_id, sku, quantity, released_at) VALUES ('00000000-0000-0000-0000-000000000003', 'OLD-A', 7, CURRENT_TIMESTAMP(6))",
    ] {
        sqlx::query(sql).execute(pool).await?;
    }
    glasshouse_platform::migrations::run_mysql(pool, Some(sqlx::migrate!("./migrations"))).await?;
    let opening: Vec<(Vec<u8>, i64)> =
        sqlx::query_as("SELECT sku, delta FROM stock_adjustments WHERE reason = 'opening_balance' ORDER BY sku").fetch_all(pool).await?;
    // OLD-A: 4 in stock + 3 held - 5 restocked; OLD-B: 0 + 2; OLD-C: 9 - 20 (stock was overwritten lower once).
    assert_eq!(opening, vec![(b"OLD-A".to_vec(), 2), (b"OLD-B".to_vec(), 2), (b"OLD-C".to_vec(), -11)]);
    assert_books_balance(pool).await?;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM items ORDER BY sku").fetch_all(pool).await?;
    assert_eq!(versions, [1, 1, 1]);

    // Releasing an old reservation keeps them balanced.
    let mut tx = pool.begin().await?;
    let back = glasshouse_inventory::store::release(&mut tx, "00000000-0000-0000-0000-000000000001".parse()?).await?;
    tx.commit().await?;
    assert_eq!(back.len(), 1);
    assert_eq!(stock(pool, "OLD-A").await?, 7);
    assert_books_balance(pool).await?;
    db.drop_db().await
}
