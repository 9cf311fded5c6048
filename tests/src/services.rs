//! The three services as real processes (their debug binaries, built by
//! `cargo test --workspace`), on free ports, against scratch databases and a
//! topic prefix of their own, each exporting its telemetry to the stack under
//! its own `service.name`. End-to-end tests use this; every service process
//! is killed when the [`Saga`] is dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::db::{ScratchMySql, ScratchPg};
use crate::poll;
use crate::stack::{self, FERRETDB, JAEGER_OTLP_GRPC, KAFKA, OPENSEARCH, VICTORIALOGS};

/// Where cargo put the workspace's binaries (next to this test executable).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe.parent().and_then(|d| d.parent()).ok_or_else(|| anyhow::anyhow!("no binary directory above {}", exe.display()))?;
    Ok(dir.to_path_buf())
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let p = bin_dir()?.join(name);
    anyhow::ensure!(
        p.exists(),
        "{} is missing: build the services first (`cargo build --workspace --bins`, which `make test` does)",
        p.display()
    );
    Ok(p)
}

/// A free loopback port (bound, then released for the service to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// One running service process.
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The three services, wired together.
pub struct Saga {
    pub order: Service,
    pub inventory: Service,
    pub notification: Service,
    pub prefix: String,
    pub key: glasshouse_platform::auth::dev::SigningKey,
    pub dir: PathBuf,
    orders_db: Option<ScratchPg>,
    inventory_db: Option<ScratchMySql>,
    pub mongo_db: String,
}

impl Saga {
    /// Starts inventory, order and notification and waits until each is ready.
    pub async fn start() -> anyhow::Result<Self> {
        for c in [KAFKA, FERRETDB, JAEGER_OTLP_GRPC, VICTORIALOGS, OPENSEARCH] {
            stack::require(c).await?;
        }
        let dir = std::env::temp_dir().join(stack::unique_name("saga"));
        std::fs::create_dir_all(&dir)?;
        let key = glasshouse_platform::auth::dev::SigningKey::generate_es256()?;
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, serde_json::to_string(&key.jwks())?)?;
        let orders_db = ScratchPg::new().await?;
        let inventory_db = ScratchMySql::new().await?;
        let mongo_db = stack::unique_name("saga");
        let prefix = format!("{}.", stack::unique_name("e2e"));

        let common = |group: &str| -> Vec<(String, String)> {
            vec![
                ("APP_AUTH__JWKS__FILE".into(), jwks.display().to_string()),
                ("APP_KAFKA__BROKERS".into(), KAFKA.addr()),
                ("APP_KAFKA__TOPIC_PREFIX".into(), prefix.clone()),
                ("APP_KAFKA__GROUP_ID".into(), format!("{prefix}{group}")),
                ("APP_KAFKA__PARTITIONS".into(), "2".into()),
                ("APP_TELEMETRY__TRACES__ENDPOINT".into(), JAEGER_OTLP_GRPC.http()),
                ("APP_TELEMETRY__LOGS__LOKI__URL".into(), format!("{}/insert", VICTORIALOGS.http())),
                ("APP_TELEMETRY__LOGS__ELASTICSEARCH__URL".into(), OPENSEARCH.http()),
                ("APP_TELEMETRY__LOGS__FLUSH_INTERVAL".into(), "200".into()),
            ]
        };
        let inv_port = free_port();
        let mut inv_env = common("inventory");
        inv_env.push(("APP_DATABASE__URL".into(), inventory_db.url.clone()));
        inv_env.push(("APP_FAULTS__FILE".into(), dir.join("faults.json").display().to_string()));
        let inventory = spawn("inventory", inv_port, &dir, inv_env)?;

        let order_port = free_port();
        let mut order_env = common("order");
        order_env.push(("APP_DATABASE__URL".into(), orders_db.url.clone()));
        order_env.push(("APP_INVENTORY__BASE_URL".into(), format!("http://127.0.0.1:{inv_port}")));
        let order = spawn("order", order_port, &dir, order_env)?;

        let notif_port = free_port();
        let mut notif_env = common("notification");
        notif_env.push(("APP_DATABASE__URL".into(), format!("mongodb://{}/", FERRETDB.addr())));
        notif_env.push(("APP_DATABASE__NAME".into(), mongo_db.clone()));
        let notification = spawn("notification", notif_port, &dir, notif_env)?;

        let saga = Self {
            order,
            inventory,
            notification,
            prefix,
            key,
            dir,
            orders_db: Some(orders_db),
            inventory_db: Some(inventory_db),
            mongo_db,
        };
        for s in [&saga.inventory, &saga.order, &saga.notification] {
            saga.wait_ready(s).await?;
        }
        Ok(saga)
    }

    async fn wait_ready(&self, s: &Service) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let url = s.url("/health/ready");
        let result = poll::until(&format!("{} to be ready", s.name), Duration::from_secs(90), Duration::from_millis(200), || {
            let (http, url) = (http.clone(), url.clone());
            async move { Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await;
        result.map_err(|e| {
            let tail = std::fs::read_to_string(&s.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(20).collect();
            e.context(format!(
                "{} log ({}), last lines:\n{}",
                s.name,
                s.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        })
    }

    pub fn token(&self, sub: &str, role: glasshouse_platform::auth::Role) -> String {
        self.key.mint(&glasshouse_platform::auth::dev::DevClaims::new(sub, vec![role], Duration::from_secs(900))).expect("mint a token")
    }

    /// Stops the services (SIGTERM, graceful) and drops the scratch databases.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for s in [&mut self.notification, &mut self.order, &mut self.inventory] {
            if let Some(pid) = s.child.id() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(20), s.child.wait()).await;
        }
        if let Some(db) = self.orders_db.take() {
            db.drop_db().await?;
        }
        if let Some(db) = self.inventory_db.take() {
            db.drop_db().await?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

fn spawn(name: &'static str, port: u16, dir: &std::path::Path, env: Vec<(String, String)>) -> anyhow::Result<Service> {
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(binary(&format!("glasshouse-{name}"))?)
        .envs(env)
        .env("APP_HTTP__PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?)
        .kill_on_drop(true)
        .spawn()?;
    Ok(Service { name, port, log, child })
}
