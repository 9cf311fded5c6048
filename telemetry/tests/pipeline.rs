//! The telemetry pipeline against the real local stack: one trace across
//! HTTP and Kafka in Jaeger, metrics and exemplars in Prometheus, log lines
//! in VictoriaLogs (Loki protocol) and OpenSearch (bulk API) by trace id.
//!
//! Three processes (the demo binary's roles) play services A -> B -> C, so
//! context really crosses process boundaries.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, JAEGER_QUERY, KAFKA, OPENSEARCH, PROMETHEUS, VICTORIALOGS};
use serde_json::Value;
use support::*;

/// A started demo topology: B serving, C consuming, on a topic of its own.
struct Topology {
    topic: String,
    b: Served,
    _c: tokio::process::Child,
    _dir: TempDir,
}

async fn topology(tag: &str) -> anyhow::Result<Topology> {
    stack::require(KAFKA).await?;
    let topic = stack::unique_name(&format!("telemetry-{tag}"));
    create_topic(&topic).await?;
    let b = serve(&format!("telemetry-demo-b-{tag}"), &topic, None).await?;
    let dir = TempDir::new("demo-consume");
    let c = consume(&format!("telemetry-demo-c-{tag}"), &topic, &dir.path().join("stdout.log"))?;
    Ok(Topology { topic, b, _c: c, _dir: dir })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_http_kafka_and_three_processes() -> anyhow::Result<()> {
    stack::require(JAEGER_QUERY).await?;
    let t = topology("trace").await?;
    let trace_id = call("telemetry-demo-a-trace", &t.b.url("/work"), None).await?;

    let http = reqwest::Client::new();
    let base = JAEGER_QUERY.http();
    // Complete when C's innermost span has arrived (C flushes after each message).
    let trace = poll::until("the whole trace in Jaeger", Duration::from_secs(60), Duration::from_millis(300), || {
        let (http, base, trace_id) = (http.clone(), base.clone(), trace_id.clone());
        async move {
            let trace = jaeger_trace(&http, &base, &trace_id).await?;
            Ok(trace
                .filter(|t| t["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["operationName"] == "demo.handle") && s.len() >= 5)))
        }
    })
    .await?;
    delete_topic(&t.topic).await;

    let spans = trace["spans"].as_array().unwrap();
    let service_of = |s: &Value| trace["processes"][s["processID"].as_str().unwrap()]["serviceName"].as_str().unwrap().to_owned();
    let by_name: HashMap<String, &Value> = spans.iter().map(|s| (s["operationName"].as_str().unwrap().to_owned(), s)).collect();
    let parent_of = |s: &Value| -> Option<String> {
        s["references"].as_array()?.iter().find(|r| r["refType"] == "CHILD_OF").map(|r| r["spanID"].as_str().unwrap().to_owned())
    };
    let get = |name: &str| -> &Value { by_name.get(name).unwrap_or_else(|| panic!("no span {name:?} in {:?}", by_name.keys())) };
    let kind =
        |s: &Value| s["tags"].as_array().unwrap().iter().find(|t| t["key"] == "span.kind").map(|t| t["value"].as_str().unwrap().to_owned());

    let client = get("demo.call");
    let server = get("POST /work");
    let produce = get(&format!("{} publish", t.topic));
    let consume = get(&format!("{} process", t.topic));
    let handle = get("demo.handle");

    assert_eq!(service_of(client), "telemetry-demo-a-trace");
    assert_eq!(service_of(server), "telemetry-demo-b-trace");
    assert_eq!(service_of(produce), "telemetry-demo-b-trace");
    assert_eq!(service_of(consume), "telemetry-demo-c-trace");
    assert_eq!(service_of(handle), "telemetry-demo-c-trace");

    assert_eq!(parent_of(client), None, "A's span is the root");
    assert_eq!(parent_of(server).as_deref(), client["spanID"].as_str(), "HTTP carried the context A -> B");
    assert_eq!(parent_of(produce).as_deref(), server["spanID"].as_str());
    assert_eq!(parent_of(consume).as_deref(), produce["spanID"].as_str(), "Kafka headers carried the context B -> C");
    assert_eq!(parent_of(handle).as_deref(), consume["spanID"].as_str());

    assert_eq!(kind(client).as_deref(), Some("client"));
    assert_eq!(kind(server).as_deref(), Some("server"));
    assert_eq!(kind(produce).as_deref(), Some("producer"));
    assert_eq!(kind(consume).as_deref(), Some("consumer"));
    let tag = |s: &Value, key: &str| s["tags"].as_array().unwrap().iter().find(|t| t["key"] == key).map(|t| t["value"].clone());
    assert_eq!(tag(server, "http.route"), Some(Value::from("/work")));
    assert_eq!(tag(server, "http.response.status_code"), Some(Value::from(200)));
    assert_eq!(tag(consume, "messaging.destination.name"), Some(Value::from(t.topic.clone())));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_exemplar_carries_the_trace_into_prometheus() -> anyhow::Result<()> {
    stack::require(PROMETHEUS).await?;
    let t = topology("metrics").await?;
    let trace_id = call("telemetry-demo-a-metrics", &t.b.url("/work"), None).await?;

    // The exposition itself: OpenMetrics with the exemplar on a bucket line.
    let http = reqwest::Client::new();
    let resp = http.get(t.b.url("/metrics")).send().await?.error_for_status()?;
    assert!(resp.headers()["content-type"].to_str()?.starts_with("application/openmetrics-text"));
    let text = resp.text().await?;
    let exemplar = format!(r#"# {{trace_id="{trace_id}"}}"#);
    assert!(
        text.lines().any(|l| l.starts_with("http_server_request_duration_seconds_bucket{")
            && l.contains(r#"route="/work""#)
            && l.contains(&exemplar)),
        "no bucket with exemplar {exemplar}:\n{text}"
    );

    // Prometheus parses it (a parse error would fail the scrape) and keeps the exemplar.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let _target = stack::ScrapeTarget::register(t.b.port, &run)?;
    let prom = PROMETHEUS.http();
    let selector = format!(r#"http_server_request_duration_seconds_bucket{{smoke_run="{run}",route="/work"}}"#);
    let exemplars = poll::until("the exemplar in Prometheus", Duration::from_secs(60), Duration::from_millis(500), || {
        let (http, prom, selector) = (http.clone(), prom.clone(), selector.clone());
        async move {
            let now = chrono::Utc::now().timestamp();
            let v: Value = http
                .get(format!("{prom}/api/v1/query_exemplars"))
                .query(&[("query", selector.as_str()), ("start", &(now - 600).to_string()), ("end", &(now + 60).to_string())])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let found: Vec<Value> =
                v["data"].as_array().into_iter().flatten().flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default()).collect();
            Ok((!found.is_empty()).then_some(found))
        }
    })
    .await?;
    assert!(exemplars.iter().any(|e| e["labels"]["trace_id"] == trace_id), "exemplars: {exemplars:?}");

    let up: Value = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", format!(r#"sum(http_server_request_duration_seconds_count{{smoke_run="{run}",service="telemetry-demo-b-metrics",method="POST",route="/work",status_class="2xx"}})"#))])
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "one request counted: {up}");
    delete_topic(&t.topic).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_found_by_trace_id_in_both_log_stores() -> anyhow::Result<()> {
    stack::require(VICTORIALOGS).await?;
    stack::require(OPENSEARCH).await?;
    let t = topology("logs").await?;
    let trace_id = call("telemetry-demo-a-logs", &t.b.url("/work"), None).await?;
    let http = reqwest::Client::new();
    http.post(t.b.url("/flush")).send().await?.error_for_status()?;

    let vl = VICTORIALOGS.http();
    let query = format!(r#"trace_id:="{trace_id}" AND service:="telemetry-demo-b-logs""#);
    let rows = poll::until("B's line in VictoriaLogs", Duration::from_secs(30), Duration::from_millis(300), || {
        let (http, vl, query) = (http.clone(), vl.clone(), query.clone());
        async move { Ok(Some(logsql(&http, &vl, &query).await?).filter(|r| !r.is_empty())) }
    })
    .await?;
    let line = rows.iter().find(|r| r["_msg"] == "work accepted").unwrap_or_else(|| panic!("no 'work accepted' line: {rows:?}"));
    assert_eq!(line["level"], "info");
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
    assert_eq!(line["environment"], "local", "stream labels: service, level, environment");

    let os = OPENSEARCH.http();
    let search = serde_json::json!({ "query": { "term": { "trace.id.keyword": trace_id } } });
    let hits = poll::until("B's document in OpenSearch", Duration::from_secs(30), Duration::from_millis(300), || {
        let (http, os, search) = (http.clone(), os.clone(), search.clone());
        async move {
            let resp = http.post(format!("{os}/glasshouse-logs-*/_search")).json(&search).send().await?;
            if !resp.status().is_success() {
                return Ok(None);
            }
            let v: Value = resp.json().await?;
            Ok(v["hits"]["hits"].as_array().cloned().filter(|h| !h.is_empty()))
        }
    })
    .await?;
    let doc = hits.iter().map(|h| &h["_source"]).find(|d| d["message"] == "work accepted").expect("the 'work accepted' document");
    assert_eq!(doc["service"]["name"], "telemetry-demo-b-logs");
    assert_eq!(doc["log"]["level"], "info");
    assert_eq!(doc["trace"]["id"], trace_id);
    assert_eq!(doc["span"]["id"].as_str().map(str::len), Some(16));
    assert!(doc["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(doc["labels"]["order_id"].as_str().map(|s| s.starts_with("demo-")), Some(true));
    delete_topic(&t.topic).await;
    Ok(())
}
