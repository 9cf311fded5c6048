//! Grafana dashboards (JSON under `dashboards/grafana/`, generated from
//! [`catalog`]), their provisioning files (`dashboards/provisioning/`), and the
//! checker that validates their structure and runs every panel query against
//! Prometheus.
//!
//! Grafana itself is AGPL and never runs here: the dashboards are proven by
//! evaluating every PromQL target against the real Prometheus of the local stack.
//!
//! # Layout
//! - [`build`]: a builder for Grafana dashboard JSON (panels, queries, variables, layout).
//! - [`catalog`]: the dashboards themselves.
//! - [`model`]: reads dashboard JSON: panels (rows included) and their queries.
//! - [`vars`]: template-variable substitution (`$var`, `$__rate_interval`, ...).
//! - [`structure`]: backend-free checks of one dashboard.
//! - [`provisioning`]: reads the datasource and dashboard provisioning files.
//! - [`prom`]: runs a query against Prometheus and classifies the answer.
//! - [`checker`]: all of it over a directory, one line per panel.
#![forbid(unsafe_code)]

pub mod build;
pub mod catalog;
pub mod checker;
pub mod infra;
pub mod model;
pub mod prom;
pub mod provisioning;
pub mod structure;
pub mod vars;

use std::path::{Path, PathBuf};

/// One rendered dashboard file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `<stem>.json`.
    pub file_name: String,
    pub contents: String,
}

/// Renders every dashboard of the [`catalog`] as pretty JSON (stable key order),
/// ending in a newline.
pub fn render() -> anyhow::Result<Vec<Rendered>> {
    catalog::all()
        .into_iter()
        .map(|(stem, json)| {
            let mut contents = serde_json::to_string_pretty(&sorted_keys(json))?;
            contents.push('\n');
            Ok(Rendered { file_name: format!("{stem}.json"), contents })
        })
        .collect()
}

/// The same JSON with every object's keys in sorted order. serde_json keeps
/// insertion order when any crate in the build enables its `preserve_order`
/// feature (feature unification in a workspace build) and sorts otherwise;
/// sorting here makes the generated files identical either way.
fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

/// Where the dashboards live under a repository root.
pub fn dashboards_dir(root: &Path) -> PathBuf {
    root.join("dashboards/grafana")
}

/// Where the provisioning files live under a repository root.
pub fn provisioning_dir(root: &Path) -> PathBuf {
    root.join("dashboards/provisioning")
}

/// Differences between the files in `dir` and a fresh [`render`]: changed,
/// missing, and generated files no dashboard produces any more.
pub fn drift(dir: &Path) -> anyhow::Result<Vec<String>> {
    let fresh = render()?;
    let mut problems = Vec::new();
    for r in &fresh {
        let path = dir.join(&r.file_name);
        match std::fs::read_to_string(&path) {
            Ok(text) if text == r.contents => {}
            Ok(_) => problems.push(format!(
                "{} differs from what the catalog generates; run `cargo run -p glasshouse-dashboards -- generate`",
                path.display()
            )),
            Err(_) => problems.push(format!("{} is missing; run `cargo run -p glasshouse-dashboards -- generate`", path.display())),
        }
    }
    for path in stale(dir, &fresh)? {
        problems.push(format!("{} is generated but no dashboard produces it any more", path.display()));
    }
    Ok(problems)
}

/// Generated dashboard files in `dir` (their description starts with the
/// generated marker) that `fresh` does not contain.
pub fn stale(dir: &Path, fresh: &[Rendered]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".json") || fresh.iter().any(|r| r.file_name == name) {
            continue;
        }
        let generated = model::DashboardFile::read(&path)
            .ok()
            .and_then(|d| d.json["description"].as_str().map(|s| s.starts_with(build::GENERATED_MARKER)))
            .unwrap_or(false);
        if generated {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
