//! The HTTP API without Kafka traffic: authentication, query validation,
//! keyset pagination, health, and the served contract.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use chrono::{TimeZone, Utc};
use glasshouse_contracts::{CustomerId, Event, OrderConfirmed, OrderId};
use glasshouse_notification::render::render;
use glasshouse_notification::store::{Inserted, NotificationDoc};
use glasshouse_platform::auth::Role;
use glasshouse_tests::stack;
use support::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_authenticated_and_queries_validated() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let path = format!("/notifications?order_id={order}");

    assert_problem(app.get(&path, None).await?, 401, "unauthenticated").await?;
    assert_problem(app.get(&path, Some("not.a.jwt")).await?, 401, "unauthenticated").await?;

    let token = app.token("cust-1", vec![Role::Customer]);
    for bad in [
        "/notifications".to_owned(),
        format!("/notifications?order_id={order}&customer_id=cust-1"),
        format!("{path}&limit=0"),
        format!("{path}&limit=101"),
        format!("{path}&limit=-1"),
        "/notifications?order_id=not-a-uuid".to_owned(),
        "/notifications?customer_id=".to_owned(),
    ] {
        let body = assert_problem(app.get(&bad, Some(&token)).await?, 422, "validation-failed").await?;
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{bad}: {body}");
    }
    assert_problem(app.get(&format!("{path}&cursor=garbage"), Some(&token)).await?, 422, "invalid-cursor").await?;
    // Not a number at all: poem-openapi refuses it before the handler, still as problem+json.
    assert_problem(app.get(&format!("{path}&limit=ten"), Some(&token)).await?, 400, "bad-request").await?;

    // Valid and empty.
    let page = app.get_ok(&format!("{path}&limit=100"), &token).await?;
    assert_eq!(page, serde_json::json!({ "items": [] }));

    // Health: both dependencies checked.
    let ready = app.get("/health/ready", None).await?;
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await?;
    assert_eq!(ready["checks"]["mongodb"]["status"], "ok", "{ready}");
    assert_eq!(ready["checks"]["kafka"]["status"], "ok", "{ready}");
    assert_eq!(app.get("/health/live", None).await?.status(), 200);

    // The served contract is the committed one.
    let served: serde_yaml::Value = serde_yaml::from_str(&app.get("/openapi.yaml", None).await?.text().await?)?;
    let committed: serde_yaml::Value = serde_yaml::from_str(include_str!("../openapi.yaml"))?;
    assert_eq!(served, committed, "served /openapi.yaml differs from services/notification/openapi.yaml");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_pages_through_their_notifications_newest_first() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let owner = CustomerId::parse(&stack::unique_name("cust"))?;
    let other = CustomerId::parse(&stack::unique_name("cust"))?;
    // Five for the owner, two of them stored in the same millisecond (the id
    // breaks the tie), and one for someone else.
    let base = Utc.timestamp_millis_opt(1_750_000_000_000).single().unwrap();
    let mut expected = Vec::new();
    for (i, offset_ms) in [0, 10, 10, 20, 30].into_iter().enumerate() {
        let e = Event::new(OrderId::new(), OrderConfirmed { customer_id: owner.clone() });
        let doc = NotificationDoc::new(&e, render(&e).unwrap(), base + chrono::Duration::milliseconds(offset_ms));
        assert_eq!(app.store.insert(&doc).await?, Inserted::New, "#{i}");
        expected.push(doc);
    }
    let e = Event::new(OrderId::new(), OrderConfirmed { customer_id: other.clone() });
    app.store.insert(&NotificationDoc::new(&e, render(&e).unwrap(), base)).await?;
    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let expected: Vec<String> = expected.iter().map(|d| d.id.clone()).collect();

    let token = app.token(owner.as_str(), vec![Role::Customer]);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/notifications?customer_id={}&limit=2", owner.as_str());
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get_ok(&path, &token).await?;
        pages += 1;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2, "{page}");
        assert!(items.iter().all(|i| i["customer_id"] == owner.as_str()), "{page}");
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap_or_default().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected, "every notification once, newest first");
    app.stop().await
}
