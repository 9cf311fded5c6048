//! `glasshouse-dashboards`: generate the dashboards, and check them (structure,
//! then every PromQL target against Prometheus).
//!
//! Exit codes: 0 fine; 1 a check failed (structure problem, ERROR, or EMPTY
//! with --require-data); 2 bad input or Prometheus unreachable.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use glasshouse_alerts::duration::PromDuration;
use glasshouse_alerts::repo::Repo;
use glasshouse_dashboards::checker::{self, Options};

#[derive(Parser)]
#[command(name = "glasshouse-dashboards", about = "Grafana dashboards of Glasshouse: generate and check")]
struct Cli {
    /// Repository root (default: the workspace this binary was built from).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write dashboards/grafana/*.json from the catalog (and delete stale generated files).
    Generate,
    /// Check every dashboard: structure, then each PromQL query against Prometheus.
    /// Prints `dashboard / panel title -> OK | EMPTY | ERROR`.
    Check {
        /// Prometheus to run the queries against.
        #[arg(long, default_value = "http://127.0.0.1:9090", value_name = "URL")]
        prometheus: String,
        /// Structure only; query no Prometheus.
        #[arg(long)]
        offline: bool,
        /// A panel without any series fails the check (use after a load run).
        #[arg(long)]
        require_data: bool,
        /// How far back range queries look, as a Prometheus duration.
        #[arg(long, default_value = "30m", value_name = "DURATION")]
        lookback: String,
        /// Dashboards to check (default: dashboards/grafana).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Provisioning files (default: dashboards/provisioning).
        #[arg(long, value_name = "DIR")]
        provisioning: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let repo = Repo::locate(cli.root)?;
    match cli.command {
        Command::Generate => {
            let dir = glasshouse_dashboards::dashboards_dir(repo.root());
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let fresh = glasshouse_dashboards::render()?;
            for r in &fresh {
                let path = dir.join(&r.file_name);
                std::fs::write(&path, &r.contents).with_context(|| format!("write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            for path in glasshouse_dashboards::stale(&dir, &fresh)? {
                std::fs::remove_file(&path).with_context(|| format!("delete {}", path.display()))?;
                println!("deleted stale {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { prometheus, offline, require_data, lookback, dir, provisioning } => {
            let lookback = PromDuration::parse(&lookback).with_context(|| format!("invalid --lookback '{lookback}'"))?;
            let opts = Options {
                dashboards_dir: dir.unwrap_or_else(|| glasshouse_dashboards::dashboards_dir(repo.root())),
                provisioning_dir: provisioning.unwrap_or_else(|| glasshouse_dashboards::provisioning_dir(repo.root())),
                prometheus: (!offline).then_some(prometheus),
                require_data,
                lookback: Duration::from_millis(lookback.as_millis()),
            };
            let contract = repo.contract()?;
            let report = checker::run(&opts, &contract).await?;
            for line in &report.lines {
                println!("{line}");
            }
            println!("{}", report.summary());
            Ok(if report.failed(require_data) { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}
