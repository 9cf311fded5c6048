//! The binary's contract: exit codes, messages naming the problem, and
//! nothing sent when the config or the target is bad.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Behaviour, TestServer, hello_config, temp_dir, write};

const BIN: &str = env!("CARGO_BIN_EXE_glasshouse-loadtest");

/// Runs the binary without blocking the runtime that serves the test server.
async fn loadtest(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env("CI", "true").env_remove("GLASSHOUSE_LOADTEST_TOKEN").kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("the runner finishes within 60 s").expect("the runner starts")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary.json written")).expect("valid JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_decide_the_exit_code() {
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(20), ..Default::default() }).await;
    let dir = temp_dir("cli-th");
    let load = "  model: constant_rate\n  rate: 20\n  duration: 1s";

    // Passing: p99 well above 20 ms, no errors.
    let ok = write(&dir, "ok.yaml", &hello_config(&server.url(), load, &["http_req_duration{step:hello} p99 < 2s", "error_rate < 1%"]));
    let out_ok = dir.join("ok");
    let o = loadtest(&["run", "--config", ok.to_str().unwrap(), "--out", out_ok.to_str().unwrap()], &[]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("thresholds: PASS (2 of 2)"), "{stdout}");
    assert!(stdout.contains(&out_ok.join("report.html").display().to_string()), "prints the report path: {stdout}");
    let s = summary(&out_ok);
    assert_eq!(s["thresholds_passed"], true);
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["schema"], "glasshouse-loadtest/summary");

    // Breached: nothing answers in under 1 ms here; the error-rate rule still passes.
    let bad = write(&dir, "bad.yaml", &hello_config(&server.url(), load, &["http_req_duration{step:hello} p99 < 1ms", "error_rate < 1%"]));
    let out_bad = dir.join("bad");
    let o = loadtest(&["run", "--config", bad.to_str().unwrap(), "--out", out_bad.to_str().unwrap()], &[]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("thresholds: FAIL (1 of 2 breached)"), "{stdout}");
    assert!(stdout.contains("breached: http_req_duration{step:hello} p99 < 1ms"), "names the rule: {stdout}");
    let s = summary(&out_bad);
    assert_eq!(s["exit_code"], 1);
    let rules = s["thresholds"].as_array().unwrap();
    assert_eq!(rules[0]["passed"], false);
    assert!(rules[0]["observed"].as_f64().unwrap() >= 20.0, "{}", rules[0]);
    assert_eq!(rules[1]["passed"], true);
    let html = std::fs::read_to_string(out_bad.join("report.html")).unwrap();
    assert!(html.contains(r#"<span class="badge fail" id="verdict">FAIL</span>"#));
    assert!(
        html.contains(r#"<tr class="threshold-row fail"><td><code>http_req_duration{step:hello} p99 &lt; 1ms</code>"#),
        "report says which"
    );
    assert_eq!(server.requests(), 40, "both runs sent their 20 requests");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_exits_2_naming_the_problem_and_sends_nothing() {
    let server = TestServer::start(Behaviour::default()).await;
    let dir = temp_dir("cli-bad");
    let url = server.url();
    let load = "  model: constant_rate\n  rate: 10\n  duration: 1s";
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown step in a threshold", hello_config(&url, load, &["http_req_duration{step:nope} p99 < 1s"]), "names step `nope`"),
        ("threshold without a unit", hello_config(&url, load, &["http_req_duration p99 < 300"]), "thresholds[0]"),
        (
            "host not allowed",
            hello_config("http://10.1.2.3:8080", load, &[]),
            "host `10.1.2.3` is neither loopback nor listed in allow_hosts",
        ),
        ("https", hello_config("https://127.0.0.1:1", load, &[]), "https is not supported"),
        ("bad duration", hello_config(&url, "  model: constant_rate\n  rate: 10\n  duration: 10 parsecs", &[]), "load.duration"),
        ("zero rate", hello_config(&url, "  model: constant_rate\n  rate: 0\n  duration: 1s", &[]), "load.rate: 0 is not a rate"),
        ("unknown model", hello_config(&url, "  model: poisson\n  rate: 1\n  duration: 1s", &[]), "unknown model `poisson`"),
        ("typo in a key", hello_config(&url, "  model: constant_rate\n  rat: 10\n  duration: 1s", &[]), "unknown field `rat`"),
        (
            "token env missing",
            format!(
                "scenario: s\ntargets: {{order: {url}, inventory: {url}}}\nauth: {{token_env: GLASSHOUSE_LOADTEST_TOKEN}}\nload: {{model: constant_rate, rate: 1, duration: 1s}}\nflows:\n  - name: f\n    steps:\n      - step: list_catalog\n      - step: place_order\nmetrics: {{enabled: false}}\n"
            ),
            "environment variable `GLASSHOUSE_LOADTEST_TOKEN` is not set",
        ),
        (
            "auth missing",
            format!(
                "scenario: s\ntargets: {{order: {url}, inventory: {url}}}\nload: {{model: constant_rate, rate: 1, duration: 1s}}\nflows:\n  - name: f\n    steps:\n      - step: list_catalog\n      - step: place_order\nmetrics: {{enabled: false}}\n"
            ),
            "no token source is set",
        ),
        (
            "order step before its data",
            format!(
                "scenario: s\ntargets: {{order: {url}}}\nauth: {{token: t}}\nload: {{model: constant_rate, rate: 1, duration: 1s}}\nflows:\n  - name: f\n    steps:\n      - step: poll_order\nmetrics: {{enabled: false}}\n"
            ),
            "put a place_order step before it",
        ),
    ];
    for (what, yaml, needle) in cases {
        let path = write(&dir, "case.yaml", &yaml);
        let o = loadtest(&["run", "--config", path.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()], &[]).await;
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: stdout {stdout} stderr {stderr}");
        assert!(stderr.contains(needle), "{what}: message should contain {needle:?}, got:\n{stderr}");
    }
    // CLI argument problems are exit 2 too, and name the argument.
    let ok = write(&dir, "ok.yaml", &hello_config(&url, load, &[]));
    let o = loadtest(&["run", "--config", ok.to_str().unwrap(), "--duration", "soon"], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--duration"), "{}", text(&o).1);
    let o = loadtest(&["run", "--config", ok.to_str().unwrap(), "--target", "nope=http://127.0.0.1:1"], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no target named `nope`"), "{}", text(&o).1);
    let o = loadtest(&["run", "--config", dir.join("missing.yaml").to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("missing.yaml"), "{}", text(&o).1);

    assert_eq!(server.connections(), 0, "a bad config never touches the target");
    assert_eq!(server.requests(), 0);
    assert!(!dir.join("out").join("summary.json").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_exits_2_before_any_request() {
    let server = TestServer::start(Behaviour::default()).await;
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = temp_dir("cli-unreach");
    let yaml = format!(
        "scenario: s\ntargets:\n  up: {}\n  down: http://127.0.0.1:{closed_port}\nload: {{model: constant_rate, rate: 50, duration: 1s}}\nflows:\n  - name: f\n    steps:\n      - {{step: http, name: a, target: up, path: /hello}}\n      - {{step: http, name: b, target: down, path: /hello}}\nmetrics: {{enabled: false}}\n",
        server.url()
    );
    let path = write(&dir, "s.yaml", &yaml);
    let o = loadtest(&["run", "--config", path.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()], &[]).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("target `down` (http://127.0.0.1:{closed_port}) is unreachable")), "{stderr}");
    assert!(stderr.contains("no load was sent"), "{stderr}");
    // The reachable target got the preflight's TCP connect, never a request.
    assert_eq!(server.requests(), 0);

    // `--target` fixes it from the command line; then the run goes through.
    let fix = format!("down={}", server.url());
    let o = loadtest(
        &[
            "run",
            "--config",
            path.to_str().unwrap(),
            "--out",
            dir.join("out").to_str().unwrap(),
            "--target",
            &fix,
            "--duration",
            "200ms",
            "--rate",
            "10",
        ],
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(server.requests(), 4, "2 iterations x 2 steps");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_the_shipped_scenario_without_network() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/order-flow.yaml");
    let o = loadtest(&["check", "--config", shipped.to_str().unwrap()], &[]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("scenario order-flow"), "{stdout}");
    assert!(stdout.contains("list_catalog -> place_order -> poll_order -> read_notifications"), "{stdout}");
    // Running it without a token fails before load and says where tokens come from.
    let o = loadtest(&["run", "--config", shipped.to_str().unwrap(), "--out", temp_dir("cli-tok").to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("GLASSHOUSE_LOADTEST_TOKEN"), "{}", text(&o).1);
}

/// `--allow-host` (what the Kubernetes Job passes for the services' in-cluster names)
/// admits a non-loopback target the file does not list; without it the same target is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_host_admits_a_named_non_loopback_target() {
    let dir = temp_dir("cli-allow");
    let cfg = write(&dir, "s.yaml", &hello_config("http://127.0.0.1:1", "  model: constant_rate\n  rate: 1\n  duration: 1s", &[]));
    let cfg = cfg.to_str().unwrap();
    let target = "app=http://glasshouse-order.glasshouse.svc.cluster.local:8081";
    let o = loadtest(&["check", "--config", cfg, "--target", target], &[]).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("glasshouse-order.glasshouse.svc.cluster.local") && stderr.contains("allow_hosts"), "{stderr}");
    let o = loadtest(&["check", "--config", cfg, "--target", target, "--allow-host", "glasshouse-order.glasshouse.svc.cluster.local"], &[])
        .await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("app=http://glasshouse-order.glasshouse.svc.cluster.local:8081"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}
