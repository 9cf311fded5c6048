//! The running local Prometheus loads every rule in alerts/rules/ and evaluates
//! them without errors. Needs the stack (`deploy/local/stack up prometheus`).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::repo;
use glasshouse_alerts::rules;
use serde_json::Value;

fn prometheus_url() -> String {
    let port = std::env::var("GH_PROMETHEUS_PORT").unwrap_or_else(|_| "9090".to_owned());
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_prometheus_loads_and_evaluates_every_rule() {
    let base = prometheus_url();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    // Pick up the current files (the stack runs Prometheus with --web.enable-lifecycle).
    let reload = http
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("Prometheus is not reachable at {base} ({e}); start it with `deploy/local/stack up prometheus`"));
    assert!(reload.status().is_success(), "reload failed: {}", reload.text().await.unwrap_or_default());

    let repo = repo();
    let files = rules::load_dir(&repo.rules_dir()).unwrap();
    let expected: BTreeSet<(String, String)> = files
        .iter()
        .flat_map(|f| {
            f.file.groups.iter().flat_map(|g| g.rules.iter().map(move |r| (g.name.clone(), r.record.clone().or(r.alert.clone()).unwrap())))
        })
        .collect();

    // Poll until every rule is loaded and evaluated once (the budget groups run every minute).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let body: Value = http.get(format!("{base}/api/v1/rules")).send().await.unwrap().json().await.unwrap();
        let mut loaded = BTreeSet::new();
        let mut unevaluated = Vec::new();
        let mut errors = Vec::new();
        for g in body["data"]["groups"].as_array().cloned().unwrap_or_default() {
            let group = g["name"].as_str().unwrap_or_default().to_owned();
            if !g["file"].as_str().unwrap_or_default().starts_with(repo.rules_dir().to_str().unwrap()) {
                continue;
            }
            for r in g["rules"].as_array().cloned().unwrap_or_default() {
                let name = r["name"].as_str().unwrap_or_default().to_owned();
                match r["health"].as_str() {
                    Some("ok") => {}
                    Some("unknown") => unevaluated.push(format!("{group}/{name}")),
                    _ => errors.push(format!("{group}/{name}: {}", r["lastError"])),
                }
                loaded.insert((group.clone(), name));
            }
        }
        assert!(errors.is_empty(), "rules failing in Prometheus: {errors:#?}");
        let missing: Vec<_> = expected.difference(&loaded).collect();
        if missing.is_empty() && unevaluated.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 90 s: not loaded {missing:#?}, not evaluated yet {unevaluated:#?} (is Prometheus' rule_files alerts/rules/*.yaml of this checkout?)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
