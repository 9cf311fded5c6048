//! `glasshouse-alerts`: generate the SLO rule files and check everything in `alerts/`.
//!
//! Exit codes: 0 fine, 1 `check` found problems, 2 bad input (a message names it).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use glasshouse_alerts::generate::{self, Options};
use glasshouse_alerts::repo::Repo;
use glasshouse_alerts::{checks, promtool, rules, spec};

#[derive(Parser)]
#[command(name = "glasshouse-alerts", about = "SLO rule generator and checks for alerts/")]
struct Cli {
    /// Repository root (default: the workspace this binary was built from).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write alerts/rules/slo-*.yaml from alerts/slos/*.yaml (and delete stale generated files).
    Generate {
        /// TEST OVERRIDE: divide every window and the budget period by N (N >= 1).
        /// Requires --out; never writes into alerts/rules/.
        #[arg(long, default_value_t = 1, value_name = "N")]
        time_scale: u32,
        /// Directory to write to (default: alerts/rules/). Created if missing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Check that generated files are current, every alert has labels, annotations,
    /// a runbook and promtool cases, every query keeps the naming contract, and that
    /// promtool and amtool accept the rules, the unit tests and the Alertmanager config.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let repo = Repo::locate(cli.root)?;
    match cli.command {
        Command::Generate { time_scale, out } => generate_cmd(&repo, time_scale, out),
        Command::Check => check_cmd(&repo),
    }
}

fn generate_cmd(repo: &Repo, time_scale: u32, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if time_scale == 0 {
        bail!("invalid --time-scale 0: must be at least 1");
    }
    let rules_dir = repo.rules_dir();
    let out_dir = out.clone().unwrap_or_else(|| rules_dir.clone());
    if time_scale != 1 {
        if out.is_none() {
            bail!("--time-scale {time_scale} needs --out DIR: shortened windows never go to alerts/rules/");
        }
        // A directory that does not exist yet cannot be alerts/rules/, which does.
        let same = std::fs::canonicalize(&out_dir).is_ok_and(|o| std::fs::canonicalize(&rules_dir).is_ok_and(|r| o == r));
        if same {
            bail!("--out {} is alerts/rules/: shortened windows never go there", out_dir.display());
        }
    }
    let specs = spec::load_dir(&repo.slos_dir())?;
    let files = generate::generate(&specs, Options { time_scale })?;
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    for f in &files {
        let path = out_dir.join(&f.file_name);
        std::fs::write(&path, &f.contents).with_context(|| format!("write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if out_dir == rules_dir {
        let expected: BTreeSet<String> = files.iter().map(|f| f.file_name.clone()).collect();
        for stale in checks::stale_generated(repo, &expected)? {
            std::fs::remove_file(&stale).with_context(|| format!("delete {}", stale.display()))?;
            println!("deleted stale {}", stale.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_cmd(repo: &Repo) -> anyhow::Result<ExitCode> {
    let mut problems = checks::all_static(repo)?;
    let rule_files: Vec<PathBuf> = rules::load_dir(&repo.rules_dir())?.into_iter().map(|f| f.path).collect();
    let rule_refs: Vec<&std::path::Path> = rule_files.iter().map(PathBuf::as_path).collect();
    if let Err(e) = promtool::check_rules(&rule_refs) {
        problems.push(format!("{e:#}"));
    }
    let tests = checks::unit_test_files(repo)?;
    let test_refs: Vec<&std::path::Path> = tests.iter().map(PathBuf::as_path).collect();
    if let Err(e) = promtool::test_rules(&test_refs) {
        problems.push(format!("{e:#}"));
    }
    if let Err(e) = promtool::amtool_check_config(&repo.alertmanager_config()) {
        problems.push(format!("{e:#}"));
    }
    if problems.is_empty() {
        println!("ok: {} rule files, {} promtool test files, Alertmanager config", rule_files.len(), tests.len());
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("FAIL {p}");
        }
        println!("{} problem(s)", problems.len());
        Ok(ExitCode::from(1))
    }
}
