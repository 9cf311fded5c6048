//! The report explains its slowest requests with data from the REAL Jaeger
//! and VictoriaLogs of the local stack (`deploy/local/stack up jaeger
//! victorialogs`; ports from `deploy/local/ports.env`, overridable with the
//! same environment variables).
//!
//! A short run against the stand-in server gives real slow requests with the
//! trace ids the runner sent. For the slowest one the test then plays the
//! services: it exports three spans of that trace to Jaeger over OTLP/HTTP
//! JSON and ingests a log line with that `trace_id` into VictoriaLogs. The
//! runner's fetch ([`Summary::attach_traces`], what `run` calls when the
//! backends are configured) must poll until the trace arrives, and the
//! waterfall and the log line must appear in the JSON summary and the HTML.
//! The second slowest request's trace is never exported: it must say
//! "trace not available" with a reason, within `report.trace_wait`.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Behaviour, TestServer, temp_dir, write};
use glasshouse_loadtest::client::{Client, RequestSpec};
use glasshouse_loadtest::config::{Config, Overrides, parse_target};
use glasshouse_loadtest::runner::{RunOptions, run};
use glasshouse_loadtest::trace::Backends;
use http::{HeaderName, HeaderValue, Method};

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn url(var: &str, default: u16) -> String {
    format!("http://127.0.0.1:{}", port(var, default))
}

/// Fails with how to start the piece unless it accepts connections.
async fn require(name: &str, url: &str) {
    let addr = url.trim_start_matches("http://");
    match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => {}
        other => panic!(
            "{name} is not reachable at {addr} ({other:?}). Start the local stack: `deploy/local/stack up {name}` \
             (GLASSHOUSE_HOME=/work/main/target/glasshouse)"
        ),
    }
}

/// POSTs a JSON or JSON-lines body with the runner's own client; returns the status.
async fn post(base: &str, path: &str, content_type: &'static str, body: String) -> (u16, String) {
    let target = parse_target(base).unwrap();
    let client = Client::resolve(&[("backend".into(), target)], &[], Duration::from_secs(5), Duration::from_secs(2)).await.unwrap();
    let headers = vec![(HeaderName::from_static("content-type"), HeaderValue::from_static(content_type))];
    let spec = RequestSpec { method: Method::POST, path, headers, body: Some(Bytes::from(body)) };
    let r = client.send(0, spec).await.unwrap_or_else(|e| panic!("POST {base}{path}: {}", e.message));
    (r.status.as_u16(), String::from_utf8_lossy(&r.body).into_owned())
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowest_requests_carry_their_jaeger_waterfall_and_victorialogs_lines() {
    let jaeger_query = url("GH_JAEGER_QUERY_PORT", 16686);
    let otlp_http = url("GH_JAEGER_OTLP_HTTP_PORT", 4318);
    let victorialogs = url("GH_VICTORIALOGS_PORT", 9428);
    require("jaeger", &jaeger_query).await;
    require("jaeger", &otlp_http).await;
    require("victorialogs", &victorialogs).await;

    // A real run: its slowest requests carry the trace ids the runner sent.
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(2), ..Behaviour::default() }).await;
    let dir = temp_dir("trace-details");
    let load = "  model: constant_rate\n  rate: 20\n  duration: 1s";
    let yaml = common::hello_config(&server.url(), load, &[])
        + &format!("report:\n  slowest: 2\n  jaeger_query_url: {jaeger_query}\n  victorialogs_url: {victorialogs}\n  trace_wait: 8s\n");
    let cfg = Config::load(&write(&dir, "s.yaml", &yaml), &Overrides::default()).unwrap();
    // The run itself polls for its (never exported) traces; the fetch is tested below.
    let mut no_backends = cfg.clone();
    no_backends.report.jaeger_query = None;
    no_backends.report.victorialogs = None;
    let outcome = run(&no_backends, RunOptions::new(dir.join("out"))).await.expect("run completes");
    let mut summary = outcome.summary;
    assert_eq!(summary.slowest.len(), 2, "{:?}", summary.slowest);
    assert!(summary.slowest.iter().all(|s| s.trace.is_none()), "no backends configured: nothing fetched");
    let trace_id = summary.slowest[0].trace_id.clone();
    let missing_id = summary.slowest[1].trace_id.clone();
    assert_ne!(trace_id, missing_id);

    // Play the services: three spans of that trace, and one log line.
    let service = format!("loadtest-trace-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let t0 = SystemTime::now() - Duration::from_millis(50);
    let at = |ms: u64| nanos(t0 + Duration::from_millis(ms));
    let span = |id: &str, parent: &str, name: &str, start: u64, end: u64, error: bool| {
        serde_json::json!({
            "traceId": trace_id, "spanId": id, "parentSpanId": parent, "name": name, "kind": 2,
            "startTimeUnixNano": at(start), "endTimeUnixNano": at(end),
            "status": if error { serde_json::json!({"code": 2, "message": "stock check failed"}) } else { serde_json::json!({"code": 1}) }
        })
    };
    let otlp = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "loadtest-trace-test"}, "spans": [
            span("a000000000000001", "", "GET /hello", 0, 30, false),
            span("b000000000000002", "a000000000000001", "read cache", 2, 8, false),
            span("c000000000000003", "a000000000000001", "SELECT stock", 10, 28, true),
        ]}]
    }]});
    let (status, body) = post(&otlp_http, "/v1/traces", "application/json", otlp.to_string()).await;
    assert_eq!(status, 200, "OTLP/HTTP export refused: {body}");
    let message = format!("stock lookup slow for {service}");
    let log = serde_json::json!({
        "_msg": message, "_time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "service": service, "level": "warn", "trace_id": trace_id,
    });
    let (status, body) = post(
        &victorialogs,
        "/insert/jsonline?_stream_fields=service,level&_msg_field=_msg&_time_field=_time",
        "application/stream+json",
        log.to_string() + "\n",
    )
    .await;
    assert!((200..300).contains(&status), "VictoriaLogs ingestion refused ({status}): {body}");

    // The runner's fetch polls until the trace is in Jaeger (it arrives with a delay).
    let backends = Backends::from_settings(&cfg.report);
    let started = std::time::Instant::now();
    summary.attach_traces(&backends).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "the fetch keeps to report.trace_wait (8s) plus one round: {took:?}");

    let found = summary.slowest[0].trace.as_ref().expect("details for the exported trace");
    assert_eq!(found.trace_error, None, "{found:?}");
    let rows: Vec<(&str, &str, u32, bool, bool)> =
        found.spans.iter().map(|s| (s.service.as_str(), s.operation.as_str(), s.depth, s.critical, s.error)).collect();
    assert_eq!(
        rows,
        [
            (service.as_str(), "GET /hello", 0, true, false),
            (service.as_str(), "read cache", 1, false, false),
            (service.as_str(), "SELECT stock", 1, true, true),
        ],
        "{found:?}"
    );
    assert_eq!(found.duration_us, 30_000);
    assert_eq!((found.spans[2].start_offset_us, found.spans[2].duration_us), (10_000, 18_000));
    assert_eq!(found.logs_error, None, "{found:?}");
    assert!(found.logs.iter().any(|l| l.message == message && l.service == service && l.level == "warn"), "{:?}", found.logs);

    let missing = summary.slowest[1].trace.as_ref().expect("details for the other slow request");
    assert!(missing.spans.is_empty());
    let why = missing.trace_error.as_deref().expect("a reason");
    assert!(why.contains("not found in Jaeger within report.trace_wait"), "{why}");
    assert_eq!(missing.logs_error, None, "VictoriaLogs answered (no lines)");
    assert!(missing.logs.is_empty());

    // The same data in both reports.
    let json: serde_json::Value = serde_json::to_value(&summary).unwrap();
    let t = &json["slowest"][0]["trace"];
    assert_eq!(t["spans"][2]["operation"], "SELECT stock");
    assert_eq!(t["spans"][2]["start_offset_us"], 10_000);
    assert_eq!(t["spans"][2]["duration_us"], 18_000);
    assert_eq!(t["spans"][2]["error"], true);
    assert_eq!(t["spans"][2]["critical"], true);
    assert_eq!(t["logs"][0]["message"], message.as_str());
    assert!(json["slowest"][1]["trace"]["trace_error"].as_str().unwrap().contains("not found"));

    let html = glasshouse_loadtest::html::render(&summary);
    assert!(html.contains(&format!(r#"data-trace-id="{trace_id}""#)));
    assert!(html.contains(r#"<div class="wf-row span-row critical error" data-span-id="c000000000000003""#), "critical error span drawn");
    assert!(html.contains(r#"<div class="wf-row span-row" data-span-id="b000000000000002""#), "off the critical path");
    assert!(html.contains(&message), "log line in the page");
    assert!(html.contains("<details class=logs><summary>1 log line(s)</summary>"), "logs collapsed");
    assert!(html.contains("trace not available: not found in Jaeger within report.trace_wait"));
    assert!(!html.contains("<script"), "no script");
    let page = write(&dir, "report.html", &html);
    eprintln!("report with a waterfall: {}", page.display());
}

/// A stand-in service that does what the real ones do with the runner's
/// `traceparent`: continues the trace (a server span and a child span,
/// exported to Jaeger over OTLP/HTTP) and logs a line with the trace id to
/// VictoriaLogs. Answers `/hello` with 200 after ~5 ms of "work".
async fn traced_service(service: String, otlp_http: String, victorialogs: String) -> String {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (service, otlp_http, victorialogs) = (service.clone(), otlp_http.clone(), victorialogs.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (service, otlp_http, victorialogs) = (service.clone(), otlp_http.clone(), victorialogs.clone());
                    async move {
                        let start = SystemTime::now();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let end = SystemTime::now();
                        let tp = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                        let parts: Vec<&str> = tp.split('-').collect();
                        if let [_, trace_id, parent, _] = parts[..] {
                            let server_id = format!("{:016x}", rand_u64());
                            let child_id = format!("{:016x}", rand_u64());
                            let mid = start + Duration::from_millis(1);
                            let otlp = serde_json::json!({"resourceSpans": [{
                                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                                "scopeSpans": [{"scope": {"name": "traced-service"}, "spans": [
                                    {"traceId": trace_id, "spanId": server_id, "parentSpanId": parent, "name": "GET /hello", "kind": 2,
                                     "startTimeUnixNano": nanos(start), "endTimeUnixNano": nanos(end)},
                                    {"traceId": trace_id, "spanId": child_id, "parentSpanId": server_id, "name": "compute greeting", "kind": 1,
                                     "startTimeUnixNano": nanos(mid), "endTimeUnixNano": nanos(end - Duration::from_micros(200))}
                                ]}]
                            }]});
                            let (status, body) = post(&otlp_http, "/v1/traces", "application/json", otlp.to_string()).await;
                            assert_eq!(status, 200, "{body}");
                            let log = serde_json::json!({"_msg": format!("greeted from {service}"), "_time": chrono::Utc::now().to_rfc3339(),
                                "service": service, "level": "info", "trace_id": trace_id});
                            let path = "/insert/jsonline?_stream_fields=service,level&_msg_field=_msg&_time_field=_time";
                            let (status, body) = post(&victorialogs, path, "application/stream+json", log.to_string() + "\n").await;
                            assert!((200..300).contains(&status), "{body}");
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(b"hello"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    format!("http://{addr}")
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()) | 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_the_waterfalls_of_its_slowest_requests_into_both_reports() {
    let jaeger_query = url("GH_JAEGER_QUERY_PORT", 16686);
    let otlp_http = url("GH_JAEGER_OTLP_HTTP_PORT", 4318);
    let victorialogs = url("GH_VICTORIALOGS_PORT", 9428);
    require("jaeger", &jaeger_query).await;
    require("jaeger", &otlp_http).await;
    require("victorialogs", &victorialogs).await;

    let service = format!("loadtest-run-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let app = traced_service(service.clone(), otlp_http, victorialogs.clone()).await;
    let dir = temp_dir("trace-run");
    let yaml = common::hello_config(&app, "  model: constant_rate\n  rate: 10\n  duration: 1s", &[])
        + &format!("report:\n  slowest: 3\n  jaeger_query_url: {jaeger_query}\n  victorialogs_url: {victorialogs}\n  trace_wait: 10s\n");
    let cfg = Config::load(&write(&dir, "s.yaml", &yaml), &Overrides::default()).unwrap();
    let outcome = run(&cfg, RunOptions::new(dir.join("out"))).await.expect("run completes");
    assert_eq!(outcome.exit_code(), 0);

    // What the runner wrote to disk.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&outcome.json_path).unwrap()).unwrap();
    let html = std::fs::read_to_string(&outcome.html_path).unwrap();
    let slowest = json["slowest"].as_array().unwrap();
    assert_eq!(slowest.len(), 3);
    for s in slowest {
        let t = &s["trace"];
        assert_eq!(t["trace_error"], serde_json::Value::Null, "{s}");
        let spans = t["spans"].as_array().unwrap();
        let ops: Vec<(&str, &str, bool)> = spans
            .iter()
            .map(|x| (x["service"].as_str().unwrap(), x["operation"].as_str().unwrap(), x["critical"].as_bool().unwrap()))
            .collect();
        assert_eq!(ops, [(service.as_str(), "GET /hello", true), (service.as_str(), "compute greeting", true)], "{s}");
        assert_eq!(spans[1]["parent_span_id"], spans[0]["span_id"]);
        assert!(spans[1]["start_offset_us"].as_u64().unwrap() >= 1000, "{s}");
        assert!(spans.iter().all(|x| x["error"] == false));
        assert_eq!(t["logs_error"], serde_json::Value::Null, "{s}");
        assert_eq!(t["logs"][0]["message"], format!("greeted from {service}"), "{s}");
        let id = s["trace_id"].as_str().unwrap();
        assert!(html.contains(&format!(r#"data-trace-id="{id}""#)), "waterfall of {id} in report.html");
    }
    assert_eq!(html.matches(r#"<div class="wf-row span-row critical""#).count(), 6, "3 traces x 2 spans on the critical path");
    assert_eq!(html.matches(&format!("greeted from {service}")).count(), 3, "one log line per trace");
    assert!(!html.contains("not available"));
    eprintln!("report: {}", outcome.html_path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_is_a_reason_per_request_not_a_failure() {
    let victorialogs = url("GH_VICTORIALOGS_PORT", 9428);
    require("victorialogs", &victorialogs).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let backends = Backends {
        jaeger: Some(parse_target(&format!("http://127.0.0.1:{closed}")).unwrap()),
        victorialogs: Some(parse_target(&victorialogs).unwrap()),
        wait: Duration::from_secs(10),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let started = std::time::Instant::now();
    let got = glasshouse_loadtest::trace::fetch(&backends, std::slice::from_ref(&id)).await;
    // Jaeger refuses at once; VictoriaLogs is asked for a short grace, not the whole wait.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let d = &got[&id];
    let why = d.trace_error.as_deref().unwrap();
    assert!(why.starts_with("Jaeger unreachable") && why.contains(&closed.to_string()), "{why}");
    assert!(d.spans.is_empty());
    assert_eq!((d.logs_error.as_deref(), d.logs.len()), (None, 0), "VictoriaLogs answered: no lines");
}
