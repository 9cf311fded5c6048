//! The HTML report renders in a real browser: headless Chromium (Debian's
//! `chromium` package) loads it from disk with networking off, takes a
//! screenshot, and its DOM has the per-step rows, charts and threshold rows.
//! A second page has a slow request explained: a waterfall (from a Jaeger
//! document written by hand) and its log lines; it renders without console
//! errors, and its screenshot is kept under target/tmp/ (path printed).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{Behaviour, TestServer, temp_dir, write};
use glasshouse_loadtest::config::{Config, Overrides};
use glasshouse_loadtest::runner::{RunOptions, run};
use glasshouse_loadtest::trace::{LogLine, TraceDetails, waterfall};

/// Browser window of the first screenshot (the top of the page).
const WINDOW: &str = "1280,2000";
/// Tall enough for the whole page, down to the slow requests' waterfalls.
const TALL: &str = "1280,3200";
const INSTALL: &str = "headless Chromium is needed for this test: apt-get install -y --no-install-recommends chromium";

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{INSTALL}");
}

async fn headless(chromium: &Path, profile: &Path, size: &str, extra: &[String], url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--window-size={size}"))
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finishes within 90 s")
        .unwrap_or_else(|e| panic!("cannot start {}: {e}. {INSTALL}", chromium.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_renders_in_headless_chromium() {
    let browser = chromium();
    // A run with something to show: a stall in the middle and a failing rule.
    let server = TestServer::start(Behaviour {
        latency: Duration::from_millis(3),
        pending_polls: 1,
        stall_after: Some(60),
        stall: Duration::from_millis(400),
    })
    .await;
    let dir = temp_dir("html");
    let url = server.url();
    // Jaeger "configured" on a port nothing listens on: every slow request says why it has no trace.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let yaml = format!(
        r#"scenario: html-report
description: "Report rendering test <with markup to escape>"
targets: {{inventory: "{url}", order: "{url}", notification: "{url}"}}
load: {{model: ramping_rate, start_rate: 10, stages: [{{duration: 1s, target: 30}}, {{duration: 1s, target: 30}}], max_in_flight: 100}}
auth: {{token: test-token}}
flows:
  - name: buy
    steps:
      - {{step: list_catalog}}
      - {{step: place_order}}
      - {{step: poll_order, interval: 20ms, timeout: 2s}}
      - {{step: read_notifications}}
thresholds:
  - "http_req_duration{{step:list_catalog}} p99 < 100ms"
  - "error_rate < 1%"
report: {{interval: 250ms, slowest: 3, jaeger_query_url: "http://127.0.0.1:{closed}", trace_wait: 2s}}
metrics: {{enabled: false}}
"#
    );
    let cfg = Config::load(&write(&dir, "s.yaml", &yaml), &Overrides::default()).unwrap();
    let mut opts = RunOptions::new(dir.join("out"));
    opts.tokens = vec!["test-token".into()];
    let outcome = run(&cfg, opts).await.expect("run completes");
    let html_path = std::fs::canonicalize(&outcome.html_path).unwrap();
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(!html.contains("<script"), "no script in the report");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"//"), "nothing loaded from elsewhere");
    let file_url = format!("file://{}", html_path.display());

    // Screenshots stay under target/ for a look after the run (paths printed).
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("report.png");
    let _ = std::fs::remove_file(&png);
    let shot = headless(&browser, &temp_dir("chromium-profile"), WINDOW, &[format!("--screenshot={}", png.display())], &file_url).await;
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!("no screenshot ({e}); chromium exit {:?}, stderr:\n{}", shot.status.code(), String::from_utf8_lossy(&shot.stderr))
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000));
    // A blank page of this size compresses to a few KB; text, tables and charts do not.
    assert!(bytes.len() > 40_000, "screenshot looks empty: {} bytes", bytes.len());

    let dump = headless(&browser, &temp_dir("chromium-profile"), WINDOW, &["--dump-dom".to_string()], &file_url).await;
    let dom = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.status.success(), "dump-dom failed: {}", String::from_utf8_lossy(&dump.stderr));
    for step in ["list_catalog", "place_order", "poll_order", "read_notifications"] {
        assert!(dom.contains(&format!(r#"<tr class="step-row" data-step="{step}">"#)), "no table row for {step} in the DOM");
    }
    for id in ["chart-latency", "chart-throughput", "chart-steps", "thresholds", "slowest"] {
        assert!(dom.contains(&format!(r#"id="{id}""#)), "no #{id} in the DOM");
    }
    assert!(dom.contains("<path d=\"M"), "charts have lines");
    assert!(dom.contains("&lt;with markup to escape&gt;"), "description escaped");
    // The failing rule is shown as failing, and the slowest requests link to Jaeger.
    assert!(!outcome.summary.thresholds[0].passed, "the 400 ms stall breaks list_catalog p99 < 100ms");
    assert!(dom.contains(r#"<tr class="threshold-row fail">"#));
    assert!(dom.contains(r#"<tr class="threshold-row pass">"#));
    let slow = &outcome.summary.slowest[0];
    assert!(slow.latency_ms >= 300.0, "{slow:?}");
    assert!(dom.contains(&format!(r#"href="http://127.0.0.1:9411/zipkin/traces/{}""#, slow.trace_id)));
    let why = slow.trace.as_ref().and_then(|t| t.trace_error.clone()).expect("a reason for the missing trace");
    assert!(why.contains("Jaeger unreachable"), "{why}");
    assert!(dom.contains("trace not available: Jaeger unreachable"), "the page says why");
    assert!(dom.contains("logs not available: no report.victorialogs_url configured"));
    assert_eq!(outcome.summary.exit_code, 1, "only the breached threshold decides the exit code");
    eprintln!("screenshot: {} ({} bytes)", png.display(), bytes.len());

    // The same report with the slowest request explained: waterfall and logs.
    let mut summary = outcome.summary.clone();
    let w = waterfall(JAEGER_TRACE.as_bytes()).unwrap();
    summary.slowest[0].trace = Some(TraceDetails {
        trace_error: None,
        duration_us: w.duration_us,
        spans: w.spans,
        spans_omitted: w.spans_omitted,
        logs_error: None,
        logs: vec![
            LogLine {
                time: "2026-12-01T03:00:00.001Z".into(),
                service: "order".into(),
                level: "info".into(),
                message: "order accepted".into(),
            },
            LogLine {
                time: "2026-12-01T03:00:00.009Z".into(),
                service: "inventory".into(),
                level: "error".into(),
                message: "stock check failed <db timeout>".into(),
            },
        ],
    });
    let html = glasshouse_loadtest::html::render(&summary);
    assert!(!html.contains("<script") && !html.contains("src=\"http"), "still self-contained");
    let page = shots.join("report-waterfall.html");
    std::fs::write(&page, &html).unwrap();
    let page_url = format!("file://{}", page.display());
    let png = shots.join("report-waterfall.png");
    let _ = std::fs::remove_file(&png);
    let logging = ["--enable-logging=stderr".to_string(), "--v=0".to_string()];
    let shot = headless(
        &browser,
        &temp_dir("chromium-profile"),
        TALL,
        &[&logging[..], &[format!("--screenshot={}", png.display())]].concat(),
        &page_url,
    )
    .await;
    let stderr = String::from_utf8_lossy(&shot.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE(") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot ({e}); stderr:\n{stderr}"));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert!(bytes.len() > 40_000, "screenshot looks empty: {} bytes", bytes.len());
    let dump = headless(&browser, &temp_dir("chromium-profile"), TALL, &["--dump-dom".to_string()], &page_url).await;
    let dom = String::from_utf8_lossy(&dump.stdout);
    assert!(dom.contains(r#"id="slow-0""#) && dom.contains(r#"class="waterfall""#), "waterfall in the DOM");
    assert_eq!(dom.matches(r#"class="wf-row span-row"#).count(), 4, "one bar per span");
    assert!(dom.contains(r#"<div class="wf-row span-row critical error" data-span-id="b2""#), "critical error span");
    assert!(dom.contains("<details class=\"logs\"><summary>2 log line(s)</summary>"), "logs collapsed by default");
    assert!(dom.contains("stock check failed &lt;db timeout&gt;"), "log message escaped");
    eprintln!("screenshot with a waterfall: {} ({} bytes)", png.display(), bytes.len());
}

/// Shaped like Jaeger's `GET /api/traces/{id}` (written by hand from its documented format).
const JAEGER_TRACE: &str = r#"{"data": [{"traceID": "4bf92f3577b34da6a3ce929d0e0e4736",
  "spans": [
    {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1", "operationName": "POST /orders", "references": [],
     "startTime": 1700000000000000, "duration": 412000, "tags": [], "processID": "p1"},
    {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b1", "operationName": "INSERT orders",
     "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1"}],
     "startTime": 1700000000004000, "duration": 21000, "tags": [], "processID": "p1"},
    {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b2", "operationName": "POST /reservations",
     "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1"}],
     "startTime": 1700000000030000, "duration": 375000,
     "tags": [{"key": "otel.status_code", "type": "string", "value": "ERROR"}], "processID": "p2"},
    {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "c1", "operationName": "SELECT stock FOR UPDATE",
     "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b2"}],
     "startTime": 1700000000035000, "duration": 360000, "tags": [{"key": "error", "type": "bool", "value": true}], "processID": "p2"}
  ],
  "processes": {"p1": {"serviceName": "order", "tags": []}, "p2": {"serviceName": "inventory", "tags": []}}}],
  "total": 0, "limit": 0, "offset": 0, "errors": null}"#;
