//! Running one iteration of a flow: the order-flow steps against the HTTP
//! contract of the three services, and the generic `http` step.
//!
//! Every request gets a fresh W3C `traceparent` (random trace and span id,
//! sampled) so the slowest samples in the report open straight in Jaeger.

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
        body: Option<Bytes>,
        json: bool,
        expect: Vec<u16>,
        auth: bool,
    },
}

#[derive(Debug)]
struct CompiledFlow {
    steps: Vec<Compiled>,
}

/// Everything an iteration needs, shared by all of them.
pub struct Plan {
    flows: Vec<CompiledFlow>,
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
        let names = recorder.step_names().to_vec();
        let step_idx = |n: &str| names.iter().position(|x| x == n).expect("step names come from the same config");
        let origin_idx = |t: &str| origins.iter().position(|x| x == t).expect("targets validated against the config");
        let flows = config
            .flows
            .iter()
            .map(|f| CompiledFlow {
                steps: f
                    .steps
                    .iter()
                    .map(|s| match s {
                        Step::ListCatalog { name, target, limit } => Compiled::ListCatalog {
                            step: step_idx(name),
                            origin: origin_idx(target),
                            path: format!("/items?limit={limit}"),
                        },
                        Step::PlaceOrder { name, target, lines, quantity } => {
                            Compiled::PlaceOrder { step: step_idx(name), origin: origin_idx(target), lines: *lines, quantity: *quantity }
                        }
                        Step::PollOrder { name, target, interval, timeout } => {
                            Compiled::PollOrder { step: step_idx(name), origin: origin_idx(target), interval: *interval, timeout: *timeout }
                        }
                        Step::ReadNotifications { name, target, min_items } => {
                            Compiled::ReadNotifications { step: step_idx(name), origin: origin_idx(target), min_items: *min_items }
                        }
                        Step::Think { duration, jitter } => Compiled::Think { duration: *duration, jitter: *jitter },
                        Step::Http { name, target, method, path, headers, json, expect_status, auth } => Compiled::Http {
                            step: step_idx(name),
                            origin: origin_idx(target),
                            method: method.clone(),
                            path: path.clone(),
                            headers: headers.clone(),
                            body: json.clone().map(Bytes::from),
                            json: json.is_some(),
                            expect: expect_status.clone(),
                            auth: *auth,
                        },
                    })
                    .collect(),
            })
            .collect();
        let mut acc = 0u64;
        let cumulative = config
            .flows
            .iter()
            .map(|f| {
                acc += f.weight as u64;
                acc
            })
            .collect();
        let bearer = tokens
            .iter()
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
        let mut it = Iteration {
            plan: self,
            rng,
            intended: Some(if open { intended } else { started }),
            bearer: None,
            skus: Vec::new(),
            order_id: None,
            failed: false,
        };
        if !self.bearer.is_empty() {
            it.bearer = self.bearer.choose(&mut it.rng).cloned();
        }
        for step in &flow.steps {
            let go_on = it.run_step(step).await;
            if !go_on {
                it.failed = true;
                break;
            }
        }
        let origin = if open { intended } else { started };
        self.recorder.iteration_finished(Instant::now().saturating_duration_since(origin), it.failed);
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

impl Iteration<'_> {
    /// Runs a step; `false` when the flow cannot go on.
    async fn run_step(&mut self, step: &Compiled) -> bool {
        match step {
            Compiled::Think { duration, jitter } => {
                let extra = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_nanos(self.rng.random_range(0..=jitter.as_nanos() as u64))
                };
                tokio::time::sleep(*duration + extra).await;
                true
            }
            Compiled::ListCatalog { step, origin, path } => {
                let r = self.request(*step, *origin, Method::GET, path, None, false, &[200]).await;
                if !r.ok {
                    return false;
                }
                let items = r.response.as_ref().and_then(|resp| json(&resp.body)).and_then(|v| match v.get("items") {
                    Some(Value::Array(items)) => Some(items.clone()),
                    _ => None,
                });
                let valid = items.is_some();
                self.plan.recorder.check(*step, "body has an items array", valid);
                let items = items.unwrap_or_default();
                let in_stock: Vec<String> = items
                    .iter()
                    .filter(|i| i.get("stock").and_then(Value::as_i64).is_none_or(|s| s > 0))
                    .filter_map(|i| i.get("sku").and_then(Value::as_str).map(String::from))
                    .collect();
                self.skus = if in_stock.is_empty() {
                    items.iter().filter_map(|i| i.get("sku").and_then(Value::as_str).map(String::from)).collect()
                } else {
                    in_stock
                };
                self.plan.recorder.check(*step, "catalog has items", !self.skus.is_empty());
                valid
            }
            Compiled::PlaceOrder { step, origin, lines, quantity } => {
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
                let key = uuid::Uuid::new_v4().to_string();
                let extra = vec![(HeaderName::from_static("idempotency-key"), header(&key))];
                let r = self.request_with(*step, *origin, Method::POST, "/orders", Some(Bytes::from(body)), true, &[202], extra).await;
                if !r.ok {
                    return false;
                }
                let resp = r.response.as_ref();
                let id = resp
                    .and_then(|resp| json(&resp.body))
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(String::from))
                    .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
                self.plan.recorder.check(*step, "order has an id", id.is_some());
                let located = resp.is_some_and(|resp| resp.headers.contains_key(http::header::LOCATION));
                self.plan.recorder.check(*step, "response has a Location header", located);
                self.order_id = id;
                self.order_id.is_some()
            }
            Compiled::PollOrder { step, origin, interval, timeout } => {
                let Some(id) = self.order_id.clone() else {
                    return false;
                };
                let path = format!("/orders/{id}");
                let deadline = Instant::now() + *timeout;
                loop {
                    let r = self.request(*step, *origin, Method::GET, &path, None, true, &[200]).await;
                    let state = r
                        .response
                        .as_ref()
                        .filter(|_| r.ok)
                        .and_then(|resp| json(&resp.body))
                        .and_then(|v| v.get("status").and_then(Value::as_str).map(String::from));
                    if let Some(s) = state.as_deref()
                        && FINAL_STATES.contains(&s)
                    {
                        self.plan.recorder.check(*step, "order reached a final state", true);
                        self.plan.recorder.count(&format!("order_final_status.{s}"));
                        return true;
                    }
                    if Instant::now() + *interval > deadline {
                        self.plan.recorder.check(*step, "order reached a final state", false);
                        self.plan.recorder.count("order_final_status.TIMED_OUT");
                        // Notifications are still worth reading; the iteration counts as failed.
                        self.failed = true;
                        return true;
                    }
                    tokio::time::sleep(*interval).await;
                }
            }
            Compiled::ReadNotifications { step, origin, min_items } => {
                let Some(id) = self.order_id.clone() else {
                    return false;
                };
                let path = format!("/notifications?order_id={id}");
                let r = self.request(*step, *origin, Method::GET, &path, None, true, &[200]).await;
                if !r.ok {
                    return false;
                }
                let n = r
                    .response
                    .as_ref()
                    .and_then(|resp| json(&resp.body))
                    .and_then(|v| v.get("items").and_then(Value::as_array).map(Vec::len));
                self.plan.recorder.check(*step, "body has an items array", n.is_some());
                if *min_items > 0 {
                    self.plan.recorder.check(*step, "enough notifications", n.unwrap_or(0) >= *min_items as usize);
                }
                n.is_some()
            }
            Compiled::Http { step, origin, method, path, headers, body, json: is_json, expect, auth } => {
                let mut extra = headers.clone();
                if *is_json {
                    extra.push((http::header::CONTENT_TYPE, APPLICATION_JSON));
                }
                let r = self.request_with(*step, *origin, method.clone(), path, body.clone(), *auth, expect, extra).await;
                r.ok
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn request(
        &mut self,
        step: usize,
        origin: usize,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        auth: bool,
        expect: &[u16],
    ) -> Reply {
        let mut extra = Vec::new();
        if body.is_some() {
            extra.push((http::header::CONTENT_TYPE, APPLICATION_JSON));
        }
        self.request_with(step, origin, method, path, body, auth, expect, extra).await
    }

    /// Sends one request with a fresh traceparent and records the sample.
    #[allow(clippy::too_many_arguments)]
    async fn request_with(
        &mut self,
        step: usize,
        origin: usize,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        auth: bool,
        expect: &[u16],
        mut headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Reply {
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
        let sample = Sample { step, latency: finished.saturating_duration_since(from), finished, outcome, status, trace_id: trace };
        self.plan.recorder.record(&sample, detail.as_deref());
        Reply { ok: outcome == Outcome::Success, response }
    }
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
