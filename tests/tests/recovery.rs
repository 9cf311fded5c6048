//! Recovery from an outage, end to end: three real service processes on the
//! real stack. While Inventory fails 90% of its reservation attempts for 20 s
//! (the `reservation_error_rate` fault flag, far longer than any fixed retry
//! budget), orders keep coming. Once the fault clears, every order reaches a
//! final state and not one event was dead-lettered: a transient failure is
//! retried until it succeeds.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::{Duration, Instant};

use futures::StreamExt;
use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::{Part, Saga, Service};
use glasshouse_tests::stack::KAFKA;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

/// Orders placed during the outage.
const ORDERS: usize = 150;
/// How long the fault stays on.
const OUTAGE: Duration = Duration::from_secs(20);

/// The value of one sample line (`name{labels}`) of a service's `/metrics`.
async fn sample(http: &reqwest::Client, service: &Service, series: &str) -> anyhow::Result<Option<f64>> {
    let text = http.get(service.url("/metrics")).send().await?.error_for_status()?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.split_whitespace().next()?.parse().ok())))
}

/// Writes the fault flag file whole (temp file + rename), as an operator's tool would.
fn set_faults(saga: &Saga, json: &str) -> anyhow::Result<()> {
    let path = saga.faults_file(Part::Inventory);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

async fn fault_flag(http: &reqwest::Client, saga: &Saga, want: f64) -> anyhow::Result<()> {
    poll::until(&format!("fault_flag_active = {want}"), Duration::from_secs(30), Duration::from_millis(100), || async {
        Ok((sample(http, &saga.inventory, r#"fault_flag_active{flag="reservation_error_rate"}"#).await? == Some(want)).then_some(()))
    })
    .await
}

/// Messages ever written to `topic` (sum of its partitions' high watermarks).
async fn written(topic: &str) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = c.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0) as i32;
        anyhow::ensure!(partitions > 0, "topic {topic} has no partitions");
        (0..partitions).map(|p| Ok(c.fetch_watermarks(&topic, p, Duration::from_secs(5))?.1)).sum::<anyhow::Result<i64>>()
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_during_a_reservation_outage_all_complete_without_dead_letters() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let admin = saga.token("ops", Role::Admin);
    let customer = saga.token("rec", Role::Customer);
    let resp = http
        .put(saga.inventory.url("/items/REC-TEA"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "Tea for the recovery test", "price": { "amount_minor": 350, "currency": "EUR" }, "stock": 10_000 }))
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "seed: {} {}", resp.status(), resp.text().await?);

    set_faults(&saga, r#"{"reservation_error_rate": 0.9}"#)?;
    fault_flag(&http, &saga, 1.0).await?;
    let outage_started = Instant::now();

    // Place the orders, eight at a time.
    let placed: Vec<anyhow::Result<String>> = futures::stream::iter(0..ORDERS)
        .map(|i| {
            let (http, customer, url) = (http.clone(), customer.clone(), saga.order.url("/orders"));
            async move {
                let resp = http
                    .post(url)
                    .bearer_auth(customer)
                    .header("Idempotency-Key", format!("recovery-{i}"))
                    .json(&json!({ "lines": [{ "sku": "REC-TEA", "quantity": 1 }] }))
                    .send()
                    .await?;
                anyhow::ensure!(resp.status().as_u16() == 202, "order {i}: {}", resp.status());
                let body: Value = resp.json().await?;
                body["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no id in {body}"))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let ids: Vec<String> = placed.into_iter().collect::<anyhow::Result<_>>()?;
    assert_eq!(ids.len(), ORDERS);

    // Ride out the outage; the consumer is retrying meanwhile.
    let orders_topic = format!("{}orders.v1", saga.prefix);
    let retries = format!(r#"messaging_consume_duration_seconds_count{{service="inventory",topic="{orders_topic}",outcome="retry"}}"#);
    poll::until("the outage's retries", OUTAGE, Duration::from_millis(200), || async {
        Ok((sample(&http, &saga.inventory, &retries).await?.unwrap_or(0.0) >= 3.0).then_some(()))
    })
    .await?;
    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    let retried = sample(&http, &saga.inventory, &retries).await?.unwrap_or(0.0);
    set_faults(&saga, r#"{"reservation_error_rate": 0.0}"#)?;
    fault_flag(&http, &saga, 0.0).await?;

    // Every order reaches a final state.
    let finished = Instant::now();
    poll::until(&format!("{ORDERS} orders in a final state"), Duration::from_secs(180), Duration::from_millis(500), || async {
        let confirmed = sample(&http, &saga.order, r#"orders_total{status="confirmed"}"#).await?.unwrap_or(0.0);
        let rejected = sample(&http, &saga.order, r#"orders_total{status="rejected"}"#).await?.unwrap_or(0.0);
        Ok((confirmed + rejected >= ORDERS as f64).then_some(()))
    })
    .await?;
    let drained = finished.elapsed();
    for id in &ids {
        let order: Value = http.get(saga.order.url(&format!("/orders/{id}"))).bearer_auth(&customer).send().await?.json().await?;
        assert!(["CONFIRMED", "REJECTED"].contains(&order["status"].as_str().unwrap_or_default()), "order {id}: {order}");
    }

    // Nothing was dead-lettered, by the broker's count and the consumer's.
    assert_eq!(written(&format!("{orders_topic}.dlq")).await?, 0, "dead letters on {orders_topic}.dlq");
    let dead = format!(r#"messaging_dead_letter_total{{service="inventory",topic="{orders_topic}"}}"#);
    assert_eq!(sample(&http, &saga.inventory, &dead).await?, None);
    let stuck = format!(r#"messaging_consumer_retry_seconds{{service="inventory",topic="{orders_topic}"}}"#);
    assert_eq!(sample(&http, &saga.inventory, &stuck).await?, Some(0.0), "no message left in retry");
    eprintln!("{ORDERS} orders; {retried} retries during the {OUTAGE:?} outage; all final {drained:?} after it ended");
    saga.stop().await
}
