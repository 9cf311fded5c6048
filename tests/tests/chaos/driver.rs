//! An open-model order driver: `POST /orders` at a fixed arrival rate,
//! whatever the service is doing, remembering every attempt.
//!
//! Why not `glasshouse-loadtest`: the audit needs the exact set of order ids
//! the API accepted (to count orders accepted but missing from the database)
//! and the key and body of every request whose answer was lost (to replay it
//! with the same `Idempotency-Key`); the runner reports counts and latencies,
//! not ids, and a run whose thresholds fail by design (every fault makes some
//! requests fail) is not what it is for. The model is the runner's: arrival
//! `i` is due at `i / rate` after the start, a late arrival is not skipped, and
//! an arrival that finds `max_in_flight` requests running is dropped and
//! counted, never queued.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

/// The SKUs the driver orders, with the stock each was seeded with.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Plentiful SKUs: orders for them are confirmed.
    pub plenty: Vec<String>,
    /// One SKU with little stock: once it runs out, orders for it are
    /// rejected, which is where an oversell would show.
    pub scarce: String,
}

impl Catalog {
    /// The lines of the `seq`-th order: one or two plentiful SKUs and, for
    /// every fifth order, the scarce one. Deterministic, so a rerun orders
    /// the same things.
    pub fn lines(&self, seq: u64) -> Value {
        let n = self.plenty.len() as u64;
        let mut lines = vec![json!({ "sku": self.plenty[(seq % n) as usize], "quantity": 1 + seq % 2 })];
        if seq.is_multiple_of(3) {
            lines.push(json!({ "sku": self.plenty[((seq / 3 + 1 + seq) % n) as usize], "quantity": 1 }));
        }
        if seq.is_multiple_of(5) {
            lines.push(json!({ "sku": self.scarce, "quantity": 1 + seq % 2 }));
        }
        // Two plentiful lines may name the same SKU: keep the first.
        let mut seen = std::collections::HashSet::new();
        lines.retain(|l| seen.insert(l["sku"].as_str().unwrap_or_default().to_owned()));
        json!({ "lines": lines })
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 202: the order exists (its id).
    Accepted(uuid::Uuid),
    /// A definite answer other than 202 (status, problem `type`), or the
    /// connection was refused (status 0): nothing was stored.
    Refused(u16, String),
    /// No answer (timeout, connection reset after the request was sent): the
    /// order may or may not exist. Resolved by [`replay_ambiguous`].
    Ambiguous(String),
    /// Not sent: `max_in_flight` requests were already running.
    Dropped,
}

/// One `POST /orders`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub key: String,
    pub body: Value,
    /// When it was due (the open model's intended start).
    pub due: Instant,
    /// From `due` to the answer (coordinated omission corrected).
    pub latency: Duration,
    pub outcome: Outcome,
    /// Accepted on a replay of an ambiguous first attempt.
    pub replayed: bool,
}

/// Everything one load run saw.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub attempts: Vec<Attempt>,
}

impl LoadResult {
    pub fn accepted(&self) -> Vec<uuid::Uuid> {
        self.attempts
            .iter()
            .filter_map(|a| match a.outcome {
                Outcome::Accepted(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    /// Refusals by status (`0` = connection refused).
    pub fn refused(&self) -> std::collections::BTreeMap<u16, usize> {
        let mut m = std::collections::BTreeMap::new();
        for a in &self.attempts {
            if let Outcome::Refused(s, _) = a.outcome {
                *m.entry(s).or_default() += 1;
            }
        }
        m
    }

    pub fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.attempts.iter().filter(|a| pred(&a.outcome)).count()
    }

    /// Latencies of the attempts matching `pred` that were due in `[from, to)`.
    pub fn latencies(&self, from: Instant, to: Instant, pred: impl Fn(&Outcome) -> bool) -> Vec<Duration> {
        let mut v: Vec<Duration> =
            self.attempts.iter().filter(|a| a.due >= from && a.due < to && pred(&a.outcome)).map(|a| a.latency).collect();
        v.sort();
        v
    }
}

/// The `q` quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// Where and as whom to order.
#[derive(Clone)]
pub struct Target {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:<order port>/orders`
    pub url: String,
    pub token: String,
    pub catalog: Catalog,
}

/// A running load.
pub struct Load {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<LoadResult>,
    results: Arc<Mutex<Vec<Attempt>>>,
}

impl Load {
    /// Starts `rate` orders/s now, for `arrivals` orders (`None`: until
    /// stopped); `seq0` numbers this run's keys and lines.
    pub fn start(target: Target, rate: f64, arrivals: Option<u64>, max_in_flight: usize, seq0: u64) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let results: Arc<Mutex<Vec<Attempt>>> = Arc::default();
        let task = tokio::spawn({
            let results = results.clone();
            async move {
                let start = tokio::time::Instant::now();
                let slots = Arc::new(Semaphore::new(max_in_flight));
                let run = uuid::Uuid::new_v4().simple().to_string();
                let mut i = 0u64;
                while arrivals.is_none_or(|n| i < n) {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = stopped.changed() => break,
                    }
                    let seq = seq0 + i;
                    i += 1;
                    let key = format!("chaos-{run}-{seq}");
                    let body = target.catalog.lines(seq);
                    let due = due.into_std();
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        let dropped = Attempt { key, body, due, latency: Duration::ZERO, outcome: Outcome::Dropped, replayed: false };
                        results.lock().unwrap().push(dropped);
                        continue;
                    };
                    let (target, results) = (target.clone(), results.clone());
                    tokio::spawn(async move {
                        let outcome = place(&target, &key, &body).await;
                        let latency = due.elapsed();
                        results.lock().unwrap().push(Attempt { key, body, due, latency, outcome, replayed: false });
                        drop(permit);
                    });
                }
                // Let the requests in flight finish (each has the client's timeout).
                let _ = slots.acquire_many(max_in_flight as u32).await;
                LoadResult { attempts: results.lock().unwrap().clone() }
            }
        });
        Self { stop, task, results }
    }

    /// Every attempt finished so far.
    pub fn snapshot(&self) -> Vec<Attempt> {
        self.results.lock().unwrap().clone()
    }

    /// Orders accepted so far.
    pub fn accepted_so_far(&self) -> usize {
        self.results.lock().unwrap().iter().filter(|a| matches!(a.outcome, Outcome::Accepted(_))).count()
    }

    /// Stops scheduling, waits for the requests in flight, returns every attempt.
    pub async fn stop(self) -> anyhow::Result<LoadResult> {
        let _ = self.stop.send(true);
        Ok(self.task.await?)
    }
}

/// One `POST /orders`, classified.
pub async fn place(target: &Target, key: &str, body: &Value) -> Outcome {
    let sent = target.http.post(&target.url).bearer_auth(&target.token).header("Idempotency-Key", key).json(body).send().await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 202 {
                match v["id"].as_str().and_then(|s| s.parse().ok()) {
                    Some(id) => Outcome::Accepted(id),
                    None => Outcome::Ambiguous(format!("202 without an order id: {v}")),
                }
            } else {
                Outcome::Refused(status, v["type"].as_str().unwrap_or_default().to_owned())
            }
        }
        // Refused before anything was sent: certainly not stored.
        Err(e) if e.is_connect() => Outcome::Refused(0, "connect".into()),
        Err(e) => Outcome::Ambiguous(format!("{e:#}")),
    }
}

/// Sends every ambiguous attempt again with the same key and body until it
/// gets a definite answer or `deadline` passes. An order that was stored
/// before the answer got lost comes back as the idempotent replay (202, the
/// same id); one that was not is created now or refused. Returns how many
/// were ambiguous.
pub async fn replay_ambiguous(target: &Target, result: &mut LoadResult, deadline: Duration) -> usize {
    let until = Instant::now() + deadline;
    let mut ambiguous = 0;
    for a in result.attempts.iter_mut().filter(|a| matches!(a.outcome, Outcome::Ambiguous(_))) {
        ambiguous += 1;
        loop {
            let outcome = place(target, &a.key, &a.body).await;
            let definite = !matches!(outcome, Outcome::Ambiguous(_)) && !matches!(outcome, Outcome::Refused(0 | 503, _));
            if definite || Instant::now() >= until {
                a.replayed = matches!(outcome, Outcome::Accepted(_));
                a.outcome = outcome;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    ambiguous
}
