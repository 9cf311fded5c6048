//! Prometheus scrapes a target of this test and answers a query for its series;
//! Prometheus knows its Alertmanager; promtool is callable and really checks rules.

use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, ALERTMANAGER, PROMETHEUS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves one metrics page forever on `listener` (a few lines of HTTP/1.1 are
/// all Prometheus needs; the real telemetry crate serves the real thing).
async fn serve_metrics(listener: tokio::net::TcpListener, body: String) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let body = body.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[tokio::test]
async fn prometheus_scrapes_a_file_discovered_target() -> anyhow::Result<()> {
    stack::require(PROMETHEUS).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let body = "# TYPE glasshouse_smoke_value gauge\nglasshouse_smoke_value 42\n".to_string();
    let server = tokio::spawn(serve_metrics(listener, body));

    let target = stack::ScrapeTarget::register(port, &run)?;

    let http = reqwest::Client::new();
    let promql = format!(r#"glasshouse_smoke_value{{smoke_run="{run}"}}"#);
    let result = poll::until("Prometheus to scrape the smoke target", Duration::from_secs(60), Duration::from_millis(500), || {
        let (http, promql) = (http.clone(), promql.clone());
        async move {
            let r = glasshouse_tests::stack::prometheus_query(&http, &promql).await?;
            Ok((!r.is_empty()).then_some(r))
        }
    })
    .await;
    drop(target);
    server.abort();

    let result = result?;
    assert_eq!(result.len(), 1, "one series for this run: {result:?}");
    assert_eq!(result[0]["value"][1], "42");
    assert_eq!(result[0]["metric"]["job"], "smoke");
    Ok(())
}

#[tokio::test]
async fn prometheus_sends_alerts_to_the_stack_alertmanager() -> anyhow::Result<()> {
    stack::require(PROMETHEUS).await?;
    stack::require(ALERTMANAGER).await?;
    let http = reqwest::Client::new();
    let want = format!("{}/api/v2/alerts", ALERTMANAGER.http());
    let active = poll::until("Prometheus to discover Alertmanager", Duration::from_secs(30), Duration::from_millis(500), || {
        let http = http.clone();
        async move {
            let resp: serde_json::Value = http.get(format!("{}/api/v1/alertmanagers", PROMETHEUS.http())).send().await?.json().await?;
            let urls: Vec<String> = resp["data"]["activeAlertmanagers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["url"].as_str().map(str::to_owned))
                .collect();
            Ok((!urls.is_empty()).then_some(urls))
        }
    })
    .await?;
    assert_eq!(active, vec![want]);
    // Alertmanager's own API answers.
    let status: serde_json::Value = http.get(format!("{}/api/v2/status", ALERTMANAGER.http())).send().await?.json().await?;
    assert_eq!(status["cluster"]["status"], "disabled", "the local Alertmanager runs without clustering");
    Ok(())
}

#[test]
fn promtool_accepts_good_rules_and_rejects_bad_ones() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(stack::unique_name("promtool"));
    std::fs::create_dir_all(&dir)?;
    let good = dir.join("good.yaml");
    let bad = dir.join("bad.yaml");
    std::fs::write(&good, "groups:\n  - name: smoke\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n")?;
    std::fs::write(&bad, "groups:\n  - name: smoke\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up\n")?;
    let run = |f: &std::path::Path| {
        std::process::Command::new("promtool").args(["check", "rules"]).arg(f).output().map_err(|e| {
            anyhow::anyhow!("promtool is not callable ({e}); it comes with Prometheus: `deploy/local/stack install prometheus`")
        })
    };
    let ok = run(&good)?;
    assert!(ok.status.success(), "promtool rejected a valid rule: {}", String::from_utf8_lossy(&ok.stderr));
    let ko = run(&bad)?;
    assert!(!ko.status.success(), "promtool accepted an unparsable expression");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
