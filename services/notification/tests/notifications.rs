//! The Notification service end to end against the real FerretDB and Kafka:
//! events produced to `<prefix>orders.v1` become notifications listed over
//! HTTP, once per event, visible to the owner and admins only.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::time::Duration;

use glasshouse_contracts::{
    CustomerId, Event, InventoryReserved, Money, NonEmpty, OrderConfirmed, OrderCreated, OrderId, OrderLine, Quantity, Sku, StockLine,
};
use glasshouse_platform::auth::Role;
use glasshouse_platform::consumer::dlq_topic;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use support::{assert_problem, spawn_app};

fn customer() -> CustomerId {
    CustomerId::parse(&stack::unique_name("cust")).unwrap()
}

fn created(order: OrderId, who: &CustomerId) -> Event {
    let line = OrderLine {
        sku: Sku::parse("MUG-BLUE").unwrap(),
        quantity: Quantity::new(2).unwrap(),
        unit_price: Money::parse(1250, "EUR").unwrap(),
    };
    Event::new(order, OrderCreated::new(who.clone(), NonEmpty::one(line)).unwrap())
}

fn confirmed(order: OrderId, who: &CustomerId) -> Event {
    Event::new(order, OrderConfirmed { customer_id: who.clone() })
}

fn ids(page: &serde_json::Value) -> Vec<String> {
    page["items"].as_array().into_iter().flatten().map(|i| i["event_id"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_events_become_notifications_for_the_owner_and_admins() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let owner = customer();
    let order = OrderId::new();
    let (e1, e2) = (created(order, &owner), confirmed(order, &owner));
    app.produce(&e1).await?;
    app.produce(&e2).await?;

    let owner_token = app.token(owner.as_str(), vec![Role::Customer]);
    let by_order = format!("/notifications?order_id={order}");
    let page = app.wait_for_items(&by_order, &owner_token, 2).await?;
    // Newest first: the confirmation was stored after the creation.
    assert_eq!(ids(&page), vec![e2.id().to_string(), e1.id().to_string()], "{page}");
    // The last page has no `next_cursor` member at all (never `null`).
    assert!(page.as_object().is_some_and(|o| !o.contains_key("next_cursor")), "{page}");
    let [confirmation, creation] = [&page["items"][0], &page["items"][1]];
    assert_eq!(confirmation["event_type"], "order.confirmed");
    assert_eq!(confirmation["subject"], format!("Your order {order} is confirmed"));
    assert_eq!(confirmation["order_id"], order.to_string());
    assert_eq!(confirmation["customer_id"], owner.as_str());
    assert_eq!(confirmation["channel"], "email");
    assert_eq!(creation["event_type"], "order.created");
    assert_eq!(creation["subject"], format!("We received your order {order}"));
    assert!(creation["body"].as_str().unwrap_or_default().contains("- 2 x MUG-BLUE at 12.50 EUR each"), "{creation}");
    let occurred: chrono::DateTime<chrono::Utc> = serde_json::from_value(creation["occurred_at"].clone())?;
    assert_eq!(occurred.timestamp_millis(), e1.occurred_at().timestamp_millis());
    let stored_at: chrono::DateTime<chrono::Utc> = serde_json::from_value(creation["created_at"].clone())?;
    assert!(stored_at.timestamp_millis() >= occurred.timestamp_millis(), "{creation}");
    assert!(uuid::Uuid::parse_str(creation["id"].as_str().unwrap_or_default()).is_ok(), "{creation}");

    // The owner's own listing has the same two.
    let mine = app.get_ok(&format!("/notifications?customer_id={}", owner.as_str()), &owner_token).await?;
    assert_eq!(ids(&mine), ids(&page));

    // Another customer: nothing of this order, and no listing of the owner's.
    let stranger = app.token("someone-else", vec![Role::Customer]);
    let theirs = app.get_ok(&by_order, &stranger).await?;
    assert_eq!(theirs["items"], serde_json::json!([]), "{theirs}");
    let refused = app.get(&format!("/notifications?customer_id={}", owner.as_str()), Some(&stranger)).await?;
    assert_problem(refused, 403, "forbidden").await?;

    // An admin sees both ways.
    let admin = app.token("ops-1", vec![Role::Admin]);
    assert_eq!(ids(&app.get_ok(&by_order, &admin).await?), ids(&page));
    assert_eq!(ids(&app.get_ok(&format!("/notifications?customer_id={}", owner.as_str()), &admin).await?), ids(&page));

    let text = app.scrape().await?;
    for needle in [
        r#"notifications_total{type="order.created"} 1"#,
        r#"notifications_total{type="order.confirmed"} 1"#,
        r#"order_to_notification_seconds_count{type="order.created"} 1"#,
        r#"order_to_notification_seconds_count{type="order.confirmed"} 1"#,
        r#"order_to_notification_seconds_bucket{le="60.0",type="order.confirmed"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let consumed =
        format!(r#"messaging_consume_duration_seconds_count{{service="notification",topic="{}",outcome="success"}} 2"#, app.orders_topic);
    assert!(text.contains(&consumed), "missing {consumed} in\n{text}");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_is_stored_once() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let owner = customer();
    let order = OrderId::new();
    let (e1, marker) = (created(order, &owner), confirmed(order, &owner));
    // The same bytes twice, as after a crash between insert and offset commit;
    // then a marker: once it is stored, both deliveries have been handled
    // (one partition, in order).
    let bytes = e1.to_vec()?;
    app.produce_raw(&e1.key(), &bytes).await?;
    app.produce_raw(&e1.key(), &bytes).await?;
    app.produce(&marker).await?;

    let token = app.token(owner.as_str(), vec![Role::Customer]);
    let page = app.wait_for_items(&format!("/notifications?order_id={order}"), &token, 2).await?;
    assert_eq!(ids(&page), vec![marker.id().to_string(), e1.id().to_string()], "{page}");
    assert_eq!(app.store.by_event(&e1.id().to_string()).await?.len(), 1, "one document for the redelivered event");

    let text = app.scrape().await?;
    let duplicate =
        format!(r#"messaging_consume_duration_seconds_count{{service="notification",topic="{}",outcome="duplicate"}} 1"#, app.orders_topic);
    assert!(text.contains(&duplicate), "missing {duplicate} in\n{text}");
    assert!(text.contains(r#"notifications_total{type="order.created"} 1"#), "a duplicate is not counted:\n{text}");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_next_one_is_processed() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let owner = customer();
    let order = OrderId::new();
    let garbage = b"{\"id\": \"not an event\"".to_vec();
    // Valid JSON of a type that does not belong on orders.v1.
    let stock = NonEmpty::one(StockLine { sku: Sku::parse("MUG-BLUE").unwrap(), quantity: Quantity::new(1).unwrap() });
    let foreign = Event::new(order, InventoryReserved { lines: stock }).to_vec()?;
    let good = created(order, &owner);
    app.produce_raw(&order.to_string(), &garbage).await?;
    app.produce_raw(&order.to_string(), &foreign).await?;
    app.produce(&good).await?;

    let token = app.token(owner.as_str(), vec![Role::Customer]);
    let page = app.wait_for_items(&format!("/notifications?order_id={order}"), &token, 1).await?;
    assert_eq!(ids(&page), vec![good.id().to_string()]);

    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", KAFKA.addr())
        .set("group.id", stack::unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    dlq.subscribe(&[&dlq_topic(&app.orders_topic)])?;
    let mut dead = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(30), dlq.recv()).await??;
        let error = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "dlq.error").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        dead.push((m.payload().unwrap_or_default().to_vec(), error));
    }
    assert_eq!(dead[0].0, garbage, "dead-lettered untouched");
    assert!(dead[0].1.contains("not an event"), "{:?}", dead[0].1);
    assert_eq!(dead[1].0, foreign);
    assert!(dead[1].1.contains("does not consume inventory.reserved"), "{:?}", dead[1].1);

    let text = app.scrape().await?;
    let counted = format!(r#"messaging_dead_letter_total{{service="notification",topic="{}"}} 2"#, app.orders_topic);
    assert!(text.contains(&counted), "missing {counted} in\n{text}");
    app.stop().await
}

/// The sum of the samples of `name` whose label set contains `fragment`.
fn sample_sum(text: &str, name: &str, fragment: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(fragment))
        .filter_map(|l| l.rsplit_once("} ").and_then(|(_, v)| v.split_whitespace().next()?.parse::<f64>().ok()))
        .sum()
}

/// `consumer_error_rate` from the flag file, at run time: while it is 1.0
/// every delivery fails transiently before any work and is retried in place
/// (nothing stored, nothing dead-lettered); once it is off the same message
/// goes through, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_consumer_errors_are_retried_never_dead_lettered() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let owner = customer();
    let token = app.token(owner.as_str(), vec![Role::Customer]);
    let (order, topic) = (OrderId::new(), app.orders_topic.clone());
    let text = app.scrape().await?;
    assert!(text.contains(r#"fault_flag_active{flag="consumer_error_rate"} 0"#), "declared flag present from the start:\n{text}");
    assert!(text.contains(&format!(r#"fault_flags_file{{path="{}"}} 1"#, app.faults_file.display())), "{text}");

    app.set_faults(r#"{"consumer_error_rate": 1.0}"#)?;
    glasshouse_tests::poll::until("the flag on /metrics", Duration::from_secs(10), Duration::from_millis(20), || async {
        Ok(app.scrape().await?.contains(r#"fault_flag_active{flag="consumer_error_rate"} 1"#).then_some(()))
    })
    .await?;
    let event = created(order, &owner);
    app.produce(&event).await?;
    let retry = format!(r#"topic="{topic}",outcome="retry""#);
    glasshouse_tests::poll::until("three retries of the message", Duration::from_secs(30), Duration::from_millis(50), || async {
        Ok((sample_sum(&app.scrape().await?, "messaging_consume_duration_seconds_count", &retry) >= 3.0).then_some(()))
    })
    .await?;
    assert!(app.store.by_event(&event.id().to_string()).await?.is_empty(), "the fault comes before any work");

    app.set_faults("{}")?;
    let page = app.wait_for_items(&format!("/notifications?order_id={order}"), &token, 1).await?;
    assert_eq!(ids(&page), vec![event.id().to_string()], "{page}");
    assert_eq!(app.store.by_event(&event.id().to_string()).await?.len(), 1, "stored once");
    let text = app.scrape().await?;
    assert_eq!(sample_sum(&text, "messaging_dead_letter_total", &format!(r#"topic="{topic}""#)), 0.0, "nothing dead-lettered:\n{text}");
    assert!(text.contains(r#"fault_flag_active{flag="consumer_error_rate"} 0"#), "{text}");
    app.stop().await
}
