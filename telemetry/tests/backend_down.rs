//! Backends going away and coming back. The service must keep serving, count
//! what it drops, and ship again by itself once the backends return.
//!
//! The shared stack's backends are not stopped (other tests use them): this
//! test runs private instances of the same real programs (the stack's cached
//! Jaeger and VictoriaLogs binaries) on ports of its own, kills them mid-run and
//! restarts them. VictoriaLogs stands in for both log APIs here: it accepts the
//! Loki push API and the Elasticsearch bulk API.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use serde_json::Value;
use support::*;
use tokio::process::{Child, Command};

struct Ports {
    vl: u16,
    otlp_grpc: u16,
    otlp_http: u16,
    query: u16,
    query_grpc: u16,
    health: u16,
    metrics: u16,
}

fn start_victorialogs(home: &Path, data: &Path, port: u16) -> anyhow::Result<Child> {
    Ok(Command::new(home.join("bin/victoria-logs"))
        .arg(format!("-storageDataPath={}", data.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-loggerLevel=ERROR")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

fn start_jaeger(home: &Path, p: &Ports) -> anyhow::Result<Child> {
    Ok(Command::new(home.join("bin/jaeger"))
        .arg(format!("--config={}", stack::repo_root().join("deploy/local/config/jaeger.yaml").display()))
        .env("GH_JAEGER_OTLP_GRPC_PORT", p.otlp_grpc.to_string())
        .env("GH_JAEGER_OTLP_HTTP_PORT", p.otlp_http.to_string())
        .env("GH_JAEGER_QUERY_PORT", p.query.to_string())
        .env("GH_JAEGER_QUERY_GRPC_PORT", p.query_grpc.to_string())
        .env("GH_JAEGER_HEALTH_PORT", p.health.to_string())
        .env("GH_JAEGER_METRICS_PORT", p.metrics.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

async fn wait_ok(http: &reqwest::Client, what: &str, url: String) -> anyhow::Result<()> {
    poll::until(what, Duration::from_secs(60), Duration::from_millis(100), || {
        let (http, url) = (http.clone(), url.clone());
        async move { Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
    })
    .await
}

/// `telemetry_dropped_total` of the demo server, by (signal, exporter).
async fn dropped(http: &reqwest::Client, metrics_url: &str) -> anyhow::Result<Vec<(String, String, f64)>> {
    let text = http.get(metrics_url).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("telemetry_dropped_total{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            let get = |k: &str| labels.split(&format!("{k}=\"")).nth(1)?.split('"').next().map(str::to_owned);
            Some((get("signal")?, get("exporter")?, value.parse().ok()?))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_keeps_serving_counts_drops_and_recovers() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let home = stack::home()?;
    anyhow::ensure!(
        home.join("bin/jaeger").exists() && home.join("bin/victoria-logs").exists(),
        "the stack's Jaeger and VictoriaLogs binaries are missing from {}: run `deploy/local/stack install`",
        home.display()
    );
    let p = Ports {
        vl: free_port(),
        otlp_grpc: free_port(),
        otlp_http: free_port(),
        query: free_port(),
        query_grpc: free_port(),
        health: free_port(),
        metrics: free_port(),
    };
    let data = TempDir::new("vl-private");
    let http = reqwest::Client::new();
    let vl_url = format!("http://127.0.0.1:{}", p.vl);
    let query_url = format!("http://127.0.0.1:{}", p.query);

    let mut vl = start_victorialogs(&home, data.path(), p.vl)?;
    let mut jaeger = start_jaeger(&home, &p)?;
    wait_ok(&http, "private VictoriaLogs", format!("{vl_url}/health")).await?;
    wait_ok(&http, "private Jaeger", format!("http://127.0.0.1:{}/status", p.health)).await?;

    let telemetry = serde_json::json!({
        "traces": { "endpoint": format!("http://127.0.0.1:{}", p.otlp_grpc), "export_timeout": 1000 },
        "logs": {
            "loki": { "url": format!("{vl_url}/insert") },
            "elasticsearch": { "url": format!("{vl_url}/insert/elasticsearch"), "index": "down-test" },
            "flush_interval": 100,
        },
    })
    .to_string();
    let topic = stack::unique_name("telemetry-down");
    create_topic(&topic).await?;
    let b = serve("telemetry-demo-b-down", &topic, Some(&telemetry)).await?;
    let metrics_url = b.url("/metrics");

    // 1. Everything up: a trace and its log lines arrive.
    let t1 = call("telemetry-demo-a-down", &b.url("/work"), Some(&telemetry)).await?;
    arrives(&http, &b, &query_url, &vl_url, &t1).await?;
    let before = dropped(&http, &metrics_url).await?;
    assert!(before.iter().all(|(_, _, v)| *v == 0.0), "nothing dropped while the backends are up: {before:?}");

    // 2. Backends gone: the service still answers; what it cannot ship is counted.
    vl.kill().await?;
    jaeger.kill().await?;
    for _ in 0..3 {
        let r = http.post(b.url("/work")).send().await?;
        assert!(r.status().is_success(), "the service keeps serving with its telemetry backends down");
    }
    let counted = poll::until("drops counted for every exporter", Duration::from_secs(60), Duration::from_millis(200), || {
        let (http, b_flush, metrics_url) = (http.clone(), b.url("/flush"), metrics_url.clone());
        async move {
            http.post(&b_flush).send().await?.error_for_status()?;
            let d = dropped(&http, &metrics_url).await?;
            let has = |s: &str, e: &str| d.iter().any(|(sig, exp, v)| sig == s && exp == e && *v > 0.0);
            Ok((has("logs", "loki") && has("logs", "elasticsearch") && has("traces", "otlp")).then_some(d))
        }
    })
    .await?;
    eprintln!("dropped while down: {counted:?}");

    // 3. Backends back on the same ports: new signals arrive again, unaided.
    let _vl = start_victorialogs(&home, data.path(), p.vl)?;
    let _jaeger = start_jaeger(&home, &p)?;
    wait_ok(&http, "private VictoriaLogs again", format!("{vl_url}/health")).await?;
    wait_ok(&http, "private Jaeger again", format!("http://127.0.0.1:{}/status", p.health)).await?;
    let t2 = call("telemetry-demo-a-down", &b.url("/work"), Some(&telemetry)).await?;
    arrives(&http, &b, &query_url, &vl_url, &t2).await?;
    delete_topic(&topic).await;
    Ok(())
}

/// B's server span reaches Jaeger and B's log line reaches both log APIs.
async fn arrives(http: &reqwest::Client, b: &Served, query_url: &str, vl_url: &str, trace_id: &str) -> anyhow::Result<()> {
    poll::until("B's spans and log lines in the private backends", Duration::from_secs(60), Duration::from_millis(300), || {
        let (http, flush, query_url, vl_url, trace_id) =
            (http.clone(), b.url("/flush"), query_url.to_owned(), vl_url.to_owned(), trace_id.to_owned());
        async move {
            http.post(&flush).send().await?.error_for_status()?;
            let Some(trace) = jaeger_trace(&http, &query_url, &trace_id).await? else { return Ok(None) };
            let has_server = trace["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["operationName"] == "POST /work"));
            let loki = logsql(&http, &vl_url, &format!(r#"trace_id:="{trace_id}""#)).await?;
            let bulk = logsql(&http, &vl_url, &format!(r#""trace.id":="{trace_id}""#)).await?;
            let says = |rows: &[Value], key: &str| rows.iter().any(|r| r[key] == "work accepted");
            Ok((has_server && says(&loki, "_msg") && says(&bulk, "message")).then_some(()))
        }
    })
    .await
}
