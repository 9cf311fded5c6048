//! Every page `make demo` points at opens a real page: the trace UI (Zipkin's Lens)
//! showing a trace's spans, a Prometheus graph with its query filled in, Prometheus'
//! alerts page, Alertmanager's UI, and VictoriaLogs' UI running the LogsQL query of a
//! trace's log lines.
//!
//! The test makes what the pages show: one trace of two spans sent with
//! opentelemetry-otlp into Jaeger (which forwards it to the trace UI, as it does the
//! services' spans) and one log line of that trace pushed into VictoriaLogs. It takes
//! the links from `deploy/local/demo.sh links <trace_id>` (the ones the demo prints),
//! loads each in headless Chromium (Debian's `chromium`, deploy/local/test-tools.sh),
//! checks the page's DOM after its scripts ran (no error or placeholder page; the
//! content each page must show), and writes a screenshot of each to
//! `target/screenshots/<name>.png` (paths printed).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, ALERTMANAGER, JAEGER_OTLP_GRPC, JAEGER_QUERY, PROMETHEUS, VICTORIALOGS, ZIPKIN};
use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

const INSTALL: &str = "headless Chromium is needed for this test: deploy/local/test-tools.sh (apt-get install chromium)";
/// The two spans of the test's trace; the trace page must show both.
const ROOT_SPAN: &str = "demo-links checkout";
const CHILD_SPAN: &str = "demo-links reserve stock";
/// What error and placeholder pages say (Jaeger's UI-less build, Debian's
/// Alertmanager without its web app, a 404, Chromium's own error page).
const PLACEHOLDERS: &[&str] =
    &["This is not the Jaeger UI", "does not include a web", "404 page not found", "ERR_CONNECTION_REFUSED", "This site can’t be reached"];

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

/// One headless Chromium run on `url` with the page's scripts given up to 15 s of
/// (virtual) time to fetch and render before the DOM is dumped or the screenshot taken.
async fn headless(browser: &Path, profile: &Path, extra: &str, url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--virtual-time-budget=15000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(extra)
    .arg(url)
    .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finishes within 90 s")
        .unwrap_or_else(|e| panic!("cannot start {}: {e}. {INSTALL}", browser.display()))
}

/// Sends a root span and its child into Jaeger over OTLP; returns the trace id.
async fn send_trace(service: &str) -> String {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(JAEGER_OTLP_GRPC.http()).build().unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service.to_string()).build())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("glasshouse-demo-links");
    let root = tracer.start(ROOT_SPAN);
    let trace_id = root.span_context().trace_id().to_string();
    let cx = Context::current_with_span(root);
    let mut child = tracer.start_with_context(CHILD_SPAN, &cx);
    child.set_attribute(KeyValue::new("glasshouse.test", "demo_links"));
    tokio::time::sleep(Duration::from_millis(3)).await; // a child with a visible width in the waterfall
    child.end();
    cx.span().end();
    // Flushing blocks on the batch processor's thread; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
    trace_id
}

/// Pushes one log line of the trace into VictoriaLogs (its JSON-lines API) and
/// waits until LogsQL finds it.
async fn send_log(http: &reqwest::Client, service: &str, trace_id: &str, message: &str) {
    let base = VICTORIALOGS.http();
    let line = serde_json::json!({"message": message, "service": service, "level": "info", "trace_id": trace_id});
    http.post(format!("{base}/insert/jsonline?_stream_fields=service&_msg_field=message"))
        .body(format!("{line}\n"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let query = format!("trace_id:=\"{trace_id}\"");
    poll::until("the log line in VictoriaLogs", Duration::from_secs(30), Duration::from_millis(250), || {
        let (http, base, query) = (http.clone(), base.clone(), query.clone());
        async move {
            http.get(format!("{base}/internal/force_flush")).send().await?;
            let body =
                http.post(format!("{base}/select/logsql/query")).form(&[("query", query)]).send().await?.error_for_status()?.text().await?;
            Ok(body.contains(trace_id).then_some(()))
        }
    })
    .await
    .unwrap();
}

/// Polls `url` until it answers 200 (a trace that has arrived).
async fn wait_found(http: &reqwest::Client, what: &str, url: &str, within: Duration) -> anyhow::Result<serde_json::Value> {
    poll::until(what, within, Duration::from_millis(250), || {
        let (http, url) = (http.clone(), url.to_string());
        async move {
            let resp = http.get(&url).send().await?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            Ok(Some(resp.error_for_status()?.json::<serde_json::Value>().await?))
        }
    })
    .await
}

/// `deploy/local/demo.sh links <trace_id>`: name → URL, as the demo prints them.
fn demo_links(trace_id: &str) -> BTreeMap<String, String> {
    let out =
        std::process::Command::new("bash").arg(stack::repo_root().join("deploy/local/demo.sh")).args(["links", trace_id]).output().unwrap();
    assert!(out.status.success(), "demo.sh links failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, url) = l.split_once(' ').unwrap_or_else(|| panic!("not `name url`: {l}"));
            (name.to_string(), url.to_string())
        })
        .collect()
}

/// The page's text, tags removed (what a reader sees, roughly).
fn text_of(dom: &str) -> String {
    let mut out = String::with_capacity(dom.len() / 2);
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_the_demo_prints_is_a_real_page() {
    for c in [JAEGER_OTLP_GRPC, JAEGER_QUERY, ZIPKIN, PROMETHEUS, ALERTMANAGER, VICTORIALOGS] {
        stack::require(c).await.unwrap();
    }
    let browser = chromium();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let service = stack::unique_name("demo-links");
    let trace_id = send_trace(&service).await;
    let message = format!("demo-links order placed {}", &trace_id[..8]);
    send_log(&http, &service, &trace_id, &message).await;

    // The trace reaches Jaeger (the backend the tests and the report query) and,
    // through Jaeger's second exporter, the trace UI.
    let jaeger = format!("{}/api/traces/{trace_id}", JAEGER_QUERY.http());
    wait_found(&http, "the trace in Jaeger", &jaeger, Duration::from_secs(30)).await.unwrap();
    let zipkin = format!("{}/api/v2/trace/{trace_id}", ZIPKIN.http());
    let spans = wait_found(&http, "the trace in the trace UI", &zipkin, Duration::from_secs(30)).await.unwrap_or_else(|e| {
        panic!(
            "{e:#}\nThe trace is in Jaeger but not in Zipkin: Jaeger forwards spans to the trace UI only when it runs \
             deploy/local/config/jaeger.yaml with its `otlphttp/trace_ui` exporter (restart an older Jaeger: \
             deploy/local/stack down jaeger && deploy/local/stack up jaeger); see deploy/local/stack logs zipkin"
        )
    });
    let names: Vec<&str> = spans.as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "both spans in the trace UI: {spans}");

    let links = demo_links(&trace_id);
    let names_printed: Vec<&str> = links.keys().map(String::as_str).collect();
    assert_eq!(names_printed, ["alertmanager", "alerts", "graph", "logs", "trace"], "the pages the demo prints");
    // What each page must show once its scripts ran.
    let expect: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        ("trace", vec![ROOT_SPAN.to_string(), CHILD_SPAN.to_string(), service.clone(), trace_id.clone()]),
        ("graph", vec!["sum by (status) (orders_total)".to_string(), "Execute".to_string()]),
        ("alerts", vec!["Inactive (".to_string(), "Firing (".to_string(), "alert: ".to_string()]),
        ("alertmanager", vec!["Silences".to_string(), "New Silence".to_string(), "Receiver: All".to_string()]),
        ("logs", vec!["UI for VictoriaLogs".to_string(), format!("trace_id:=\"{trace_id}\""), message.clone()]),
    ]);

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = std::env::temp_dir().join(stack::unique_name("demo-links-chromium"));
    for (name, url) in &links {
        let dump = headless(&browser, &profile, "--dump-dom", url).await;
        assert!(dump.status.success(), "{name}: chromium --dump-dom {url} failed: {}", String::from_utf8_lossy(&dump.stderr));
        let dom =
            String::from_utf8_lossy(&dump.stdout).replace("&quot;", "\"").replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&");
        let text = text_of(&dom);
        for p in PLACEHOLDERS {
            assert!(
                !dom.contains(p),
                "{name}: {url} is an error or placeholder page ({p:?}):\n{}",
                text.chars().take(600).collect::<String>()
            );
        }
        for want in &expect[name.as_str()] {
            assert!(
                dom.contains(want.as_str()),
                "{name}: {url} does not show {want:?}; its text:\n{}",
                text.chars().take(2000).collect::<String>()
            );
        }

        let png = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        let shot = headless(&browser, &profile, &format!("--screenshot={}", png.display()), url).await;
        let bytes = std::fs::read(&png).unwrap_or_else(|e| {
            panic!(
                "{name}: no screenshot ({e}); chromium exit {:?}, stderr:\n{}",
                shot.status.code(),
                String::from_utf8_lossy(&shot.stderr)
            )
        });
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name}: a PNG");
        // A blank 1280x900 page compresses to a few KB; a rendered UI does not.
        assert!(bytes.len() > 20_000, "{name}: screenshot looks empty: {} bytes", bytes.len());
        eprintln!("screenshot {name}: {} ({} bytes) of {url}", png.display(), bytes.len());
    }
    let _ = std::fs::remove_dir_all(&profile);
}
