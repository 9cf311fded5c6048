//! What the report shows of the slowest requests beyond their latency: each
//! one's trace, fetched from Jaeger's query API and laid out as a waterfall
//! with its critical path, and the trace's log lines from VictoriaLogs.
//!
//! Fetched once, when the run ends ([`fetch`]), with the runner's own HTTP
//! client. Traces reach Jaeger with a delay (the services export in
//! batches), so the fetch polls until every trace is found or
//! `report.trace_wait` has passed in all. Nothing here fails the run: an
//! unreachable backend, a trace not found in time or a document that does
//! not parse becomes a per-request reason in the report.
//!
//! The parsers ([`waterfall`], [`parse_logs`]) take the raw bytes and never
//! panic: any shape they do not understand is an `Err` with a reason.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{Client, RequestSpec};
use crate::config::{ReportSettings, Target};

/// Most spans kept per trace (the rest are counted in [`TraceDetails::spans_omitted`]).
pub const MAX_SPANS: usize = 500;
/// Most log lines fetched per trace.
pub const MAX_LOGS: usize = 200;
/// Pause between two polls of the traces not found yet.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// After the last trace is found, how long traces without log lines keep being asked for.
const LOGS_GRACE: Duration = Duration::from_secs(2);
/// Each request to Jaeger or VictoriaLogs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// One span of a trace as the waterfall draws it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpanRow {
    pub span_id: String,
    /// The parent's span id when the parent is in the trace.
    pub parent_span_id: Option<String>,
    /// Nesting level in the waterfall (0 for a root).
    pub depth: u32,
    pub service: String,
    pub operation: String,
    /// Start, in microseconds after the trace's earliest span started.
    pub start_offset_us: u64,
    pub duration_us: u64,
    /// The span has error status (`error=true` or `otel.status_code=ERROR`).
    pub error: bool,
    /// On the critical path: from the root, repeatedly the child that ends last.
    pub critical: bool,
}

/// One log line of a trace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    /// RFC 3339, as VictoriaLogs stores `_time`.
    pub time: String,
    pub service: String,
    pub level: String,
    pub message: String,
}

/// What the report knows about one slow request's trace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TraceDetails {
    /// Why there is no waterfall (`None` when the spans were fetched).
    pub trace_error: Option<String>,
    /// From the earliest span start to the latest span end.
    pub duration_us: u64,
    /// Depth-first, children by start time.
    pub spans: Vec<SpanRow>,
    /// Spans beyond [`MAX_SPANS`], not listed.
    pub spans_omitted: usize,
    /// Why there are no log lines (`None` when VictoriaLogs answered, even with none).
    pub logs_error: Option<String>,
    /// By time, at most [`MAX_LOGS`].
    pub logs: Vec<LogLine>,
}

/// The waterfall of a trace: spans, total duration, spans omitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Waterfall {
    pub duration_us: u64,
    pub spans: Vec<SpanRow>,
    pub spans_omitted: usize,
}

// --- Jaeger ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct JaegerResponse {
    #[serde(default)]
    data: Option<Vec<JaegerTrace>>,
    #[serde(default)]
    errors: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct JaegerTrace {
    #[serde(default)]
    spans: Vec<JaegerSpan>,
    #[serde(default)]
    processes: HashMap<String, JaegerProcess>,
}

#[derive(Debug, Deserialize)]
struct JaegerSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(rename = "operationName", default)]
    operation_name: String,
    #[serde(default)]
    references: Vec<JaegerRef>,
    #[serde(rename = "startTime")]
    start_time: u64,
    #[serde(default)]
    duration: u64,
    #[serde(default)]
    tags: Vec<JaegerTag>,
    #[serde(rename = "processID", default)]
    process_id: String,
}

#[derive(Debug, Deserialize)]
struct JaegerRef {
    #[serde(rename = "refType", default)]
    ref_type: String,
    #[serde(rename = "spanID", default)]
    span_id: String,
}

#[derive(Debug, Deserialize)]
struct JaegerTag {
    key: String,
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Deserialize)]
struct JaegerProcess {
    #[serde(rename = "serviceName", default)]
    service_name: String,
}

/// Why a Jaeger answer has no waterfall.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceError {
    /// No such trace (yet): worth asking again.
    NotFound,
    /// The document is not a Jaeger trace.
    Malformed(String),
}

fn has_error(tags: &[JaegerTag]) -> bool {
    tags.iter().any(|t| match (t.key.as_str(), &t.value) {
        ("error", Value::Bool(b)) => *b,
        ("error", Value::String(s)) => s.eq_ignore_ascii_case("true"),
        ("otel.status_code", Value::String(s)) => s.eq_ignore_ascii_case("error"),
        _ => false,
    })
}

/// Turns the body of `GET /api/traces/{id}` into the waterfall of its first
/// trace: spans depth-first (children by start time), offsets from the
/// earliest start, error marks, and the critical path.
pub fn waterfall(body: &[u8]) -> Result<Waterfall, TraceError> {
    let malformed = |e: &dyn std::fmt::Display| TraceError::Malformed(format!("Jaeger's answer is not a trace document: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
    if !value.is_object() {
        return Err(malformed(&"not a JSON object"));
    }
    let doc: JaegerResponse = serde_json::from_value(value).map_err(|e| malformed(&e))?;
    let Some(trace) = doc.data.and_then(|d| d.into_iter().next()) else {
        return match doc.errors.as_deref() {
            Some([first, ..]) if first.get("code").and_then(Value::as_u64) != Some(404) => {
                Err(TraceError::Malformed(format!("Jaeger answered an error: {first}")))
            }
            _ => Err(TraceError::NotFound),
        };
    };
    if trace.spans.is_empty() {
        return Err(TraceError::NotFound);
    }
    let spans = &trace.spans;
    let start = spans.iter().map(|s| s.start_time).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.start_time.saturating_add(s.duration)).max().unwrap_or(start);
    let index: HashMap<&str, usize> = spans.iter().enumerate().map(|(i, s)| (s.span_id.as_str(), i)).collect();
    // The parent is the first CHILD_OF (else FOLLOWS_FROM) reference to a span in this trace.
    let parent: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let refs = || s.references.iter().filter(|r| r.span_id != s.span_id);
            let child_of = refs().filter(|r| r.ref_type == "CHILD_OF").find_map(|r| index.get(r.span_id.as_str()).copied());
            child_of.or_else(|| refs().find_map(|r| index.get(r.span_id.as_str()).copied())).filter(|p| *p != i)
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    let order_key = |i: &usize| (spans[*i].start_time, std::cmp::Reverse(spans[*i].duration), spans[*i].span_id.clone());
    roots.sort_by_key(order_key);
    for c in &mut children {
        c.sort_by_key(order_key);
    }
    // Critical path: from the main root (earliest, then longest), the child that ends last, repeatedly.
    let mut critical = vec![false; spans.len()];
    let ends = |i: usize| spans[i].start_time.saturating_add(spans[i].duration);
    let mut at = roots.first().copied();
    while let Some(i) = at {
        if critical[i] {
            break;
        }
        critical[i] = true;
        at = children[i].iter().copied().max_by_key(|c| (ends(*c), std::cmp::Reverse(spans[*c].start_time)));
    }
    // Depth-first order. Parent links may form a cycle in a malformed document:
    // spans not reached from a root are appended as roots of their own.
    let mut visited = vec![false; spans.len()];
    let mut out = Vec::with_capacity(spans.len().min(MAX_SPANS));
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut pending_roots: Vec<usize> = roots;
    let mut next_unvisited = 0;
    loop {
        if stack.is_empty() {
            if !pending_roots.is_empty() {
                stack.push((pending_roots.remove(0), 0));
            } else {
                while next_unvisited < spans.len() && visited[next_unvisited] {
                    next_unvisited += 1;
                }
                if next_unvisited == spans.len() {
                    break;
                }
                stack.push((next_unvisited, 0));
            }
        }
        let Some((i, depth)) = stack.pop() else { break };
        if visited[i] {
            continue;
        }
        visited[i] = true;
        let s = &spans[i];
        out.push(SpanRow {
            span_id: s.span_id.clone(),
            parent_span_id: parent[i].map(|p| spans[p].span_id.clone()),
            depth,
            service: trace.processes.get(&s.process_id).map(|p| p.service_name.clone()).unwrap_or_else(|| s.process_id.clone()),
            operation: s.operation_name.clone(),
            start_offset_us: s.start_time - start,
            duration_us: s.duration,
            error: has_error(&s.tags),
            critical: critical[i],
        });
        for c in children[i].iter().rev() {
            if !visited[*c] {
                stack.push((*c, depth.saturating_add(1)));
            }
        }
    }
    let spans_omitted = out.len().saturating_sub(MAX_SPANS);
    out.truncate(MAX_SPANS);
    Ok(Waterfall { duration_us: end - start, spans: out, spans_omitted })
}

// --- VictoriaLogs -----------------------------------------------------------

/// Parses the JSON-lines body of `/select/logsql/query`: one object per line
/// with `_time`, `_msg`, and the `service` and `level` fields when present.
pub fn parse_logs(body: &[u8]) -> Result<Vec<LogLine>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("VictoriaLogs' answer is not UTF-8: {e}"))?;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("VictoriaLogs' answer, line {}: not JSON: {e}", n + 1))?;
        let Value::Object(o) = v else {
            return Err(format!("VictoriaLogs' answer, line {}: not a JSON object", n + 1));
        };
        let field = |k: &str| match o.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        lines.push(LogLine { time: field("_time"), service: field("service"), level: field("level"), message: field("_msg") });
    }
    lines.sort_by(|a, b| a.time.cmp(&b.time));
    lines.truncate(MAX_LOGS);
    Ok(lines)
}

/// The LogsQL query for one trace's lines.
pub fn logs_query(trace_id: &str) -> String {
    format!("trace_id:\"{}\" | sort by (_time) | limit {MAX_LOGS}", trace_id.replace(['"', '\\'], ""))
}

/// `s` percent-encoded for a query string (everything but unreserved characters).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// --- fetching -------------------------------------------------------------

/// The backends to ask, from the report settings.
#[derive(Debug, Clone)]
pub struct Backends {
    pub jaeger: Option<Target>,
    pub victorialogs: Option<Target>,
    /// Total time to poll for traces not found yet.
    pub wait: Duration,
}

impl Backends {
    pub fn from_settings(r: &ReportSettings) -> Backends {
        Backends { jaeger: r.jaeger_query.clone(), victorialogs: r.victorialogs.clone(), wait: r.trace_wait }
    }

    /// Neither backend is configured: nothing to fetch.
    pub fn is_empty(&self) -> bool {
        self.jaeger.is_none() && self.victorialogs.is_none()
    }
}

/// State of one trace while polling.
enum Got<T> {
    Pending(String),
    Done(T),
    Failed(String),
}

/// Fetches the traces and log lines of `trace_ids` (duplicates fetched once).
/// Never fails: what could not be fetched carries its reason.
pub async fn fetch(backends: &Backends, trace_ids: &[String]) -> BTreeMap<String, TraceDetails> {
    let mut ids: Vec<String> = trace_ids.to_vec();
    ids.sort();
    ids.dedup();
    let deadline = Instant::now() + backends.wait;
    // One client per backend, so a host that does not resolve only costs its own data.
    let jaeger = match &backends.jaeger {
        Some(t) => Some(client_for("Jaeger", t).await),
        None => None,
    };
    let logs = match &backends.victorialogs {
        Some(t) => Some(client_for("VictoriaLogs", t).await),
        None => None,
    };
    fn start<T>(n: usize, client: &Option<Result<Client, String>>, key: &str) -> Vec<Got<T>> {
        let why = match client {
            None => Some(format!("no report.{key} configured")),
            Some(Err(e)) => Some(e.clone()),
            Some(Ok(_)) => None,
        };
        (0..n).map(|_| why.clone().map_or_else(|| Got::Pending(String::new()), Got::Failed)).collect()
    }
    let mut traces: Vec<Got<Waterfall>> = start(ids.len(), &jaeger, "jaeger_query_url");
    let mut lines: Vec<Got<Vec<LogLine>>> = start(ids.len(), &logs, "victorialogs_url");
    // Until VictoriaLogs has answered for a trace (an empty answer turns this into "").
    for l in &mut lines {
        if let Got::Pending(why) = l {
            *why = "not asked before report.trace_wait ran out".into();
        }
    }
    let mut all_found_at: Option<Instant> = None;

    loop {
        let round_start = Instant::now();
        if let Some(Ok(c)) = &jaeger {
            poll_traces(c, &ids, &mut traces, deadline).await;
        }
        let traces_settled = traces.iter().all(|t| !matches!(t, Got::Pending(_)));
        if traces_settled && all_found_at.is_none() {
            all_found_at = Some(Instant::now());
        }
        if let Some(Ok(c)) = &logs {
            poll_logs(c, &ids, &mut lines, deadline).await;
        }
        let logs_settled = lines.iter().all(|l| !matches!(l, Got::Pending(_)))
            || all_found_at.is_some_and(|t| Instant::now().saturating_duration_since(t) >= LOGS_GRACE);
        if (traces_settled && logs_settled) || Instant::now() >= deadline {
            break;
        }
        // Poll again after POLL_EVERY (or at the deadline), not a fixed sleep per trace.
        tokio::time::sleep_until((round_start + POLL_EVERY).min(deadline)).await;
    }

    let waited = format!("{:.1}s", backends.wait.as_secs_f64());
    ids.into_iter()
        .zip(traces.into_iter().zip(lines))
        .map(|(id, (t, l))| {
            let mut d = TraceDetails::default();
            match t {
                Got::Done(w) => {
                    d.duration_us = w.duration_us;
                    d.spans = w.spans;
                    d.spans_omitted = w.spans_omitted;
                }
                Got::Failed(reason) => d.trace_error = Some(reason),
                Got::Pending(last) => {
                    let why = if last.is_empty() { "not found in Jaeger".to_string() } else { last };
                    d.trace_error = Some(format!("{why} within report.trace_wait ({waited})"));
                }
            }
            match l {
                Got::Done(v) => d.logs = v,
                // Still waiting for lines: none came, which is an answer.
                Got::Pending(last) if last.is_empty() => {}
                Got::Pending(last) | Got::Failed(last) => d.logs_error = Some(last),
            }
            (id, d)
        })
        .collect()
}

/// A client for one backend (its host is the one allowed: these are a few
/// read-only queries, not load).
async fn client_for(name: &str, t: &Target) -> Result<Client, String> {
    let named = [(name.to_string(), t.clone())];
    Client::resolve(&named, std::slice::from_ref(&t.host), REQUEST_TIMEOUT, REQUEST_TIMEOUT.min(Duration::from_secs(2)))
        .await
        .map_err(|e| format!("{name} unreachable: {e}"))
}

async fn get(client: &Client, origin: usize, path: &str) -> Result<(StatusCode, bytes::Bytes), String> {
    let accept = (HeaderName::from_static("accept"), HeaderValue::from_static("application/json"));
    let spec = RequestSpec { method: Method::GET, path, headers: vec![accept], body: None };
    client.send(origin, spec).await.map(|r| (r.status, r.body)).map_err(|e| e.message)
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.chars().count() > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s.to_string() }
}

/// One round over the traces not found yet, until `deadline`. A transport failure ends every
/// pending trace with that reason (the backend is down; asking again for
/// each trace would only wait longer).
async fn poll_traces(client: &Client, ids: &[String], traces: &mut [Got<Waterfall>], deadline: Instant) {
    let origin = 0;
    for (id, state) in ids.iter().zip(traces.iter_mut()) {
        if Instant::now() >= deadline {
            return;
        }
        if !matches!(state, Got::Pending(_)) {
            continue;
        }
        match get(client, origin, &format!("/api/traces/{}", encode_component(id))).await {
            Err(e) => {
                let reason = format!("Jaeger unreachable: {e}");
                for s in traces.iter_mut().filter(|s| matches!(s, Got::Pending(_))) {
                    *s = Got::Failed(reason.clone());
                }
                return;
            }
            Ok((status, body)) if status == StatusCode::OK || status == StatusCode::NOT_FOUND => match waterfall(&body) {
                Ok(w) => *state = Got::Done(w),
                Err(TraceError::NotFound) => *state = Got::Pending(String::new()),
                Err(TraceError::Malformed(m)) => *state = Got::Failed(m),
            },
            Ok((status, body)) if status.is_server_error() => {
                *state = Got::Pending(format!("Jaeger answered {status}: {}", snippet(&body)));
            }
            Ok((status, body)) => *state = Got::Failed(format!("Jaeger answered {status}: {}", snippet(&body))),
        }
    }
}

/// One round over the traces without log lines yet, until `deadline`.
async fn poll_logs(client: &Client, ids: &[String], lines: &mut [Got<Vec<LogLine>>], deadline: Instant) {
    let origin = 0;
    for (id, state) in ids.iter().zip(lines.iter_mut()) {
        if Instant::now() >= deadline {
            return;
        }
        if !matches!(state, Got::Pending(_)) {
            continue;
        }
        let path = format!("/select/logsql/query?query={}", encode_component(&logs_query(id)));
        match get(client, origin, &path).await {
            Err(e) => {
                let reason = format!("VictoriaLogs unreachable: {e}");
                for s in lines.iter_mut().filter(|s| matches!(s, Got::Pending(_))) {
                    *s = Got::Failed(reason.clone());
                }
                return;
            }
            Ok((StatusCode::OK, body)) => match parse_logs(&body) {
                Ok(v) if v.is_empty() => *state = Got::Pending(String::new()),
                Ok(v) => *state = Got::Done(v),
                Err(m) => *state = Got::Failed(m),
            },
            Ok((status, body)) => *state = Got::Failed(format!("VictoriaLogs answered {status}: {}", snippet(&body))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like Jaeger's `GET /api/traces/{id}`: a gateway span with two
    /// children (a DB query, and a call to inventory that ends last and has
    /// a child of its own that failed), all in one trace.
    const TRACE: &str = r#"{
      "data": [{
        "traceID": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spans": [
          {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "c3", "operationName": "SELECT stock",
           "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b2"}],
           "startTime": 1700000000003000, "duration": 4000,
           "tags": [{"key": "otel.status_code", "type": "string", "value": "ERROR"}], "processID": "p2"},
          {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1", "operationName": "POST /orders",
           "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "ffffffffffffffff"}],
           "startTime": 1700000000000000, "duration": 10000,
           "tags": [{"key": "http.response.status_code", "type": "int64", "value": 202}], "processID": "p1"},
          {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b1", "operationName": "INSERT orders",
           "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1"}],
           "startTime": 1700000000001000, "duration": 1500,
           "tags": [{"key": "error", "type": "bool", "value": false}], "processID": "p1"},
          {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b2", "operationName": "reserve",
           "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1"}],
           "startTime": 1700000000002000, "duration": 7000,
           "tags": [{"key": "error", "type": "bool", "value": true}], "processID": "p2"}
        ],
        "processes": {"p1": {"serviceName": "order", "tags": []}, "p2": {"serviceName": "inventory", "tags": []}},
        "warnings": null
      }],
      "total": 0, "limit": 0, "offset": 0, "errors": null
    }"#;

    fn by_id<'a>(w: &'a Waterfall, id: &str) -> &'a SpanRow {
        w.spans.iter().find(|s| s.span_id == id).unwrap()
    }

    #[test]
    fn jaeger_trace_becomes_a_waterfall() {
        let w = waterfall(TRACE.as_bytes()).unwrap();
        assert_eq!(w.duration_us, 10_000);
        assert_eq!(w.spans_omitted, 0);
        // Depth-first, children by start time.
        let order: Vec<(&str, u32)> = w.spans.iter().map(|s| (s.span_id.as_str(), s.depth)).collect();
        assert_eq!(order, [("a1", 0), ("b1", 1), ("b2", 1), ("c3", 2)]);
        let root = by_id(&w, "a1");
        assert_eq!((root.service.as_str(), root.operation.as_str()), ("order", "POST /orders"));
        assert_eq!((root.start_offset_us, root.duration_us, root.parent_span_id.as_deref()), (0, 10_000, None));
        let c3 = by_id(&w, "c3");
        assert_eq!((c3.service.as_str(), c3.start_offset_us, c3.duration_us), ("inventory", 3000, 4000));
        assert_eq!(c3.parent_span_id.as_deref(), Some("b2"));
    }

    #[test]
    fn critical_path_follows_the_child_that_ends_last() {
        let w = waterfall(TRACE.as_bytes()).unwrap();
        let critical: Vec<&str> = w.spans.iter().filter(|s| s.critical).map(|s| s.span_id.as_str()).collect();
        // b2 ends at 9 ms, b1 at 2.5 ms; under b2, c3 is the only child.
        assert_eq!(critical, ["a1", "b2", "c3"]);
    }

    #[test]
    fn error_marks_come_from_error_and_otel_status_tags() {
        let w = waterfall(TRACE.as_bytes()).unwrap();
        let errors: Vec<&str> = w.spans.iter().filter(|s| s.error).map(|s| s.span_id.as_str()).collect();
        assert_eq!(errors, ["b2", "c3"], "error=true and otel.status_code=ERROR; error=false is no error");
    }

    #[test]
    fn not_found_and_malformed_documents_are_reasons_not_panics() {
        let not_found = r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}"#;
        assert_eq!(waterfall(not_found.as_bytes()), Err(TraceError::NotFound));
        assert_eq!(waterfall(br#"{"data":[]}"#), Err(TraceError::NotFound));
        assert_eq!(waterfall(br#"{"data":[{"traceID":"x","spans":[],"processes":{}}]}"#), Err(TraceError::NotFound));
        for bad in [&b""[..], b"<html>", b"[]", br#"{"data":[{"spans":[{"spanID":"a"}]}]}"#, br#"{"data":"x"}"#, b"\xff\xfe"] {
            assert!(matches!(waterfall(bad), Err(TraceError::Malformed(_))), "{:?}", String::from_utf8_lossy(bad));
        }
        let err = r#"{"data":null,"errors":[{"code":500,"msg":"storage down"}]}"#;
        assert!(matches!(waterfall(err.as_bytes()), Err(TraceError::Malformed(m)) if m.contains("storage down")));
    }

    #[test]
    fn cycles_self_references_and_unknown_processes_do_not_loop_or_panic() {
        let doc = r#"{"data":[{"spans":[
            {"spanID":"a","operationName":"x","references":[{"refType":"CHILD_OF","spanID":"b"}],"startTime":10,"duration":5,"processID":"p9"},
            {"spanID":"b","operationName":"y","references":[{"refType":"CHILD_OF","spanID":"a"}],"startTime":12,"duration":1,"processID":"p9"},
            {"spanID":"c","operationName":"z","references":[{"refType":"CHILD_OF","spanID":"c"}],"startTime":11,"duration":0,"processID":"p9"}
        ],"processes":{}}]}"#;
        let w = waterfall(doc.as_bytes()).unwrap();
        assert_eq!(w.spans.len(), 3, "every span listed once");
        assert_eq!(w.duration_us, 5);
        assert!(w.spans.iter().all(|s| s.service == "p9"));
        assert!(by_id(&w, "c").critical, "c is the only root");
    }

    #[test]
    fn victorialogs_json_lines_parse() {
        let body = concat!(
            r#"{"_msg":"reserving stock","_stream":"{level=\"info\",service=\"inventory\"}","_time":"2026-12-01T00:24:26.683826748Z","level":"info","service":"inventory","trace_id":"4bf9"}"#,
            "\n",
            r#"{"_msg":"order accepted","_time":"2026-12-01T00:24:26.100000000Z","level":"warn","service":"order","trace_id":"4bf9","n":3}"#,
            "\n\n",
            r#"{"_msg":"no level","_time":"2026-12-01T00:24:27Z"}"#,
            "\n"
        );
        let lines = parse_logs(body.as_bytes()).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            LogLine {
                time: "2026-12-01T00:24:26.100000000Z".into(),
                service: "order".into(),
                level: "warn".into(),
                message: "order accepted".into()
            }
        );
        assert_eq!((lines[1].service.as_str(), lines[1].message.as_str()), ("inventory", "reserving stock"));
        assert_eq!((lines[2].service.as_str(), lines[2].level.as_str()), ("", ""));
        assert_eq!(parse_logs(b"").unwrap(), vec![]);
        assert!(parse_logs(b"{\"_msg\":").unwrap_err().contains("line 1"));
        assert!(parse_logs(b"{}\n[1]").unwrap_err().contains("line 2"));
        assert!(parse_logs(b"\xff").is_err());
    }

    #[test]
    fn backends_are_optional_plain_http_urls() {
        use crate::config::{Config, Overrides};
        let base = "scenario: t\ntargets: {app: \"http://127.0.0.1:1\"}\nload: {model: closed, vus: 1, duration: 1s}\n\
                    flows: [{name: f, steps: [{step: http, name: s, target: app}]}]\n";
        let parse = |report: &str| Config::parse(&format!("{base}{report}"), std::path::Path::new("."), &Overrides::default());
        let none = Backends::from_settings(&parse("").unwrap().report);
        assert!(none.is_empty(), "absent: nothing fetched");
        assert_eq!(none.wait, Duration::from_secs(10));
        let cfg = parse("report: {jaeger_query_url: \"http://127.0.0.1:16686/\", trace_wait: 3s}\n").unwrap();
        let b = Backends::from_settings(&cfg.report);
        let j = b.jaeger.unwrap();
        assert_eq!((j.port, j.base_path.as_str(), b.victorialogs.is_none(), b.wait), (16686, "", true, Duration::from_secs(3)));
        let e = parse("report: {victorialogs_url: \"https://logs\"}\n").unwrap_err().0;
        assert!(e.contains("report.victorialogs_url") && e.contains("https"), "{e}");
        assert!(parse("report: {trace_wait: 1h}\n").unwrap_err().0.contains("report.trace_wait"));
    }

    #[test]
    fn the_logs_query_names_the_trace_and_is_encoded() {
        assert_eq!(logs_query("ab\"c"), "trace_id:\"abc\" | sort by (_time) | limit 200");
        assert_eq!(encode_component("a b|\"c\""), "a%20b%7C%22c%22");
    }
}
