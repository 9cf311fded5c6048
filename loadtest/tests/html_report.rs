//! The HTML report renders in a real browser: headless Chromium (Debian's
//! `chromium` package) loads it from disk with networking off, takes a
//! screenshot, and its DOM has the per-step rows, charts and threshold rows.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{Behaviour, TestServer, temp_dir, write};
use glasshouse_loadtest::config::{Config, Overrides};
use glasshouse_loadtest::runner::{RunOptions, run};

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

async fn headless(chromium: &Path, profile: &Path, extra: &[String], url: &str) -> Output {
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
        "--window-size=1280,2000",
    ])
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
report: {{interval: 250ms}}
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

    let png = dir.join("report.png");
    let shot = headless(&browser, &temp_dir("chromium-profile"), &[format!("--screenshot={}", png.display())], &file_url).await;
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!("no screenshot ({e}); chromium exit {:?}, stderr:\n{}", shot.status.code(), String::from_utf8_lossy(&shot.stderr))
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000));
    // A blank page of this size compresses to a few KB; text, tables and charts do not.
    assert!(bytes.len() > 40_000, "screenshot looks empty: {} bytes", bytes.len());

    let dump = headless(&browser, &temp_dir("chromium-profile"), &["--dump-dom".to_string()], &file_url).await;
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
    assert!(dom.contains(&format!(r#"href="http://127.0.0.1:16686/trace/{}""#, slow.trace_id)));
    eprintln!("screenshot: {} ({} bytes)", png.display(), bytes.len());
}
