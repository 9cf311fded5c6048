//! What the integration tests share: where the local stack listens, scratch
//! databases with random names on its real servers, unique topic prefixes,
//! polling with a deadline, and running the built binaries.
//!
//! (The `tests` crate has the same helpers; it is not a dependency here so
//! that it can depend on this crate without a cycle.)
#![allow(dead_code)]

use std::future::Future;
use std::process::Output;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _};

/// Database user and password the local stack creates (loopback-only dev secret).
pub const DB_USER: &str = "glasshouse";
pub const DB_PASSWORD: &str = "glasshouse";

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn postgres_server() -> String {
    format!("postgres://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{}", port("GH_POSTGRES_PORT", 5432))
}

pub fn mariadb_server() -> String {
    format!("mysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{}", port("GH_MARIADB_PORT", 3306))
}

pub fn mongo_url() -> String {
    format!("mongodb://127.0.0.1:{}/", port("GH_FERRETDB_PORT", 27017))
}

pub fn brokers() -> String {
    format!("127.0.0.1:{}", port("GH_KAFKA_PORT", 9092))
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh PostgreSQL database.
pub struct ScratchPg {
    pub name: String,
    pub url: String,
    pub pool: sqlx::PgPool,
}

impl ScratchPg {
    pub async fn new() -> anyhow::Result<Self> {
        let name = unique("ops");
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server())).await?;
        admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await?;
        let url = format!("{}/{name}", postgres_server());
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await?;
        Ok(Self { name, url, pool })
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server())).await?;
        // Retried while an autovacuum worker (the superuser's, which this role
        // may not end) is in the database: it leaves within moments.
        let sql = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match admin.execute(sql.as_str()).await {
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                other => return other.map(|_| ()).map_err(Into::into),
            }
        }
    }
}

/// A fresh MariaDB database.
pub struct ScratchMySql {
    pub name: String,
    pub url: String,
    pub pool: sqlx::MySqlPool,
}

impl ScratchMySql {
    pub async fn new() -> anyhow::Result<Self> {
        let name = unique("ops");
        let mut admin = sqlx::MySqlConnection::connect(&mariadb_server()).await?;
        admin.execute(format!("CREATE DATABASE `{name}`").as_str()).await?;
        let url = format!("{}/{name}", mariadb_server());
        let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(4).connect(&url).await?;
        Ok(Self { name, url, pool })
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut admin = sqlx::MySqlConnection::connect(&mariadb_server()).await?;
        admin.execute(format!("DROP DATABASE IF EXISTS `{}`", self.name).as_str()).await?;
        Ok(())
    }
}

/// Calls `probe` until it returns `Some`, failing after `timeout` with `what`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A finished run of one of this crate's binaries.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `exe` with `args` and no `APP_*` settings from this environment, off
/// the async runtime's threads.
pub async fn run(exe: &str, args: &[&str]) -> Run {
    let exe = exe.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out: Output = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(&args);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("APP_")) {
            cmd.env_remove(k);
        }
        cmd.output().expect("run the binary")
    })
    .await
    .expect("join");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "the binary panicked: {run:?}");
    run
}
