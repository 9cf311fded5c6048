//! Optional response members are absent, never `null`: no served schema says
//! `nullable`, so no answer of a short order flow may hold a `null` anywhere
//! (`next_cursor` on a last page, `rejection_reason` of an order that was not
//! rejected, ...).

use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::Saga;
use serde_json::Value;

use crate::support::{place, seed_item, send};

/// JSON pointers of every `null` in `v`.
fn nulls(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(at),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| nulls(x, format!("{at}/{i}"), out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| nulls(x, format!("{at}/{k}"), out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_holds_null() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let ann = saga.token("ann", Role::Customer);
    for svc in [&saga.order, &saga.inventory, &saga.notification] {
        let spec = http.get(svc.url("/openapi.yaml")).send().await?.text().await?;
        assert!(!spec.contains("nullable"), "{}: a schema became nullable; this test then needs the schema walk", svc.name);
    }
    seed_item(&http, &saga, "NUL-1", 10).await?;
    let id = place(&http, &saga, &ann, "nul-1", "NUL-1").await?;
    poll::until("the order's notification", Duration::from_secs(60), Duration::from_millis(200), || async {
        let a = send(http.get(saga.notification.url(&format!("/notifications?order_id={id}"))).bearer_auth(&ann)).await?;
        Ok((a.body["items"].as_array().is_some_and(|i| !i.is_empty())).then_some(()))
    })
    .await?;

    let reads = [
        saga.order.url("/orders"),
        saga.order.url(&format!("/orders/{id}")),
        saga.order.url("/orders?status=REJECTED"),
        saga.inventory.url("/items"),
        saga.inventory.url("/items?skus=NUL-1,NONE-1"),
        saga.inventory.url("/items/NUL-1"),
        saga.notification.url(&format!("/notifications?order_id={id}")),
        saga.notification.url("/notifications?customer_id=ann"),
    ];
    for url in reads {
        let a = send(http.get(&url).bearer_auth(&ann)).await?;
        assert_eq!(a.status, 200, "{url}: {}", a.body);
        let mut found = Vec::new();
        nulls(&a.body, String::new(), &mut found);
        assert!(found.is_empty(), "{url}: null at {found:?} in {}", a.body);
    }
    saga.stop().await
}
