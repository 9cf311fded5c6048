//! schemathesis against the three live services (issue 13): every phase
//! (examples, coverage, fuzzing, stateful via the contracts' `links`), a
//! bounded number of cases per operation, with a valid token, against the
//! contract each service serves at `/openapi.yaml`. It must find nothing: no
//! server error, no answer outside its schema, no status, header or content
//! type the contract does not list, no method refused without `Allow`.
//!
//! schemathesis is installed by `deploy/local/test-tools.sh` (pinned, in its
//! own venv under the stack's home); `make test` runs that first. The number
//! of cases each service was sent is printed (run with `--nocapture`).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use glasshouse_platform::auth::Role;
use glasshouse_tests::services::{Saga, Service};
use glasshouse_tests::stack;
use serde_json::json;

/// The version `deploy/local/test-tools.sh` installs.
const VERSION: &str = "4.32.5";

/// Cases per operation and phase (hypothesis' `max_examples`): enough to
/// cover every documented answer, bounded so all three runs take a few
/// minutes on two busy cores.
const MAX_EXAMPLES: &str = "25";

/// What must hold for every case.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
                      response_schema_conformance,missing_required_header,unsupported_method,allow_header_conformance,\
                      ignored_auth,use_after_free,ensure_resource_availability";

fn st() -> anyhow::Result<PathBuf> {
    let st = stack::home()?.join(format!("opt/schemathesis-{VERSION}/bin/st"));
    anyhow::ensure!(st.exists(), "{} is missing: run deploy/local/test-tools.sh (make test does)", st.display());
    Ok(st)
}

/// Runs schemathesis against `svc` with `token`; returns (cases, seconds).
async fn run(st: &PathBuf, svc: &Service, token: &str, dir: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let report = dir.join(format!("{}.ndjson", svc.name));
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(st);
    cmd.arg("run")
        .arg(svc.url("/openapi.yaml"))
        .args(["--url", &svc.url("")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", "13"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--suppress-health-check", "all"])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&report)
        // Its cache (`.schemathesis/`) goes to the scratch directory, not the repository.
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A deadline, not a wait: a hung run fails the test.
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cases = cases_in(&std::fs::read_to_string(&report).unwrap_or_default());
    let secs = started.elapsed().as_secs();
    println!("schemathesis {VERSION} on {}: {cases} cases in {secs} s, exit {:?}", svc.name, out.status.code());
    // Its own summary: phases run, checks passed, warnings.
    if let Some(at) = stdout.find("Test Phases") {
        println!("{}", &stdout[at..]);
    }
    assert!(
        out.status.success(),
        "schemathesis found problems in {} (log {}):\n{stdout}\n{}",
        svc.name,
        svc.log.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cases > 0, "{}: no case was sent:\n{stdout}", svc.name);
    Ok((cases, secs))
}

/// The number of cases (requests checked) in an ndjson event report.
fn cases_in(ndjson: &str) -> u64 {
    ndjson
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e.get("ScenarioFinished").cloned())
        .map(|f| f["recorder"]["cases"].as_object().map_or(0, |c| c.len() as u64))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_in_any_service() -> anyhow::Result<()> {
    let st = st()?;
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let admin = saga.token("st-admin", Role::Admin);
    let customer = saga.token("st-customer", Role::Customer);
    // The item the contract's example order names (unknown SKUs are 422s,
    // also documented), so the examples phase places real orders and the
    // stateful phase follows their links.
    for sku in ["DEMO-00001"] {
        let r = http
            .put(saga.inventory.url(&format!("/items/{sku}")))
            .bearer_auth(&admin)
            .json(&json!({"name": sku, "price": {"amount_minor": 250, "currency": "EUR"}, "stock": 100000}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "seed {sku}: {}", r.status());
    }
    let dir = std::env::temp_dir().join(stack::unique_name("schemathesis"));
    std::fs::create_dir_all(&dir)?;
    let mut total = 0;
    for (svc, token) in [(&saga.order, &customer), (&saga.inventory, &admin), (&saga.notification, &customer)] {
        total += run(&st, svc, token, &dir).await?.0;
    }
    println!("schemathesis {VERSION}: {total} cases over the three services, 0 failures");

    // The control: the same run finds an answer the contract does not list.
    // A copy of Order's contract without `listOrders`' 422 must fail on
    // `limit=0`, or the runs above prove nothing.
    let mut lying: serde_yaml::Value = serde_yaml::from_str(&http.get(saga.order.url("/openapi.yaml")).send().await?.text().await?)?;
    lying["paths"]["/orders"]["get"]["responses"].as_mapping_mut().unwrap().remove("422");
    let lying_path = dir.join("lying-order.yaml");
    std::fs::write(&lying_path, serde_yaml::to_string(&lying)?)?;
    let out = tokio::process::Command::new(&st)
        .arg("run")
        .arg(&lying_path)
        .args(["--url", &saga.order.url("")])
        .args(["--header", &format!("Authorization: Bearer {customer}")])
        .args(["--include-operation-id", "listOrders", "--phases", "coverage", "--checks", "status_code_conformance"])
        .args(["--max-examples", "10", "--seed", "13", "--workers", "1"])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("422"), "schemathesis missed an undocumented 422:\n{stdout}");

    let _ = std::fs::remove_dir_all(&dir);
    saga.stop().await
}
