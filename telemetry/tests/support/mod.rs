//! Shared plumbing of the telemetry tests: the demo binary's three roles as
//! child processes, Kafka topics, and private instances of real backends.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tokio::process::{Child, Command};

pub const DEMO: &str = env!("CARGO_BIN_EXE_glasshouse-telemetry-demo");

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(stack::unique_name(prefix));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn create_topic(topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    for r in admin.create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("create topic {t}: {e}"))?;
    }
    Ok(())
}

pub async fn delete_topic(topic: &str) {
    if let Ok(admin) = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create::<AdminClient<DefaultClientContext>>() {
        let _ = admin.delete_topics(&[topic], &AdminOptions::new()).await;
    }
}

fn demo(args: &[&str], telemetry_json: Option<&str>, log: &Path) -> anyhow::Result<Child> {
    let mut cmd = Command::new(DEMO);
    cmd.args(args).stdin(Stdio::null()).stdout(std::fs::File::create(log)?).stderr(Stdio::inherit()).kill_on_drop(true);
    if let Some(json) = telemetry_json {
        cmd.env("GLASSHOUSE_TELEMETRY", json);
    }
    Ok(cmd.spawn()?)
}

/// The `serve` role, running; its port is read from the file it writes once listening.
pub struct Served {
    pub child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

pub async fn serve(service: &str, topic: &str, telemetry_json: Option<&str>) -> anyhow::Result<Served> {
    let dir = TempDir::new("demo-serve");
    let port_file = dir.path().join("port");
    let child =
        demo(&["serve", service, port_file.to_str().unwrap(), &KAFKA.addr(), topic], telemetry_json, &dir.path().join("stdout.log"))?;
    let port = poll::until("the demo server's port file", Duration::from_secs(30), Duration::from_millis(50), || {
        let port_file = port_file.clone();
        async move { Ok(std::fs::read_to_string(&port_file).ok().and_then(|s| s.trim().parse::<u16>().ok())) }
    })
    .await?;
    let served = Served { child, port, _dir: dir };
    let http = reqwest::Client::new();
    let live = served.url("/health/live");
    poll::until("the demo server to answer", Duration::from_secs(30), Duration::from_millis(50), || {
        let (http, live) = (http.clone(), live.clone());
        async move { Ok(http.get(&live).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
    })
    .await?;
    Ok(served)
}

pub fn consume(service: &str, topic: &str, log: &Path) -> anyhow::Result<Child> {
    demo(&["consume", service, &KAFKA.addr(), topic, &stack::unique_name("demo-group")], None, log)
}

/// Runs the `call` role to completion and returns the trace id it started.
pub async fn call(service: &str, url: &str, telemetry_json: Option<&str>) -> anyhow::Result<String> {
    let dir = TempDir::new("demo-call");
    let log = dir.path().join("stdout.log");
    let mut child = demo(&["call", service, url], telemetry_json, &log)?;
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await??;
    let out = std::fs::read_to_string(&log)?;
    anyhow::ensure!(status.success(), "demo call failed ({status}):\n{out}");
    let last =
        out.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok().filter(|v| v.get("demo_trace_id").is_some()));
    let id = last.and_then(|v| v["demo_trace_id"].as_str().map(str::to_owned)).unwrap_or_default();
    anyhow::ensure!(id.len() == 32, "no trace id printed by the demo client:\n{out}");
    Ok(id)
}

/// A free loopback port (bound then released; the next bind races only with
/// other processes picking ephemeral ports, which the kernel hands out in order).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Fetches a trace from a Jaeger query API; `None` while it is not there yet.
pub async fn jaeger_trace(http: &reqwest::Client, base: &str, trace_id: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let resp = http.get(format!("{base}/api/traces/{trace_id}")).send().await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let v: serde_json::Value = resp.error_for_status()?.json().await?;
    Ok(v["data"].get(0).cloned())
}

/// LogsQL query on a VictoriaLogs instance, after a force-flush.
pub async fn logsql(http: &reqwest::Client, base: &str, query: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    http.get(format!("{base}/internal/force_flush")).send().await?.error_for_status()?;
    let body = http.post(format!("{base}/select/logsql/query")).form(&[("query", query)]).send().await?.error_for_status()?.text().await?;
    Ok(body.lines().filter(|l| !l.trim().is_empty()).filter_map(|l| serde_json::from_str(l).ok()).collect())
}
