//! Log stores: tracing-loki into VictoriaLogs (Loki push protocol), found
//! again with LogsQL; and the Elasticsearch bulk API of OpenSearch.

use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, OPENSEARCH, VICTORIALOGS};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn tracing_loki_line_is_found_in_victorialogs() -> anyhow::Result<()> {
    stack::require(VICTORIALOGS).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    // tracing-loki appends `loki/api/v1/push` to this base, hence the trailing slash.
    let url = tracing_loki::url::Url::parse(&format!("{}/insert/", VICTORIALOGS.http()))?;
    let (layer, controller, task) = tracing_loki::builder()
        .label("service", "glasshouse-smoke")?
        .extra_field("run_id", run_id.clone())?
        // tracing-loki sends each line as JSON with the text under `message`;
        // this VictoriaLogs header makes that the log message (`_msg`).
        .http_header("VL-Msg-Field", "message")?
        .build_controller_url(url)?;
    let sender = tokio::spawn(task);
    {
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);
        tracing::info!(order_count = 3, "smoke log line {run_id}");
    }
    // Shutting down sends what is queued, then the task ends.
    controller.shutdown().await;
    tokio::time::timeout(Duration::from_secs(30), sender).await??;

    let http = reqwest::Client::new();
    let base = VICTORIALOGS.http();
    // An exact match on a field that only exists because the JSON line was parsed.
    let query = format!(r#"run_id:="{run_id}""#);
    let hits = poll::until("the log line in VictoriaLogs", Duration::from_secs(30), Duration::from_millis(250), || {
        let (http, base, query) = (http.clone(), base.clone(), query.clone());
        async move {
            // Make freshly ingested rows searchable now (an endpoint meant for tests).
            http.get(format!("{base}/internal/force_flush")).send().await?.error_for_status()?;
            let body = http
                .post(format!("{base}/select/logsql/query"))
                .form(&[("query", query.as_str())])
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            let rows: Vec<serde_json::Value> =
                body.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
            Ok((!rows.is_empty()).then_some(rows))
        }
    })
    .await?;
    assert_eq!(hits.len(), 1, "exactly the one line: {hits:?}");
    let row = &hits[0];
    // Loki stream labels arrive as fields; tracing-loki adds `level` as a label.
    assert_eq!(row["service"], "glasshouse-smoke");
    assert_eq!(row["level"], "info");
    assert_eq!(row["_msg"], format!("smoke log line {run_id}"), "the message is the event's text: {row}");
    assert_eq!(row["order_count"], "3", "event fields become log fields: {row}");
    Ok(())
}

#[tokio::test]
async fn opensearch_bulk_indexed_document_is_searchable() -> anyhow::Result<()> {
    stack::require(OPENSEARCH).await?;
    let http = reqwest::Client::new();
    let base = OPENSEARCH.http();
    let index = stack::unique_name("smoke-logs");
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let doc = serde_json::json!({
        "@timestamp": chrono::Utc::now().to_rfc3339(),
        "message": "order placed",
        "log": { "level": "INFO" },
        "service": { "name": "glasshouse-smoke" },
        "trace": { "id": trace_id },
    });
    let body = format!("{}\n{}\n", serde_json::json!({ "index": { "_index": index } }), doc);
    let resp: serde_json::Value = http
        .post(format!("{base}/_bulk?refresh=true"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(resp["errors"], false, "bulk response: {resp}");

    let result = async {
        let search: serde_json::Value = http
            .post(format!("{base}/{index}/_search"))
            .json(&serde_json::json!({ "query": { "term": { "trace.id.keyword": trace_id } } }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let hits = search["hits"]["hits"].as_array().cloned().unwrap_or_default();
        assert_eq!(hits.len(), 1, "search response: {search}");
        assert_eq!(hits[0]["_source"]["service"]["name"], "glasshouse-smoke");
        assert_eq!(hits[0]["_source"]["message"], "order placed");
        anyhow::Ok(())
    }
    .await;
    http.delete(format!("{base}/{index}")).send().await?.error_for_status()?;
    result
}
