//! The checker binary against the real local Prometheus: the shipped dashboards'
//! queries are all valid (no ERROR; data is not required before a load run),
//! broken queries are reported ERROR, and `--require-data` turns EMPTY into a
//! failure. Needs the stack (`deploy/local/stack up prometheus`).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn prometheus_url() -> String {
    let port = std::env::var("GH_PROMETHEUS_PORT").unwrap_or_else(|_| "9090".to_owned());
    format!("http://127.0.0.1:{port}")
}

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glasshouse-dashboards"))
        .args(["check", "--prometheus", &prometheus_url()])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A directory holding one dashboard, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn with_dashboard(d: &Value) -> Self {
        let p = std::env::temp_dir().join(format!("glasshouse-dash-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("test.json"), serde_json::to_string_pretty(d).unwrap()).unwrap();
        Self(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A structurally valid dashboard with one timeseries panel per `(title, expr)`.
fn dashboard(panels: &[(&str, &str)]) -> Value {
    let ds = json!({ "type": "prometheus", "uid": "${datasource}" });
    let panels: Vec<Value> = panels
        .iter()
        .enumerate()
        .map(|(i, (title, expr))| {
            json!({
                "id": i + 1, "type": "timeseries", "title": title, "datasource": ds,
                "gridPos": { "x": 0, "y": i * 8, "w": 24, "h": 8 },
                "fieldConfig": { "defaults": { "unit": "short" }, "overrides": [] },
                "targets": [{ "refId": "A", "expr": expr, "datasource": ds, "range": true }],
            })
        })
        .collect();
    json!({
        "uid": format!("test-{}", uuid::Uuid::new_v4().simple()), "title": "Test", "schemaVersion": 39,
        "templating": { "list": [{ "name": "datasource", "type": "datasource", "query": "prometheus",
                                   "current": { "value": "glasshouse-prometheus" } }] },
        "panels": panels,
    })
}

#[test]
fn shipped_dashboards_have_no_erroring_query_against_the_real_prometheus() {
    let out = check(&[]);
    let text = stdout(&out);
    assert!(out.status.success(), "exit {:?}\n{text}{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("-> ERROR"), "{text}");
    assert!(text.contains("0 structure problem(s)") && text.contains(" 0 ERROR"), "{text}");
    // One verdict line per query panel and per query variable of every shipped dashboard.
    let root = glasshouse_alerts::repo::Repo::locate(None).unwrap();
    let mut expected = 0;
    for d in glasshouse_dashboards::model::read_dir(&glasshouse_dashboards::dashboards_dir(root.root())).unwrap() {
        let d = d.unwrap();
        expected += d.panels().iter().filter(|p| !glasshouse_dashboards::model::is_layout_only(p)).count();
        expected += d.variables().iter().filter(|v| v["type"] == "query").count();
    }
    assert!(expected > 60, "{expected}");
    assert_eq!(text.lines().filter(|l| l.contains(" -> ")).count(), expected, "{text}");
    assert!(text.contains("Glasshouse Overview / Order funnel -> "), "{text}");
}

#[test]
fn broken_queries_are_reported_error_and_fail_the_run() {
    let dir = Dir::with_dashboard(&dashboard(&[
        ("Fine", r#"up{job="prometheus"}"#),
        ("Unbalanced", "sum(rate(http_server_request_duration_seconds_count[5m])"),
        ("Range of an instant vector", "rate(up)"),
        ("Bad function", "ratee(up[5m])"),
    ]));
    let out = check(&["--dir", dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Test / Fine -> OK"), "{text}");
    for title in ["Unbalanced", "Range of an instant vector", "Bad function"] {
        let line =
            text.lines().find(|l| l.starts_with(&format!("Test / {title} -> "))).unwrap_or_else(|| panic!("no line for {title}:\n{text}"));
        assert!(line.contains("-> ERROR (A: bad_data:"), "{line}");
    }
    assert!(text.contains("3 ERROR"), "{text}");
}

#[test]
fn require_data_makes_empty_panels_fatal() {
    let job = format!("no-such-job-{}", uuid::Uuid::new_v4().simple());
    let empty_expr = format!(r#"up{{job="{job}"}}"#);
    let dir = Dir::with_dashboard(&dashboard(&[("Has data", r#"up{job="prometheus"}"#), ("Has none", &empty_expr)]));
    let without = check(&["--dir", dir.path().to_str().unwrap()]);
    assert!(without.status.success(), "{}", stdout(&without));
    assert!(stdout(&without).contains("Test / Has none -> EMPTY\n"), "{}", stdout(&without));

    let with = check(&["--dir", dir.path().to_str().unwrap(), "--require-data"]);
    assert_eq!(with.status.code(), Some(1), "{}", stdout(&with));
    assert!(stdout(&with).contains("Test / Has none -> EMPTY [fatal with --require-data]"), "{}", stdout(&with));
    assert!(stdout(&with).contains("Test / Has data -> OK"), "{}", stdout(&with));

    // A panel marked empty-when-healthy does not fail --require-data.
    let mut d = dashboard(&[("Has data", r#"up{job="prometheus"}"#), ("Has none", &empty_expr)]);
    d["panels"][1]["glasshouseEmptyWhenHealthy"] = json!("test: nothing expected");
    let dir = Dir::with_dashboard(&d);
    let allowed = check(&["--dir", dir.path().to_str().unwrap(), "--require-data"]);
    assert!(allowed.status.success(), "{}", stdout(&allowed));
    assert!(stdout(&allowed).contains("Test / Has none -> EMPTY (allowed: test: nothing expected)"), "{}", stdout(&allowed));
}

#[test]
fn structure_problems_fail_the_run_even_offline() {
    let mut d = dashboard(&[("A", "up"), ("B", "up")]);
    d["panels"][1]["id"] = json!(1);
    d["panels"][0]["fieldConfig"]["defaults"] = json!({});
    let dir = Dir::with_dashboard(&d);
    let out = check(&["--offline", "--dir", dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("STRUCTURE Test (test.json): panel 'B': id 1 is used by another panel"), "{text}");
    assert!(text.contains("STRUCTURE Test (test.json): panel 'A': timeseries panel without a unit"), "{text}");
    assert!(!text.contains("->"), "offline must not run queries:\n{text}");
}

#[test]
fn bad_arguments_and_an_unreachable_prometheus_exit_2_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_glasshouse-dashboards")).args(["check", "--lookback", "5 minutes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --lookback '5 minutes'"));

    // Port 1 on loopback: nothing listens there.
    let out =
        Command::new(env!("CARGO_BIN_EXE_glasshouse-dashboards")).args(["check", "--prometheus", "http://127.0.0.1:1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach Prometheus at http://127.0.0.1:1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = Dir::with_dashboard(&json!({}));
    std::fs::write(dir.path().join("test.json"), "{ not json").unwrap();
    let out = check(&["--offline", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("test.json is not valid JSON"), "{}", stdout(&out));
}
