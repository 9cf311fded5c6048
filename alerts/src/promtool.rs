//! Runs Prometheus' `promtool` and Alertmanager's `amtool`: the real parsers
//! and evaluators decide whether rules, unit tests and the Alertmanager config
//! are valid, not a re-implementation of them.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// `promtool`, or the binary named by `$PROMTOOL` (for a Prometheus elsewhere).
fn promtool() -> String {
    std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned())
}

/// `amtool`, or the binary named by `$AMTOOL`.
fn amtool() -> String {
    std::env::var("AMTOOL").unwrap_or_else(|_| "amtool".to_owned())
}

/// Runs `program args...`; Ok(stdout) on exit 0 (stderr holds only warnings
/// then), else an error carrying both streams.
fn run(program: &str, args: &[OsString], install_hint: &str) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("cannot run `{program}` ({install_hint})"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("`{program} {}` failed ({}):\n{stdout}{stderr}", display_args(args), out.status);
    }
    Ok(stdout)
}

fn display_args(args: &[OsString]) -> String {
    args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

const PROMTOOL_HINT: &str = "it comes with Prometheus: `deploy/local/stack install prometheus`";
const AMTOOL_HINT: &str = "it comes with Alertmanager: `deploy/local/stack install alertmanager`";

/// `promtool check rules FILE...`: syntax, PromQL and template validity.
pub fn check_rules(files: &[&Path]) -> anyhow::Result<String> {
    let mut args: Vec<OsString> = vec!["check".into(), "rules".into()];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    run(&promtool(), &args, PROMTOOL_HINT)
}

/// `promtool test rules FILE...`: evaluates the unit tests' input series and
/// compares the alerts and expressions they expect, labels and annotations exactly.
pub fn test_rules(files: &[&Path]) -> anyhow::Result<String> {
    let mut args: Vec<OsString> = vec!["test".into(), "rules".into()];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    run(&promtool(), &args, PROMTOOL_HINT)
}

/// `amtool check-config FILE`.
pub fn amtool_check_config(file: &Path) -> anyhow::Result<String> {
    run(&amtool(), &["check-config".into(), file.as_os_str().to_owned()], AMTOOL_HINT)
}

/// `amtool config routes test --config.file=FILE label=value...`: the receiver
/// names an alert with these labels is routed to (one per line in amtool's output).
pub fn amtool_route(file: &Path, labels: &[(&str, &str)]) -> anyhow::Result<Vec<String>> {
    let mut config = OsString::from("--config.file=");
    config.push(file.as_os_str());
    let mut args: Vec<OsString> = vec!["config".into(), "routes".into(), "test".into(), config];
    args.extend(labels.iter().map(|(k, v)| OsString::from(format!("{k}={v}"))));
    let out = run(&amtool(), &args, AMTOOL_HINT)?;
    Ok(out.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
}
