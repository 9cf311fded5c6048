//! What the hostile-input tests share: a client that returns status, headers
//! and JSON, raw HTTP/1.1 over TCP for what reqwest will not send, and seeding.

use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::services::Saga;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The problem+json media type every error must carry.
pub const PROBLEM: &str = "application/problem+json";

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts a problem+json answer of `status` with type `.../<slug>`.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.headers.get("content-type").and_then(|v| v.to_str().ok()), Some(PROBLEM), "{}", self.body);
        assert_eq!(self.body["type"], format!("https://glasshouse.dev/problems/{slug}"), "{}", self.body);
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await?;
    Ok(Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// One raw HTTP/1.1 exchange on a fresh connection: writes `head` (request
/// line and headers, without the blank line), then the body `chunks` (as
/// chunked encoding if `chunked`), ignoring write errors once the server has
/// answered and closed; returns the status line's code and the response text.
pub async fn raw(port: u16, head: &str, chunks: impl Iterator<Item = Vec<u8>>, chunked: bool) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("{head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut open = true;
    for c in chunks {
        let framed = if chunked { [format!("{:x}\r\n", c.len()).into_bytes(), c, b"\r\n".to_vec()].concat() } else { c };
        if s.write_all(&framed).await.is_err() {
            open = false;
            break;
        }
    }
    if open && chunked {
        let _ = s.write_all(b"0\r\n\r\n").await;
    }
    let mut buf = Vec::new();
    // A deadline, not a wait: the answer is due at once.
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| anyhow::anyhow!("no HTTP answer: {text:?}"))?;
    Ok((status, text))
}

/// Creates `sku` in Inventory with `stock` units at 1.00 EUR.
pub async fn seed_item(http: &reqwest::Client, saga: &Saga, sku: &str, stock: i64) -> anyhow::Result<()> {
    let admin = saga.token("ops", Role::Admin);
    let a = send(http.put(saga.inventory.url(&format!("/items/{sku}"))).bearer_auth(&admin).json(&json!({
        "name": format!("{sku} for the hostile test"), "price": { "amount_minor": 100, "currency": "EUR" }, "stock": stock
    })))
    .await?;
    anyhow::ensure!(a.status == 201 || a.status == 200, "seed {sku}: {} {}", a.status, a.body);
    Ok(())
}

/// Places an order for one unit of `sku`; returns its id.
pub async fn place(http: &reqwest::Client, saga: &Saga, token: &str, key: &str, sku: &str) -> anyhow::Result<String> {
    let a = send(
        http.post(saga.order.url("/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({ "lines": [{ "sku": sku, "quantity": 1 }] })),
    )
    .await?;
    anyhow::ensure!(a.status == 202, "place: {} {}", a.status, a.body);
    Ok(a.body["id"].as_str().unwrap_or_default().to_owned())
}

/// Rows in Order's `orders` table.
pub async fn stored_orders(saga: &Saga) -> anyhow::Result<i64> {
    let pool = sqlx::PgPool::connect(&saga.orders_db_url).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&pool).await?;
    pool.close().await;
    Ok(n)
}
