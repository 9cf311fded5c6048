//! A private instance of some stack components (PostgreSQL, MariaDB, Kafka,
//! FerretDB on its own PostgreSQL), for tests that stop a backend on purpose.
//!
//! The shared stack on the default ports serves every other developer's and
//! test's work at the same time: stopping its PostgreSQL would break them. So a
//! chaos test starts its own instance of the component it will stop, with
//! `deploy/local/stack` itself (the same start-up, readiness checks, role and
//! database setup as the shared one), under a home of its own in the temporary
//! directory, on free loopback ports. The stack's `GH_CACHE_HOME` makes that
//! home borrow the shared home's cached builds (Kafka's jars) read-only, so
//! nothing is downloaded or built again.
//!
//! The instance is stopped and its home deleted by [`PrivateStack::shutdown`],
//! or on drop if the test failed first.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::services::free_port;
use crate::stack::{self, DB_PASSWORD, DB_USER};

/// Components a private stack can run (the stack script's names).
pub const POSTGRES: &str = "postgres";
pub const MARIADB: &str = "mariadb";
pub const KAFKA: &str = "kafka";
/// FerretDB; its backend is the instance's own [`POSTGRES`], which `stack up ferretdb` starts first.
pub const FERRETDB: &str = "ferretdb";

/// A private stack home with some components running.
pub struct PrivateStack {
    home: PathBuf,
    cache_home: PathBuf,
    /// `GH_*_PORT` values of this instance.
    ports: Vec<(&'static str, u16)>,
    components: Vec<&'static str>,
    /// False once [`PrivateStack::shutdown`] ran, so drop has nothing left to do.
    live: bool,
}

impl PrivateStack {
    /// Starts `components` (any of [`POSTGRES`], [`MARIADB`], [`KAFKA`],
    /// [`FERRETDB`]) on free ports and waits until each is ready (`stack up` does).
    pub async fn start(components: &[&'static str]) -> anyhow::Result<Self> {
        for c in components {
            anyhow::ensure!(
                [POSTGRES, MARIADB, KAFKA, FERRETDB].contains(c),
                "a private stack runs postgres, mariadb, kafka or ferretdb, not {c}"
            );
        }
        let cache_home = stack::home()?;
        anyhow::ensure!(
            cache_home.join("stamps").is_dir(),
            "the shared stack home {} has no cached builds: run `deploy/local/stack up` first",
            cache_home.display()
        );
        let home = std::env::temp_dir().join(stack::unique_name("gh-private"));
        std::fs::create_dir_all(&home)?;
        let ports = vec![
            ("GH_POSTGRES_PORT", free_port()),
            ("GH_MARIADB_PORT", free_port()),
            ("GH_KAFKA_PORT", free_port()),
            ("GH_KAFKA_CONTROLLER_PORT", free_port()),
            ("GH_FERRETDB_PORT", free_port()),
        ];
        let me = Self { home, cache_home, ports, components: components.to_vec(), live: true };
        me.stack(&[&["up"], components].concat()).await?;
        Ok(me)
    }

    fn port(&self, var: &str) -> u16 {
        self.ports.iter().find(|(v, _)| *v == var).map(|(_, p)| *p).expect("every port variable is set")
    }

    /// `postgres://…/orders`: the database `stack up` creates for Order.
    pub fn orders_db_url(&self) -> String {
        format!("postgres://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{}/orders", self.port("GH_POSTGRES_PORT"))
    }

    /// `mysql://…/inventory`: the database `stack up` creates for Inventory.
    pub fn inventory_db_url(&self) -> String {
        format!("mysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{}/inventory", self.port("GH_MARIADB_PORT"))
    }

    /// `mongodb://…/`: the instance's FerretDB.
    pub fn mongodb_url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port("GH_FERRETDB_PORT"))
    }

    /// The broker's bootstrap address.
    pub fn kafka(&self) -> String {
        format!("127.0.0.1:{}", self.port("GH_KAFKA_PORT"))
    }

    /// Where the instance keeps its logs (`logs/NAME.log`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Stops one component (`stack down NAME`: SIGTERM to its process group,
    /// SIGKILL after 30 s) and returns once it is gone.
    pub async fn stop(&self, component: &'static str) -> anyhow::Result<()> {
        self.stack(&["down", component]).await
    }

    /// Starts one component again on the same port and data, and returns once
    /// it is ready.
    pub async fn start_again(&self, component: &'static str) -> anyhow::Result<()> {
        self.stack(&["up", component]).await
    }

    /// Stops everything and deletes the home.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let components = self.components.clone();
        self.stack(&[&["down"], components.as_slice()].concat()).await?;
        self.live = false;
        // remove_dir_all does not follow the bin/ opt/ stamps/ links into the shared home.
        std::fs::remove_dir_all(&self.home)?;
        Ok(())
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(stack::repo_root().join("deploy/local/stack"))
            .args(args)
            .env("GLASSHOUSE_HOME", &self.home)
            .env("GH_CACHE_HOME", &self.cache_home)
            .envs(self.ports.iter().map(|(v, p)| (*v, p.to_string())));
        cmd
    }

    async fn stack(&self, args: &[&str]) -> anyhow::Result<()> {
        let start = Instant::now();
        let out = tokio::process::Command::from(self.command(args)).output().await?;
        anyhow::ensure!(
            out.status.success(),
            "private stack `{}` failed after {:?} (home {}):\n{}",
            args.join(" "),
            start.elapsed(),
            self.home.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        tracing::info!(command = args.join(" "), took = ?start.elapsed(), "private stack");
        Ok(())
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        let mut args = vec!["down"];
        args.extend(self.components.iter().copied());
        let _ = self.command(&args).output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
