//! The workload models against a real loopback server: arrival rate,
//! coordinated-omission correction, dropped iterations, trace context.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Behaviour, TestServer, hello_config, temp_dir};
use glasshouse_loadtest::config::{Config, Overrides};
use glasshouse_loadtest::report::Summary;
use glasshouse_loadtest::runner::{RunOptions, run};

async fn run_yaml(yaml: &str, tag: &str) -> Summary {
    let dir = temp_dir(tag);
    let cfg = Config::parse(yaml, Path::new("."), &Overrides::default()).expect("valid config");
    let outcome = run(&cfg, RunOptions::new(dir.join("out"))).await.expect("run completes");
    let summary = outcome.summary;
    let _ = std::fs::remove_dir_all(dir);
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_arrival_rate_holds() {
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(5), ..Default::default() }).await;
    let yaml = hello_config(&server.url(), "  model: constant_rate\n  rate: 100\n  duration: 2s\n  max_in_flight: 200", &[]);
    let s = run_yaml(&yaml, "rate").await;

    // 100/s for 2 s is 200 scheduled starts, none dropped, each one request.
    assert_eq!(s.totals.iterations_started, 200, "{:?}", s.totals);
    assert_eq!(s.totals.dropped_iterations, 0);
    assert_eq!(s.totals.requests, 200);
    assert_eq!(server.requests(), 200, "the server saw every scheduled request");
    // Starts per one-second bucket (by intended time) are the rate, with room
    // for scheduling noise on a shared machine.
    let starts: Vec<u64> = s.timeseries.points.iter().map(|p| p.iterations_started).collect();
    assert!(starts.len() >= 2, "{starts:?}");
    for (i, n) in starts.iter().take(2).enumerate() {
        assert!((80..=120).contains(n), "bucket {i}: {n} starts (want ~100): {starts:?}");
    }
    assert!(s.totals.throughput_rps > 60.0 && s.totals.throughput_rps < 110.0, "{}", s.totals.throughput_rps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_rate_follows_the_stages() {
    let server = TestServer::start(Behaviour::default()).await;
    // 0 -> 100/s over 1 s (50 arrivals), then 100/s for 1 s (100 arrivals).
    let load = "  model: ramping_rate\n  start_rate: 0\n  stages:\n    - {duration: 1s, target: 100}\n    - {duration: 1s, target: 100}\n  max_in_flight: 200";
    let s = run_yaml(&hello_config(&server.url(), load, &[]), "ramp").await;
    assert_eq!(s.totals.iterations_started, 150, "{:?}", s.totals);
    let starts: Vec<u64> = s.timeseries.points.iter().map(|p| p.iterations_started).collect();
    assert!((40..=60).contains(&starts[0]), "ramp second: {starts:?}");
    assert!((85..=115).contains(&starts[1]), "steady second: {starts:?}");
}

/// The server pauses for 1 s after its 50th request. In the open model every
/// iteration scheduled during the pause is measured from its intended start,
/// so about 100 samples carry the pause and p99 is near 1 s. A single closed
/// loop sends nothing while it waits, records the pause once, and its p99
/// stays at the normal latency: the coordinated-omission blind spot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_shows_in_open_p99_not_in_closed() {
    let stall = Behaviour { latency: Duration::from_millis(1), stall_after: Some(50), stall: Duration::from_secs(1), ..Default::default() };

    let open_server = TestServer::start(stall.clone()).await;
    let open_yaml = hello_config(&open_server.url(), "  model: constant_rate\n  rate: 100\n  duration: 2500ms\n  max_in_flight: 1000", &[]);
    let open = run_yaml(&open_yaml, "stall-open").await;

    let closed_server = TestServer::start(stall).await;
    let closed_yaml = hello_config(&closed_server.url(), "  model: closed\n  vus: 1\n  duration: 2500ms", &[]);
    let closed = run_yaml(&closed_yaml, "stall-closed").await;

    let o = open.steps[0].latency_ms.clone().expect("open samples");
    let c = closed.steps[0].latency_ms.clone().expect("closed samples");
    eprintln!(
        "open p50/p90/p99/max {} {} {} {}; closed {} {} {} {} ({} samples)",
        o.p50, o.p90, o.p99, o.max, c.p50, c.p90, c.p99, c.max, c.count
    );
    assert_eq!(open.latency_origin, "intended_start");
    assert_eq!(closed.latency_origin, "actual_start");
    // Both saw the pause...
    assert!(o.max >= 900.0, "open max {o:?}");
    assert!(c.max >= 900.0, "closed max {c:?}");
    // ...but only the open model's percentiles admit it.
    assert!(o.p99 >= 500.0, "open p99 should carry the stall: {o:?}");
    assert!(o.p90 >= 100.0, "about 100 of ~250 open samples are in the stall: {o:?}");
    assert!(c.p99 < 100.0, "closed p99 hides the stall: {c:?}");
    assert!(o.p99 > 5.0 * c.p99, "open {} vs closed {}", o.p99, c.p99);
    assert_eq!(open.totals.dropped_iterations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_that_cannot_be_met_drops_and_warns() {
    // 5 in flight of 200 ms each is at most 25/s; ask for 100/s.
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(200), ..Default::default() }).await;
    let yaml =
        hello_config(&server.url(), "  model: constant_rate\n  rate: 100\n  duration: 1s\n  max_in_flight: 5", &["dropped_iterations < 1"]);
    let s = run_yaml(&yaml, "drop").await;
    assert_eq!(s.totals.iterations_started + s.totals.dropped_iterations, 100, "{:?}", s.totals);
    assert!(s.totals.dropped_iterations >= 50, "{:?}", s.totals);
    assert!(s.totals.iterations_started <= 40, "{:?}", s.totals);
    assert!(s.warnings.iter().any(|w| w.contains("dropped") && w.contains("max_in_flight")), "{:?}", s.warnings);
    assert!(!s.thresholds_passed);
    assert_eq!(s.exit_code, 1);
    assert_eq!(s.thresholds[0].observed, Some(s.totals.dropped_iterations as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_its_own_sampled_traceparent() {
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(2), ..Default::default() }).await;
    let yaml = hello_config(&server.url(), "  model: constant_rate\n  rate: 50\n  duration: 1s", &[]);
    let s = run_yaml(&yaml, "trace").await;
    let seen = server.seen();
    assert_eq!(seen.len(), 50);
    let mut ids = std::collections::HashSet::new();
    for r in &seen {
        let tp = r.traceparent.as_deref().expect("traceparent header");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!((parts[0], parts[3]), ("00", "01"), "version 00, sampled: {tp}");
        assert!(parts[1].len() == 32 && parts[1].chars().all(|c| c.is_ascii_hexdigit()) && parts[1] != "0".repeat(32), "{tp}");
        assert!(parts[2].len() == 16 && parts[2].chars().all(|c| c.is_ascii_hexdigit()), "{tp}");
        ids.insert(parts[1].to_string());
        assert_eq!(r.host.as_deref(), Some(server.addr.to_string().as_str()));
    }
    assert_eq!(ids.len(), 50, "trace ids are unique per request");
    // The report's slowest requests are real requests, linked to Jaeger.
    assert!(!s.slowest.is_empty());
    for slow in &s.slowest {
        assert!(ids.contains(&slow.trace_id), "{} not sent", slow.trace_id);
        assert_eq!(slow.trace_url, format!("http://127.0.0.1:9411/zipkin/traces/{}", slow.trace_id));
    }
    let lat: Vec<f64> = s.slowest.iter().map(|r| r.latency_ms).collect();
    assert!(lat.windows(2).all(|w| w[0] >= w[1]), "slowest first: {lat:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified_by_status_timeout_and_connect() {
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(1), ..Default::default() }).await;
    // A port that was free a moment ago: nothing listens there.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let slow = TestServer::start(Behaviour { latency: Duration::from_millis(400), ..Default::default() }).await;
    // A listener that accepts the preflight's connection and then goes away:
    // every request of the run gets "connection refused".
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://{}", gone.local_addr().unwrap());
    let (accepted_tx, accepted_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let conn = gone.accept();
        drop(gone);
        let _ = accepted_tx.send(conn.is_ok());
    });
    let yaml = format!(
        "scenario: errors\ntargets:\n  app: {}\n  slow: {}\n  gone: {}\nhttp:\n  timeout: 100ms\nload:\n  model: constant_rate\n  rate: 60\n  duration: 500ms\nflows:\n  - name: f\n    steps:\n      - {{step: http, name: fail, target: app, path: /fail}}\n      - {{step: http, name: missing, target: app, path: /nope, expect_status: [200]}}\n  - name: g\n    steps:\n      - {{step: http, name: slow, target: slow, path: /hello}}\n  - name: h\n    steps:\n      - {{step: http, name: gone, target: gone, path: /hello}}\nmetrics: {{enabled: false}}\nthresholds:\n  - \"error_rate < 1%\"\n",
        server.url(),
        slow.url(),
        gone_url
    );
    let s = run_yaml(&yaml, "errors").await;
    let step = |n: &str| s.steps.iter().find(|x| x.name == n).unwrap().clone();
    let fail = step("fail");
    assert!(fail.requests > 0);
    assert_eq!(fail.outcomes.get("http_5xx"), Some(&fail.requests), "{:?}", fail.outcomes);
    assert_eq!(fail.status_codes.get("503"), Some(&fail.requests));
    assert!(fail.error_examples["http_5xx"].contains("https://glasshouse.dev/problems/unavailable"), "{:?}", fail.error_examples);
    // The failed first step ends the iteration: `missing` never ran.
    assert_eq!(step("missing").requests, 0);
    let slow_step = step("slow");
    assert!(slow_step.requests > 0);
    assert_eq!(slow_step.outcomes.get("timeout"), Some(&slow_step.requests), "{:?}", slow_step.outcomes);
    let gone_step = step("gone");
    assert!(gone_step.requests > 0);
    assert_eq!(gone_step.outcomes.get("connect"), Some(&gone_step.requests), "{:?}", gone_step.outcomes);
    assert!(accepted_rx.recv().unwrap(), "the preflight connected once");
    assert_eq!(s.totals.error_rate, 1.0);
    assert_eq!(s.exit_code, 1);
    assert!(s.totals.iterations_failed > 0);

    // Connect errors: the preflight refuses a dead target, so none is sent at all.
    let dead = hello_config(&format!("http://127.0.0.1:{closed_port}"), "  model: constant_rate\n  rate: 10\n  duration: 1s", &[]);
    let cfg = Config::parse(&dead, Path::new("."), &Overrides::default()).unwrap();
    let err = run(&cfg, RunOptions::new(temp_dir("dead"))).await.unwrap_err();
    assert!(err.to_string().contains("unreachable") && err.to_string().contains(&closed_port.to_string()), "{err}");
}
