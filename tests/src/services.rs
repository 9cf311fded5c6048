//! The three services as real processes (their debug binaries, built by
//! `cargo test --workspace`), on free ports, against scratch databases and a
//! topic prefix of their own, each exporting its telemetry to the stack under
//! its own `service.name`. End-to-end tests use this; every service process
//! is killed when the [`Saga`] is dropped.
//!
//! Chaos tests also start the saga against other backends ([`Backends`], e.g.
//! a private PostgreSQL they can stop) and kill, stop and restart single
//! services on the same port and settings ([`Saga::kill`], [`Saga::terminate`],
//! [`Saga::restart`]).
//!
//! Each service reads its own fault flag file, [`Saga::faults_file`]
//! (`<saga dir>/<service>/faults.json`, absolute, so no `GLASSHOUSE_HOME` is
//! needed); a test writes it to inject that service's faults at run time.

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
    /// Its environment, kept so [`Saga::restart`] starts it exactly as before.
    env: Vec<(String, String)>,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Which of the three services (for [`Saga::kill`] and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Order,
    Inventory,
    Notification,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Order, Part::Inventory, Part::Notification];

    pub fn name(self) -> &'static str {
        match self {
            Part::Order => "order",
            Part::Inventory => "inventory",
            Part::Notification => "notification",
        }
    }
}

/// Where the services' databases and broker are. [`Backends::shared`] is the
/// local stack with a scratch database per service; a chaos test passes the
/// addresses of a private instance it may stop.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    /// Order's database URL; `None`: a scratch database on the stack's PostgreSQL.
    pub orders_db_url: Option<String>,
    /// Inventory's database URL; `None`: a scratch database on the stack's MariaDB.
    pub inventory_db_url: Option<String>,
    /// Kafka bootstrap address; `None`: the stack's broker.
    pub kafka: Option<String>,
}

impl Backends {
    /// The shared local stack.
    pub fn shared() -> Self {
        Self::default()
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
    /// Order's database (scratch or private), for tests that read it directly.
    pub orders_db_url: String,
    /// Inventory's database (scratch or private).
    pub inventory_db_url: String,
    /// The Kafka bootstrap address the services use.
    pub kafka: String,
}

impl Saga {
    /// Starts inventory, order and notification and waits until each is ready.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(Backends::shared()).await
    }

    /// [`Saga::start`] against `backends` (the stack's where `None`).
    pub async fn start_on(backends: Backends) -> anyhow::Result<Self> {
        let shared_kafka = backends.kafka.is_none();
        for c in [KAFKA, FERRETDB, JAEGER_OTLP_GRPC, VICTORIALOGS, OPENSEARCH] {
            if c.name != KAFKA.name || shared_kafka {
                stack::require(c).await?;
            }
        }
        let kafka = backends.kafka.clone().unwrap_or_else(|| KAFKA.addr());
        let dir = std::env::temp_dir().join(stack::unique_name("saga"));
        std::fs::create_dir_all(&dir)?;
        let key = glasshouse_platform::auth::dev::SigningKey::generate_es256()?;
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, serde_json::to_string(&key.jwks())?)?;
        let orders_db = match backends.orders_db_url {
            Some(_) => None,
            None => Some(ScratchPg::new().await?),
        };
        let inventory_db = match backends.inventory_db_url {
            Some(_) => None,
            None => Some(ScratchMySql::new().await?),
        };
        let orders_db_url = backends.orders_db_url.clone().or_else(|| orders_db.as_ref().map(|d| d.url.clone())).unwrap_or_default();
        let inventory_db_url =
            backends.inventory_db_url.clone().or_else(|| inventory_db.as_ref().map(|d| d.url.clone())).unwrap_or_default();
        let mongo_db = stack::unique_name("saga");
        let prefix = format!("{}.", stack::unique_name("e2e"));

        let common = |group: &str| -> anyhow::Result<Vec<(String, String)>> {
            let flags = faults_file(&dir, group);
            if let Some(d) = flags.parent() {
                std::fs::create_dir_all(d)?;
            }
            Ok(vec![
                ("APP_AUTH__JWKS__FILE".into(), jwks.display().to_string()),
                ("APP_KAFKA__BROKERS".into(), kafka.clone()),
                ("APP_KAFKA__TOPIC_PREFIX".into(), prefix.clone()),
                ("APP_KAFKA__GROUP_ID".into(), format!("{prefix}{group}")),
                ("APP_KAFKA__PARTITIONS".into(), "2".into()),
                ("APP_TELEMETRY__TRACES__ENDPOINT".into(), JAEGER_OTLP_GRPC.http()),
                ("APP_TELEMETRY__LOGS__LOKI__URL".into(), format!("{}/insert", VICTORIALOGS.http())),
                ("APP_TELEMETRY__LOGS__ELASTICSEARCH__URL".into(), OPENSEARCH.http()),
                ("APP_TELEMETRY__LOGS__FLUSH_INTERVAL".into(), "200".into()),
                ("APP_FAULTS__FILE".into(), flags.display().to_string()),
            ])
        };
        let inv_port = free_port();
        let mut inv_env = common("inventory")?;
        inv_env.push(("APP_DATABASE__URL".into(), inventory_db_url.clone()));
        let inventory = spawn("inventory", inv_port, &dir, inv_env)?;

        let order_port = free_port();
        let mut order_env = common("order")?;
        order_env.push(("APP_DATABASE__URL".into(), orders_db_url.clone()));
        order_env.push(("APP_INVENTORY__BASE_URL".into(), format!("http://127.0.0.1:{inv_port}")));
        let order = spawn("order", order_port, &dir, order_env)?;

        let notif_port = free_port();
        let mut notif_env = common("notification")?;
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
            orders_db,
            inventory_db,
            mongo_db,
            orders_db_url,
            inventory_db_url,
            kafka,
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

    /// The fault flag file `part` reads (it may not exist yet: all flags off).
    pub fn faults_file(&self, part: Part) -> PathBuf {
        faults_file(&self.dir, part.name())
    }

    pub fn service(&self, part: Part) -> &Service {
        match part {
            Part::Order => &self.order,
            Part::Inventory => &self.inventory,
            Part::Notification => &self.notification,
        }
    }

    fn service_mut(&mut self, part: Part) -> &mut Service {
        match part {
            Part::Order => &mut self.order,
            Part::Inventory => &mut self.inventory,
            Part::Notification => &mut self.notification,
        }
    }

    /// SIGKILL: the process dies mid-whatever, no drain, no final commit.
    /// Returns once it has exited.
    pub async fn kill(&mut self, part: Part) -> anyhow::Result<()> {
        let s = self.service_mut(part);
        s.child.start_kill()?;
        s.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then waits up to `deadline` for the graceful exit; returns its
    /// exit status (`None` if it had to be SIGKILLed at the deadline).
    pub async fn terminate(&mut self, part: Part, deadline: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let s = self.service_mut(part);
        if let Some(pid) = s.child.id() {
            let sent = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status()?;
            anyhow::ensure!(sent.success(), "kill -TERM {pid} ({}) failed", s.name);
        }
        match tokio::time::timeout(deadline, s.child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => {
                s.child.start_kill()?;
                s.child.wait().await?;
                Ok(None)
            }
        }
    }

    /// Starts a service that [`Saga::kill`] or [`Saga::terminate`] stopped again,
    /// on the same port with the same settings (its log is appended to), and
    /// waits until it is ready.
    pub async fn restart(&mut self, part: Part) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let s = self.service_mut(part);
        anyhow::ensure!(s.child.try_wait()?.is_some(), "{} is still running: stop it before restarting it", s.name);
        let fresh = spawn_with(s.name, s.port, &dir, s.env.clone(), true)?;
        *s = fresh;
        self.wait_ready(self.service(part)).await
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

/// `<dir>/<service>/faults.json`: one flag file per service, like the local
/// stack's `etc/<service>/faults.json`.
fn faults_file(dir: &std::path::Path, service: &str) -> PathBuf {
    dir.join(service).join("faults.json")
}

fn spawn(name: &'static str, port: u16, dir: &std::path::Path, env: Vec<(String, String)>) -> anyhow::Result<Service> {
    spawn_with(name, port, dir, env, false)
}

/// Starts one service; `append` keeps the log of an earlier run of it.
fn spawn_with(name: &'static str, port: u16, dir: &std::path::Path, env: Vec<(String, String)>, append: bool) -> anyhow::Result<Service> {
    let log = dir.join(format!("{name}.log"));
    let out = if append { std::fs::File::options().create(true).append(true).open(&log)? } else { std::fs::File::create(&log)? };
    let child = Command::new(binary(&format!("glasshouse-{name}"))?)
        .envs(env.clone())
        .env("APP_HTTP__PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(std::fs::File::options().append(true).open(&log)?)
        .kill_on_drop(true)
        .spawn()?;
    Ok(Service { name, port, log, child, env })
}
