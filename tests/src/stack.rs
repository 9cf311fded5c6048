//! Where the local stack listens, and a clear failure when a piece is missing.
//!
//! Defaults match `deploy/local/ports.env`; each can be overridden with the same
//! environment variable name, so the tests can point at another stack.

use std::time::Duration;

/// One backend of the local stack, as the tests see it.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// The name `deploy/local/stack` knows it by (`stack up NAME`, `stack logs NAME`).
    pub name: &'static str,
    /// Environment variable holding the port.
    pub port_var: &'static str,
    /// Default port, as in `deploy/local/ports.env`.
    pub default_port: u16,
}

impl Component {
    pub fn port(&self) -> u16 {
        std::env::var(self.port_var).ok().and_then(|v| v.parse().ok()).unwrap_or(self.default_port)
    }

    /// `127.0.0.1:<port>`; the stack only ever listens on loopback.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr())
    }
}

pub const POSTGRES: Component = Component { name: "postgres", port_var: "GH_POSTGRES_PORT", default_port: 5432 };
pub const MARIADB: Component = Component { name: "mariadb", port_var: "GH_MARIADB_PORT", default_port: 3306 };
pub const FERRETDB: Component = Component { name: "ferretdb", port_var: "GH_FERRETDB_PORT", default_port: 27017 };
pub const KAFKA: Component = Component { name: "kafka", port_var: "GH_KAFKA_PORT", default_port: 9092 };
pub const JAEGER_OTLP_GRPC: Component = Component { name: "jaeger", port_var: "GH_JAEGER_OTLP_GRPC_PORT", default_port: 4317 };
pub const JAEGER_QUERY: Component = Component { name: "jaeger", port_var: "GH_JAEGER_QUERY_PORT", default_port: 16686 };
pub const PROMETHEUS: Component = Component { name: "prometheus", port_var: "GH_PROMETHEUS_PORT", default_port: 9090 };
pub const ALERTMANAGER: Component = Component { name: "alertmanager", port_var: "GH_ALERTMANAGER_PORT", default_port: 9093 };
pub const VICTORIALOGS: Component = Component { name: "victorialogs", port_var: "GH_VICTORIALOGS_PORT", default_port: 9428 };
pub const OPENSEARCH: Component = Component { name: "opensearch", port_var: "GH_OPENSEARCH_PORT", default_port: 9200 };
/// The trace UI: Zipkin and its Lens UI (`/zipkin/`), fed by Jaeger.
pub const ZIPKIN: Component = Component { name: "zipkin", port_var: "GH_ZIPKIN_PORT", default_port: 9411 };
pub const POSTGRES_EXPORTER: Component = Component { name: "postgres-exporter", port_var: "GH_POSTGRES_EXPORTER_PORT", default_port: 9187 };
pub const MYSQLD_EXPORTER: Component = Component { name: "mysqld-exporter", port_var: "GH_MYSQLD_EXPORTER_PORT", default_port: 9104 };
pub const KAFKA_EXPORTER: Component = Component { name: "kafka-exporter", port_var: "GH_KAFKA_EXPORTER_PORT", default_port: 9308 };

/// Database user the stack creates on PostgreSQL and MariaDB.
pub const DB_USER: &str = "glasshouse";
/// Its password: a local, loopback-only development secret (see `deploy/local/README.md`).
pub const DB_PASSWORD: &str = "glasshouse";

/// Fails, naming the component and how to start it, unless something accepts
/// TCP connections on its port within a few seconds. Tests call this first so
/// that a missing backend is a clear failure, never a silent skip.
pub async fn require(component: Component) -> anyhow::Result<()> {
    let addr = component.addr();
    let deadline = Duration::from_secs(5);
    match tokio::time::timeout(deadline, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(missing(component, &addr, &e.to_string())),
        Err(_) => Err(missing(component, &addr, "connect timed out")),
    }
}

fn missing(component: Component, addr: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{name} is not reachable at {addr} ({why}). Start the local stack with \
         `deploy/local/stack up` (or just this piece: `deploy/local/stack up {name}`); \
         its log: `deploy/local/stack logs {name}`.",
        name = component.name
    )
}

/// A name unique to this test run, so parallel tests never share a database,
/// topic, index or collection.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The repository root (the tests crate lives in `<repo>/tests`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The stack's home directory (`deploy/local/stack home`): cached binaries in
/// `bin/`, rendered configs in `etc/`. `GLASSHOUSE_HOME` wins when set.
pub fn home() -> anyhow::Result<std::path::PathBuf> {
    if let Ok(dir) = std::env::var("GLASSHOUSE_HOME") {
        return Ok(dir.into());
    }
    let out = std::process::Command::new("bash").arg(repo_root().join("deploy/local/stack")).arg("home").output()?;
    anyhow::ensure!(out.status.success(), "`deploy/local/stack home` failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(std::path::PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// Where Prometheus picks up file-discovered scrape targets (one JSON file per
/// target group; see `render_prometheus` in `deploy/local/stack`).
/// `GH_PROMETHEUS_TARGETS_DIR` wins; otherwise it is under the stack's home.
pub fn prometheus_targets_dir() -> anyhow::Result<std::path::PathBuf> {
    if let Ok(dir) = std::env::var("GH_PROMETHEUS_TARGETS_DIR") {
        return Ok(dir.into());
    }
    Ok(home()?.join("etc/prometheus/targets"))
}

/// Registers `127.0.0.1:port` as a Prometheus scrape target of the `smoke` job
/// (scraped every second) with the label `smoke_run=<run>`, until dropped.
pub struct ScrapeTarget {
    file: std::path::PathBuf,
}

impl ScrapeTarget {
    pub fn register(port: u16, run: &str) -> anyhow::Result<Self> {
        let dir = prometheus_targets_dir()?.join("smoke");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{run}.json"));
        // Written whole then renamed, so Prometheus never reads half a file.
        let tmp = dir.join(format!(".{run}.tmp"));
        let body = serde_json::json!([{ "targets": [format!("127.0.0.1:{port}")], "labels": { "smoke_run": run } }]);
        std::fs::write(&tmp, body.to_string())?;
        std::fs::rename(&tmp, &file)?;
        Ok(Self { file })
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The result vector of a PromQL instant query against the stack's Prometheus
/// (`/api/v1/query`); an error if Prometheus does not answer `success`.
pub async fn prometheus_query(http: &reqwest::Client, promql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let resp: serde_json::Value = http
        .get(format!("{}/api/v1/query", PROMETHEUS.http()))
        .query(&[("query", promql)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(resp["status"] == "success", "query {promql} failed: {resp}");
    Ok(resp["data"]["result"].as_array().cloned().unwrap_or_default())
}
