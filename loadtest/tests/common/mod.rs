//! A tiny HTTP/1.1 server for the runner's tests: the order-flow contract
//! (inventory, order, notification) plus `/hello` and `/fail`, with
//! controllable latency and an injectable stall.
//!
//! It stands in for the three services because they do not exist yet; it
//! speaks real HTTP over real loopback sockets, so the runner under test is
//! exercised exactly as against the services. It records what it received
//! (request count, connections, headers) so tests can assert "nothing was
//! sent" and "every request carried a traceparent".
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Added to every response.
    pub latency: Duration,
    /// After this many requests, hold every request until `stall` has passed
    /// since then (a global pause, like a GC or a lock).
    pub stall_after: Option<u64>,
    pub stall: Duration,
    /// Polls of `GET /orders/{id}` answered PENDING before CONFIRMED.
    pub pending_polls: u32,
}

/// What a request looked like (headers the runner must send).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub traceparent: Option<String>,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub host: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    pub seen: Mutex<Vec<Seen>>,
    stall_until: Mutex<Option<Instant>>,
    orders: Mutex<HashMap<String, u32>>,
}

/// A running stand-in server; stops when the test's runtime ends.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

impl TestServer {
    pub async fn start(b: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let (st, b) = (st.clone(), b.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (st, b) = (st.clone(), b.clone());
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &st, &b).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        TestServer { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder().status(status).header("content-type", "application/json").body(Full::new(Bytes::from(v.to_string()))).unwrap()
}

async fn handle(req: Request<Incoming>, st: &State, b: &Behaviour) -> Response<Full<Bytes>> {
    let n = st.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        traceparent: h("traceparent"),
        authorization: h("authorization"),
        idempotency_key: h("idempotency-key"),
        host: h("host"),
    };
    st.seen.lock().unwrap().push(seen.clone());

    if b.stall_after == Some(n) {
        *st.stall_until.lock().unwrap() = Some(Instant::now() + b.stall);
    }
    let until = *st.stall_until.lock().unwrap();
    if let Some(u) = until {
        tokio::time::sleep_until(u).await;
    }
    if !b.latency.is_zero() {
        tokio::time::sleep(b.latency).await;
    }

    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    match (method.as_str(), path.as_str()) {
        ("GET", "/hello") => Response::new(Full::new(Bytes::from_static(b"ok"))),
        ("GET", "/fail") => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"type": "https://glasshouse.dev/problems/unavailable", "title": "test failure", "status": 503}),
        ),
        ("GET", "/items") => {
            let items: Vec<_> = (1..=5)
                .map(|i| {
                    serde_json::json!({"sku": format!("SKU-{i:03}"), "name": format!("Item {i}"),
                        "price": {"amount_minor": 1000 + i, "currency": "EUR"}, "stock": if i == 5 { 0 } else { 10 }})
                })
                .collect();
            json(StatusCode::OK, serde_json::json!({"items": items, "next_cursor": null}))
        }
        ("POST", "/orders") => {
            if seen.authorization.as_deref().is_none_or(|a| !a.starts_with("Bearer ")) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"type": "https://glasshouse.dev/problems/unauthorized", "title": "no token"}),
                );
            }
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let lines_ok = parsed["lines"].as_array().is_some_and(|l| {
                !l.is_empty()
                    && l.iter()
                        .all(|x| x["sku"].as_str().is_some_and(|s| s.starts_with("SKU-")) && x["quantity"].as_u64().is_some_and(|q| q >= 1))
            });
            if !lines_ok || seen.idempotency_key.is_none() {
                return json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({"type": "https://glasshouse.dev/problems/invalid-order", "title": "bad lines"}),
                );
            }
            let id = uuid::Uuid::new_v4().to_string();
            st.orders.lock().unwrap().insert(id.clone(), 0);
            let mut r = json(StatusCode::ACCEPTED, serde_json::json!({"id": id, "status": "PENDING", "lines": parsed["lines"]}));
            r.headers_mut().insert("location", format!("/orders/{id}").parse().unwrap());
            r
        }
        ("GET", p) if p.starts_with("/orders/") => {
            let id = &p["/orders/".len()..];
            let mut orders = st.orders.lock().unwrap();
            match orders.get_mut(id) {
                Some(polls) => {
                    *polls += 1;
                    let status = if *polls > b.pending_polls { "CONFIRMED" } else { "PENDING" };
                    json(StatusCode::OK, serde_json::json!({"id": id, "status": status}))
                }
                None => json(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"type": "https://glasshouse.dev/problems/not-found", "title": "no such order"}),
                ),
            }
        }
        ("GET", "/notifications") => {
            json(StatusCode::OK, serde_json::json!({"items": [{"type": "order.created"}, {"type": "order.confirmed"}]}))
        }
        _ => json(StatusCode::NOT_FOUND, serde_json::json!({"type": "about:blank", "title": "not found"})),
    }
}

/// A fresh directory under the system temp dir, unique per test and process.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "gh-loadtest-{tag}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// A `/hello` scenario with the given `load:` block (indented YAML) and thresholds.
pub fn hello_config(url: &str, load: &str, thresholds: &[&str]) -> String {
    let th = if thresholds.is_empty() {
        String::new()
    } else {
        format!("thresholds:\n{}", thresholds.iter().map(|t| format!("  - \"{t}\"\n")).collect::<String>())
    };
    format!(
        "scenario: hello\ntargets:\n  app: {url}\nload:\n{load}\nflows:\n  - name: hello\n    steps:\n      - step: http\n        name: hello\n        target: app\n        path: /hello\n{th}metrics:\n  enabled: false\n"
    )
}
