//! deploy/local/config/alertmanager.yml: valid for Alertmanager 0.25, routes by
//! severity, and a page inhibits the tickets of the same SLO and service —
//! proven on a private Alertmanager (the Debian binary the stack runs) that
//! delivers to a webhook this test records.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TempDir, repo};
use glasshouse_alerts::promtool;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[test]
fn amtool_accepts_the_config() {
    let out = promtool::amtool_check_config(&repo().alertmanager_config()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(out.contains("SUCCESS") && out.contains("1 inhibit rules"), "{out}");
}

#[test]
fn severity_picks_the_receiver() {
    let cfg = repo().alertmanager_config();
    let route = |labels: &[(&str, &str)]| promtool::amtool_route(&cfg, labels).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(route(&[("severity", "page"), ("service", "order")]), ["page"]);
    assert_eq!(route(&[("severity", "ticket"), ("service", "order")]), ["ticket"]);
    // Something unlabelled still reaches a human, as a ticket.
    assert_eq!(route(&[("alertname", "Unlabelled")]), ["ticket"]);
}

/// One request the webhook received: path and JSON body.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A minimal HTTP/1.1 server that records every POST body and answers 200.
async fn webhook(listener: TcpListener, received: Received) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = sock.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                if buf.len() < end + 4 + len {
                    continue;
                }
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                received.lock().unwrap().push((path, body));
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                return;
            }
        });
    }
}

/// Kills the Alertmanager this test started, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `probe` every 200 ms until it yields a value or `timeout` passes.
async fn until<T>(what: &str, timeout: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn alertnames(received: &Received, path: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .flat_map(|(_, body)| body["alerts"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_tickets_reach_their_webhooks_and_a_page_inhibits_its_tickets() {
    // The config as shipped, with only the webhook address pointed at this test.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = listener.local_addr().unwrap().port();
    let received: Received = Arc::default();
    tokio::spawn(webhook(listener, received.clone()));
    let dir = TempDir::new("glasshouse-alertmanager");
    let shipped = std::fs::read_to_string(repo().alertmanager_config()).unwrap();
    assert!(shipped.contains("http://127.0.0.1:19095/"), "webhook address changed; update this test");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, shipped.replace("http://127.0.0.1:19095/", &format!("http://127.0.0.1:{hook_port}/"))).unwrap();

    let port = free_port();
    let _am = Child(
        std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run prometheus-alertmanager (deploy/local/stack install alertmanager)"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    until("the private Alertmanager to be ready", Duration::from_secs(30), async || {
        http.get(format!("{base}/-/ready")).send().await.ok().filter(|r| r.status().is_success())
    })
    .await;

    let id = uuid::Uuid::new_v4().simple().to_string();
    let service = format!("probe-{id}");
    let alert = |name: &str, severity: &str, slo: &str| {
        json!({
            "labels": {"alertname": name, "severity": severity, "service": service, "slo": slo},
            "annotations": {"summary": "routing probe", "description": "routing probe", "runbook_url": "alerts/runbooks/x.md"}
        })
    };
    let alerts = json!([
        alert("ProbeFastBurn", "page", "probe-slo"),
        alert("ProbeSlowBurn", "ticket", "probe-slo"),
        alert("ProbeOtherSlowBurn", "ticket", "other-slo"),
    ]);
    let r = http.post(format!("{base}/api/v2/alerts")).json(&alerts).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // The page goes to the page webhook; the unrelated ticket to the ticket webhook.
    until("the page at /alerts/page", Duration::from_secs(30), async || {
        alertnames(&received, "/alerts/page").contains(&"ProbeFastBurn".to_owned()).then_some(())
    })
    .await;
    until("the other SLO's ticket at /alerts/ticket", Duration::from_secs(30), async || {
        alertnames(&received, "/alerts/ticket").contains(&"ProbeOtherSlowBurn".to_owned()).then_some(())
    })
    .await;

    // The ticket of the paging SLO is suppressed by the page, and was never sent:
    // the ticket route flushed its other group already, this one had the same wait.
    let inhibited: Value =
        http.get(format!("{base}/api/v2/alerts?filter=alertname=\"ProbeSlowBurn\"")).send().await.unwrap().json().await.unwrap();
    let status = &inhibited[0]["status"];
    assert_eq!(status["state"], "suppressed", "{inhibited}");
    assert_eq!(status["inhibitedBy"].as_array().map(Vec::len), Some(1), "{inhibited}");
    assert!(!alertnames(&received, "/alerts/ticket").contains(&"ProbeSlowBurn".to_owned()));
    assert!(!alertnames(&received, "/alerts/page").iter().any(|n| n != "ProbeFastBurn"));
}
