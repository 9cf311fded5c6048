//! Running one iteration of a flow: the order-flow steps against the HTTP
//! contract of the three services, and the generic `http` step.
//!
//! Every request gets a fresh W3C `traceparent` (random trace and span id,
//! sampled) so the slowest samples in the report open straight in Jaeger. A
//! service starts its own trace for a client's request (linked to the one sent)
//! and names it in `traceresponse`; the sample then records that trace id.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{Client, FailureClass, RequestSpec, Response};
use crate::config::{Config, Range, Step};
use crate::sample::{Outcome, Sample, TraceId};
use crate::stats::Recorder;

/// Order states after which polling stops (from the Order service contract).
pub const FINAL_STATES: [&str; 3] = ["CONFIRMED", "REJECTED", "CANCELLED"];

/// A step with names resolved to indices and fixed parts pre-built.
#[derive(Debug)]
enum Compiled {
    ListCatalog {
        step: usize,
        origin: usize,
        path: String,
    },
    PlaceOrder {
        step: usize,
        origin: usize,
        lines: Range,
        quantity: Range,
    },
    PollOrder {
        step: usize,
        origin: usize,
        interval: Duration,
        timeout: Duration,
    },
    ReadNotifications {
        step: usize,
        origin: usize,
        min_items: u32,
    },
    Think {
        duration: Duration,
        jitter: Duration,
    },
    Http {
        step: usize,
        origin: usize,
        method: Method,
        path: String,
        headers: Vec<(HeaderName, HeaderValue)>,
        /// JSON (the client adds `content-type: application/json`).
        body: Option<Bytes>,
        expect: Vec<u16>,
        auth: bool,
    },
}

/// Everything an iteration needs, shared by all of them.
pub struct Plan {
    /// Each flow's steps.
    flows: Vec<Vec<Compiled>>,
    /// Cumulative weights for picking a flow.
    cumulative: Vec<u64>,
    /// `Bearer <token>` values; one is picked per iteration (a "customer").
    bearer: Vec<HeaderValue>,
    skus: Vec<String>,
    pub client: Client,
    pub recorder: Arc<Recorder>,
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const USER_AGENT: HeaderValue = HeaderValue::from_static(concat!("glasshouse-loadtest/", env!("CARGO_PKG_VERSION")));

impl Plan {
    /// Compiles the config's flows; `origins` is the target order given to the client.
    pub fn new(config: &Config, origins: &[String], tokens: &[String], client: Client, recorder: Arc<Recorder>) -> Plan {
        let names = recorder.step_names();
        let flows = config.flows.iter().map(|f| f.steps.iter().map(|s| compile(s, names, origins)).collect()).collect();
        let cumulative = (config.flows.iter())
            .scan(0u64, |acc, f| {
                *acc += u64::from(f.weight);
                Some(*acc)
            })
            .collect();
        let bearer = (tokens.iter())
            .filter_map(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .collect();
        Plan { flows, cumulative, bearer, skus: config.skus.clone(), client, recorder }
    }

    /// Runs one iteration. `intended` is when it should have started; in the
    /// open model the first request's latency is measured from it.
    pub async fn iteration(&self, intended: Instant, open: bool) {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let total = *self.cumulative.last().unwrap_or(&0);
        let pick = if total == 0 { 0 } else { rng.random_range(0..total) };
        let flow = &self.flows[self.cumulative.iter().position(|c| pick < *c).unwrap_or(0)];
        let started = Instant::now();
        self.recorder.iteration_started(intended, open.then(|| started.saturating_duration_since(intended)));
        let origin = if open { intended } else { started };
        let bearer = self.bearer.choose(&mut rng).cloned();
        let mut it = Iteration { plan: self, rng, intended: Some(origin), bearer, skus: Vec::new(), order_id: None, failed: false };
        for step in flow {
            if !it.run_step(step).await {
                it.failed = true;
                break;
            }
        }
        self.recorder.iteration_finished(Instant::now().saturating_duration_since(origin), it.failed);
    }
}

/// A step with its step name and target resolved to indices.
fn compile(s: &Step, names: &[String], origins: &[String]) -> Compiled {
    let index = |list: &[String], x: &str| list.iter().position(|n| n == x).expect("step names and targets come from the same config");
    let (step, origin) = (|n: &str| index(names, n), |t: &str| index(origins, t));
    match s {
        Step::ListCatalog { name, target, limit } => {
            Compiled::ListCatalog { step: step(name), origin: origin(target), path: format!("/items?limit={limit}") }
        }
        Step::PlaceOrder { name, target, lines, quantity } => {
            Compiled::PlaceOrder { step: step(name), origin: origin(target), lines: *lines, quantity: *quantity }
        }
        Step::PollOrder { name, target, interval, timeout } => {
            Compiled::PollOrder { step: step(name), origin: origin(target), interval: *interval, timeout: *timeout }
        }
        Step::ReadNotifications { name, target, min_items } => {
            Compiled::ReadNotifications { step: step(name), origin: origin(target), min_items: *min_items }
        }
        Step::Think { duration, jitter } => Compiled::Think { duration: *duration, jitter: *jitter },
        Step::Http { name, target, method, path, headers, json, expect_status, auth } => Compiled::Http {
            step: step(name),
            origin: origin(target),
            method: method.clone(),
            path: path.clone(),
            headers: headers.clone(),
            body: json.clone().map(Bytes::from),
            expect: expect_status.clone(),
            auth: *auth,
        },
    }
}

struct Iteration<'a> {
    plan: &'a Plan,
    rng: SmallRng,
    /// Start to measure the next request from; taken by the first request.
    intended: Option<Instant>,
    bearer: Option<HeaderValue>,
    skus: Vec<String>,
    order_id: Option<String>,
    failed: bool,
}

/// A request's result as the steps see it.
struct Reply {
    response: Option<Response>,
    ok: bool,
}

impl Reply {
    /// The body as JSON, if the request succeeded and the body is JSON.
    fn json(&self) -> Option<Value> {
        self.response.as_ref().filter(|_| self.ok).and_then(|r| json(&r.body))
    }
}

/// One request of a step.
struct Call<'a> {
    step: usize,
    origin: usize,
    method: Method,
    path: &'a str,
    /// JSON; `content-type` is added unless `headers` has one.
    body: Option<Bytes>,
    /// Send the iteration's bearer token.
    auth: bool,
    /// Statuses that count as success.
    expect: &'a [u16],
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl<'a> Call<'a> {
    /// `GET path` expecting 200.
    fn get(step: usize, origin: usize, path: &'a str, auth: bool) -> Call<'a> {
        Call { step, origin, method: Method::GET, path, body: None, auth, expect: &[200], headers: Vec::new() }
    }
}

impl Iteration<'_> {
    /// Runs a step; `false` when the flow cannot go on.
    async fn run_step(&mut self, step: &Compiled) -> bool {
        match step {
            Compiled::Think { duration, jitter } => {
                let extra = if jitter.is_zero() { 0 } else { self.rng.random_range(0..=jitter.as_nanos() as u64) };
                tokio::time::sleep(*duration + Duration::from_nanos(extra)).await;
                true
            }
            Compiled::ListCatalog { step, origin, path } => self.list_catalog(*step, *origin, path).await,
            Compiled::PlaceOrder { step, origin, lines, quantity } => self.place_order(*step, *origin, *lines, *quantity).await,
            Compiled::PollOrder { step, origin, interval, timeout } => self.poll_order(*step, *origin, *interval, *timeout).await,
            Compiled::ReadNotifications { step, origin, min_items } => self.read_notifications(*step, *origin, *min_items).await,
            Compiled::Http { step, origin, method, path, headers, body, expect, auth } => {
                let (method, body, headers) = (method.clone(), body.clone(), headers.clone());
                self.send(Call { step: *step, origin: *origin, method, path, body, auth: *auth, expect, headers }).await.ok
            }
        }
    }

    /// Remembers the catalog's SKUs (those in stock, else all of them).
    async fn list_catalog(&mut self, step: usize, origin: usize, path: &str) -> bool {
        let r = self.send(Call::get(step, origin, path, false)).await;
        if !r.ok {
            return false;
        }
        let items = match r.json().and_then(|mut v| v.get_mut("items").map(Value::take)) {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        };
        let valid = items.is_some();
        self.plan.recorder.check(step, "body has an items array", valid);
        let items = items.unwrap_or_default();
        let sku = |i: &Value| i.get("sku").and_then(Value::as_str).map(String::from);
        let in_stock: Vec<String> =
            items.iter().filter(|i| i.get("stock").and_then(Value::as_i64).is_none_or(|s| s > 0)).filter_map(sku).collect();
        self.skus = if in_stock.is_empty() { items.iter().filter_map(sku).collect() } else { in_stock };
        self.plan.recorder.check(step, "catalog has items", !self.skus.is_empty());
        valid
    }

    /// `POST /orders` with random lines from the known SKUs and a fresh idempotency key.
    async fn place_order(&mut self, step: usize, origin: usize, lines: Range, quantity: Range) -> bool {
        let pool: &[String] = if self.skus.is_empty() { &self.plan.skus } else { &self.skus };
        if pool.is_empty() {
            return false;
        }
        let n = (self.rng.random_range(lines.min..=lines.max) as usize).min(pool.len());
        let mut chosen: Vec<&String> = pool.iter().collect();
        chosen.shuffle(&mut self.rng);
        let body_lines: Vec<Value> = chosen[..n]
            .iter()
            .map(|sku| serde_json::json!({"sku": sku, "quantity": self.rng.random_range(quantity.min..=quantity.max)}))
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "lines": body_lines })).unwrap_or_default();
        let headers = vec![(HeaderName::from_static("idempotency-key"), header(&uuid::Uuid::new_v4().to_string()))];
        let call =
            Call { step, origin, method: Method::POST, path: "/orders", body: Some(body.into()), auth: true, expect: &[202], headers };
        let r = self.send(call).await;
        if !r.ok {
            return false;
        }
        let id = (r.json().and_then(|v| v.get("id").and_then(Value::as_str).map(String::from)))
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        self.plan.recorder.check(step, "order has an id", id.is_some());
        let located = r.response.as_ref().is_some_and(|resp| resp.headers.contains_key(http::header::LOCATION));
        self.plan.recorder.check(step, "response has a Location header", located);
        self.order_id = id;
        self.order_id.is_some()
    }

    /// `GET /orders/{id}` every `interval` until a final state or `timeout`.
    async fn poll_order(&mut self, step: usize, origin: usize, interval: Duration, timeout: Duration) -> bool {
        let Some(id) = self.order_id.clone() else {
            return false;
        };
        let path = format!("/orders/{id}");
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.send(Call::get(step, origin, &path, true)).await;
            let state = r.json().and_then(|v| v.get("status").and_then(Value::as_str).map(String::from));
            if let Some(s) = state.as_deref().filter(|s| FINAL_STATES.contains(s)) {
                self.plan.recorder.check(step, "order reached a final state", true);
                self.plan.recorder.count(&format!("order_final_status.{s}"));
                return true;
            }
            if Instant::now() + interval > deadline {
                self.plan.recorder.check(step, "order reached a final state", false);
                self.plan.recorder.count("order_final_status.TIMED_OUT");
                // Notifications are still worth reading; the iteration counts as failed.
                self.failed = true;
                return true;
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// `GET /notifications?order_id=<id>`; at least `min_items` when above 0.
    async fn read_notifications(&mut self, step: usize, origin: usize, min_items: u32) -> bool {
        let Some(id) = self.order_id.clone() else {
            return false;
        };
        let r = self.send(Call::get(step, origin, &format!("/notifications?order_id={id}"), true)).await;
        if !r.ok {
            return false;
        }
        let n = r.json().and_then(|v| v.get("items").and_then(Value::as_array).map(Vec::len));
        self.plan.recorder.check(step, "body has an items array", n.is_some());
        if min_items > 0 {
            self.plan.recorder.check(step, "enough notifications", n.unwrap_or(0) >= min_items as usize);
        }
        n.is_some()
    }

    /// Sends one request with a fresh traceparent and records the sample.
    async fn send(&mut self, call: Call<'_>) -> Reply {
        let Call { step, origin, method, path, body, auth, expect, mut headers } = call;
        let trace = TraceId(self.rng.random::<u128>() | 1);
        let span: u64 = self.rng.random::<u64>() | 1;
        headers.push((HeaderName::from_static("traceparent"), header(&format!("00-{trace}-{span:016x}-01"))));
        headers.push((http::header::USER_AGENT, USER_AGENT));
        headers.push((http::header::ACCEPT, APPLICATION_JSON));
        if body.is_some() && !headers.iter().any(|(k, _)| k == http::header::CONTENT_TYPE) {
            headers.push((http::header::CONTENT_TYPE, APPLICATION_JSON));
        }
        if auth && let Some(b) = &self.bearer {
            headers.push((http::header::AUTHORIZATION, b.clone()));
        }
        let from = self.intended.take().unwrap_or_else(Instant::now);
        let result = self.plan.client.send(origin, RequestSpec { method, path, headers, body }).await;
        let finished = Instant::now();
        let (outcome, status, detail, response) = match result {
            Ok(resp) => {
                let code = resp.status.as_u16();
                let expected = expect.contains(&code);
                let detail = (!expected).then(|| describe_failure(code, &resp.body));
                (Outcome::from_status(code, expected), Some(code), detail, Some(resp))
            }
            Err(e) => {
                let o = match e.class {
                    FailureClass::Connect => Outcome::Connect,
                    FailureClass::Timeout => Outcome::Timeout,
                    FailureClass::Protocol => Outcome::Protocol,
                };
                (o, None, Some(e.message), None)
            }
        };
        // The services start their own trace for a client's request (linked to
        // ours) and name it in `traceresponse`: the report links that one.
        let trace = response.as_ref().and_then(|r| served_trace(&r.headers)).unwrap_or(trace);
        let sample = Sample { step, latency: finished.saturating_duration_since(from), finished, outcome, status, trace_id: trace };
        self.plan.recorder.record(&sample, detail.as_deref());
        Reply { ok: outcome == Outcome::Success, response }
    }
}

/// The trace id of a W3C `traceresponse: 00-<trace id>-<span id>-<flags>`.
fn served_trace(headers: &http::HeaderMap) -> Option<TraceId> {
    let v = headers.get("traceresponse")?.to_str().ok()?;
    let id = v.split('-').nth(1).filter(|id| id.len() == 32)?;
    u128::from_str_radix(id, 16).ok().filter(|n| *n != 0).map(TraceId)
}

fn header(s: &str) -> HeaderValue {
    // Only hex, digits and dashes reach here.
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"))
}

fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// `HTTP 409 <problem type>: <title>` when the body is problem+json, else a body excerpt.
fn describe_failure(code: u16, body: &[u8]) -> String {
    if let Some(v) = json(body) {
        let ty = v.get("type").and_then(Value::as_str);
        let title = v.get("title").and_then(Value::as_str);
        if ty.is_some() || title.is_some() {
            return format!("HTTP {code} {}: {}", ty.unwrap_or("about:blank"), title.unwrap_or(""));
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).replace(['\n', '\r'], " ");
    format!("HTTP {code}: {text}")
}
