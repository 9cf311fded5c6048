//! The order-flow scenario against a stand-in speaking the services' HTTP
//! contract; the runner's `/metrics` and Prometheus file-SD registration;
//! latency measured from the intended start.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Behaviour, TestServer, hello_config, temp_dir, write};
use glasshouse_loadtest::client::Client;
use glasshouse_loadtest::config::{Config, Overrides};
use glasshouse_loadtest::runner::{RunOptions, run};
use glasshouse_loadtest::scenario::Plan;
use glasshouse_loadtest::stats::Recorder;
use tokio::time::Instant;

/// A plain HTTP/1.1 GET of /metrics, as Prometheus would do it.
async fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .await
    .expect("scrape task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_flow_runs_end_to_end_and_prometheus_sees_it() {
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(2), pending_polls: 2, ..Default::default() }).await;
    let dir = temp_dir("flow");
    let sd = dir.join("sd");
    std::fs::create_dir_all(&sd).unwrap();
    write(&dir, "tokens.txt", "# two customers\ntok-a\n\ntok-b\n");
    let url = server.url();
    let yaml = format!(
        r#"scenario: order-flow-test
targets: {{inventory: "{url}", order: "{url}", notification: "{url}"}}
load: {{model: constant_rate, rate: 10, duration: 2s, max_in_flight: 50}}
auth: {{token_file: tokens.txt}}
flows:
  - name: buy
    steps:
      - {{step: list_catalog, limit: 5}}
      - {{step: think, duration: 10ms}}
      - {{step: place_order, lines: {{min: 1, max: 3}}, quantity: {{min: 1, max: 2}}}}
      - {{step: poll_order, interval: 20ms, timeout: 2s}}
      - {{step: read_notifications, min_items: 1}}
thresholds:
  - "http_req_duration{{step:place_order}} p99 < 1s"
  - "error_rate < 1%"
  - "check_failure_rate < 1%"
metrics: {{listen: "127.0.0.1:0", prometheus_targets_dir: "{sd}"}}
"#,
        sd = sd.display()
    );
    let cfg_path = write(&dir, "flow.yaml", &yaml);
    let cfg = Config::load(&cfg_path, &Overrides::default()).expect("valid config");
    let tokens = glasshouse_loadtest::config::load_tokens(cfg.auth.as_ref().unwrap()).unwrap();
    assert_eq!(tokens, vec!["tok-a", "tok-b"]);

    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut opts = RunOptions::new(dir.join("out"));
    opts.tokens = tokens;
    opts.on_metrics = Some(Box::new(move |addr| {
        let _ = tx.send(addr);
    }));
    let cfg2 = cfg.clone();
    let handle = tokio::spawn(async move { run(&cfg2, opts).await });

    // Mid-run: registered for Prometheus, and /metrics shows the load.
    let addr = rx.await.expect("metrics address");
    let registration = sd.join(format!("order-flow-test-{}.json", std::process::id()));
    let sd_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&registration).expect("file-SD target written")).unwrap();
    assert_eq!(sd_json[0]["targets"][0], addr.to_string());
    assert_eq!(sd_json[0]["labels"], serde_json::json!({}), "series carry `scenario`; a target label would clash");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = scrape(addr).await.expect("scrape /metrics");
        if body.contains(r#"loadtest_requests_total{scenario="order-flow-test",step="place_order",outcome="success"} "#)
            && !body.contains(r#"step="place_order",outcome="success"} 0"#)
        {
            break body;
        }
        assert!(Instant::now() < deadline, "no place_order success on /metrics:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("application/openmetrics-text"), "{body}");
    for family in [
        "# TYPE loadtest_requests counter",
        "# TYPE loadtest_request_duration_seconds histogram",
        "# TYPE loadtest_dropped_iterations counter",
        "# TYPE loadtest_target_rate gauge",
        r#"loadtest_target_rate{scenario="order-flow-test"} 10.0"#,
        r#"step="poll_order""#,
        "# {trace_id=\"",
    ] {
        assert!(body.contains(family), "missing {family:?} in\n{body}");
    }

    let outcome = handle.await.unwrap().expect("run completes");
    assert!(!registration.exists(), "registration removed at exit");
    assert_eq!(outcome.registered.as_deref(), Some(registration.as_path()));
    let s = &outcome.summary;
    assert_eq!(s.exit_code, 0, "{:?}", s.thresholds);
    assert_eq!(s.totals.iterations_started, 20);
    assert_eq!(s.totals.iterations_completed, 20);
    assert_eq!(s.totals.iterations_failed, 0);
    assert_eq!(s.totals.errors, 0);
    let step = |n: &str| s.steps.iter().find(|x| x.name == n).unwrap();
    assert_eq!(step("list_catalog").requests, 20);
    assert_eq!(step("place_order").requests, 20);
    assert_eq!(step("place_order").status_codes.get("202"), Some(&20));
    assert_eq!(step("poll_order").requests, 60, "two PENDING answers then CONFIRMED, per order");
    assert_eq!(step("read_notifications").requests, 20);
    assert_eq!(s.counters.get("order_final_status.CONFIRMED"), Some(&20));
    assert!(s.checks.iter().all(|c| c.fails == 0 && c.passes > 0), "{:?}", s.checks);
    assert!(s.checks.iter().any(|c| c.name == "order has an id" && c.passes == 20));
    assert!(s.checks.iter().any(|c| c.name == "enough notifications" && c.passes == 20));

    // What the services received follows their contract.
    let seen = server.seen();
    let posts: Vec<_> = seen.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 20);
    let keys: std::collections::HashSet<_> = posts.iter().map(|r| r.idempotency_key.clone().expect("Idempotency-Key")).collect();
    assert_eq!(keys.len(), 20, "a fresh idempotency key per order");
    assert!(keys.iter().all(|k| uuid::Uuid::parse_str(k).is_ok()));
    let customers: std::collections::HashSet<_> = posts.iter().map(|r| r.authorization.clone().unwrap()).collect();
    assert!(customers.iter().all(|a| a == "Bearer tok-a" || a == "Bearer tok-b"), "{customers:?}");
    assert!(
        seen.iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/items"))
            .all(|r| r.path == "/items?limit=5" && r.authorization.is_none())
    );
    assert!(seen.iter().filter(|r| r.path.starts_with("/notifications?order_id=")).all(|r| r.authorization.is_some()));
    let _ = std::fs::remove_dir_all(dir);
}

/// An iteration that should have started 300 ms ago is charged those 300 ms
/// in the open model (its first request's latency and the scheduling lag),
/// and not in the closed model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_latency_counts_from_the_intended_start() {
    let server = TestServer::start(Behaviour::default()).await;
    let yaml = hello_config(&server.url(), "  model: constant_rate\n  rate: 1\n  duration: 1s", &[]);
    let cfg = Config::parse(&yaml, Path::new("."), &Overrides::default()).unwrap();
    let targets = vec![("app".to_string(), cfg.targets["app"].clone())];
    let client = Client::resolve(&targets, &[], Duration::from_secs(5), Duration::from_secs(1)).await.unwrap();
    let recorder = Arc::new(Recorder::new(Instant::now(), Duration::from_secs(1), cfg.step_names(), 5, None));
    let plan = Plan::new(&cfg, &["app".to_string()], &[], client, recorder.clone());

    let late = Duration::from_millis(300);
    plan.iteration(Instant::now() - late, true).await;
    let r = recorder.snapshot();
    assert_eq!(r.steps[0].latency.len(), 1);
    assert!(r.steps[0].latency.min() >= 300_000, "open: {} us", r.steps[0].latency.min());
    assert!(r.lag.min() >= 300_000, "lag {} us", r.lag.min());
    assert!(r.iterations.min() >= 300_000);

    plan.iteration(Instant::now() - late, false).await;
    let r = recorder.snapshot();
    assert_eq!(r.steps[0].latency.len(), 2);
    assert!(r.steps[0].latency.min() < 300_000, "closed: measured from the send, {} us", r.steps[0].latency.min());
    assert_eq!(r.lag.len(), 1, "no lag in the closed model");
}
