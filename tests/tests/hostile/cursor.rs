//! Cursors: a list endpoint accepts only the `next_cursor` it gave out.
//! Tampered, truncated, invented (the out-of-range timestamp that once made
//! PostgreSQL fail with a 500) and other services' cursors are 422
//! `invalid-cursor` on all three lists; a real cursor still pages.

use std::collections::HashSet;
use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::Saga;
use serde_json::Value;

use crate::support::{place, seed_item, send};

/// Cursors no API gave out, derived from a real one.
fn strangers(real: &str) -> Vec<String> {
    let mut tampered = real.to_owned().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    vec![
        String::from_utf8(tampered).unwrap(),
        real[..real.len() - 3].to_owned(),
        "-300000000000000000.00000000-0000-0000-0000-000000000000".to_owned(),
        "A-1".to_owned(),
        "%%%".to_owned(),
    ]
}

/// Every item id of a list, following `next_cursor` from the first page.
async fn walk(http: &reqwest::Client, first: &str, token: &str) -> anyhow::Result<(Vec<String>, usize)> {
    let (mut ids, mut pages, mut url) = (Vec::new(), 0, first.to_owned());
    loop {
        let a = send(http.get(&url).bearer_auth(token)).await?;
        anyhow::ensure!(a.status == 200, "{url}: {} {}", a.status, a.body);
        pages += 1;
        for i in a.body["items"].as_array().into_iter().flatten() {
            ids.push(i["id"].as_str().or(i["sku"].as_str()).unwrap_or_default().to_owned());
        }
        match a.body["next_cursor"].as_str() {
            Some(c) => url = format!("{first}&cursor={}", urlencode(c)),
            None => return Ok((ids, pages)),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cursors_the_api_gave_out_are_accepted() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let ann = saga.token("ann", Role::Customer);
    for sku in ["CUR-1", "CUR-2", "CUR-3"] {
        seed_item(&http, &saga, sku, 100).await?;
    }
    let mut placed = HashSet::new();
    for i in 0..3 {
        placed.insert(place(&http, &saga, &ann, &format!("cur-{i}"), "CUR-1").await?);
    }

    // A real cursor pages through all of them, each once.
    let lists = [
        ("order", saga.order.url("/orders?limit=2")),
        ("inventory", saga.inventory.url("/items?limit=2")),
        ("notification", saga.notification.url("/notifications?customer_id=ann&limit=4")),
    ];
    let (orders, pages) = walk(&http, &lists[0].1, &ann).await?;
    assert_eq!((orders.iter().cloned().collect::<HashSet<_>>(), orders.len(), pages), (placed.clone(), 3, 2));
    let (items, pages) = walk(&http, &lists[1].1, &ann).await?;
    assert_eq!((items, pages), (vec!["CUR-1".to_owned(), "CUR-2".into(), "CUR-3".into()], 2));
    // Each order is created and then confirmed: six notifications in the end.
    poll::until("six notifications for ann", Duration::from_secs(60), Duration::from_millis(200), || async {
        let a = send(http.get(saga.notification.url("/notifications?customer_id=ann&limit=100")).bearer_auth(&ann)).await?;
        Ok((a.body["items"].as_array().map_or(0, Vec::len) >= 6).then_some(()))
    })
    .await?;
    let (notes, pages) = walk(&http, &lists[2].1, &ann).await?;
    assert_eq!((notes.iter().collect::<HashSet<_>>().len(), notes.len(), pages), (6, 6, 2));

    // Each list's real first cursor, then everything a client could make of them.
    let mut real = Vec::new();
    for (svc, url) in &lists {
        let a = send(http.get(url).bearer_auth(&ann)).await?;
        let c = a.body["next_cursor"].as_str().unwrap_or_else(|| panic!("{svc}: no next_cursor in {}", a.body)).to_owned();
        real.push(c);
    }
    for (i, (svc, url)) in lists.iter().enumerate() {
        let others = real.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| c.clone());
        for bad in strangers(&real[i]).into_iter().chain(others) {
            let a = send(http.get(format!("{url}&cursor={}", urlencode(&bad))).bearer_auth(&ann)).await?;
            a.assert_problem(422, "invalid-cursor");
            assert_eq!(a.body["field"], Value::from("cursor"), "{svc} {bad}: {}", a.body);
        }
    }
    saga.stop().await
}
