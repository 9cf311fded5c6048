//! Reading Grafana dashboard JSON as the checker needs it: every panel
//! (including those nested in collapsed rows) and every query of a panel, with
//! the datasource it runs against.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// One dashboard file.
#[derive(Debug, Clone)]
pub struct DashboardFile {
    pub path: PathBuf,
    pub json: Value,
}

impl DashboardFile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let json: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        anyhow::ensure!(json.is_object(), "{} is not a JSON object", path.display());
        Ok(Self { path: path.to_path_buf(), json })
    }

    pub fn title(&self) -> String {
        self.json["title"].as_str().map(str::to_owned).unwrap_or_else(|| self.path.display().to_string())
    }

    /// Every panel, rows' nested panels included, in document order.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for p in self.json["panels"].as_array().into_iter().flatten() {
            out.push(p);
            for nested in p["panels"].as_array().into_iter().flatten() {
                out.push(nested);
            }
        }
        out
    }

    /// The template variables (`templating.list`).
    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"].as_array().map(|l| l.iter().collect()).unwrap_or_default()
    }
}

/// Every `*.json` in `dir`, sorted; a file that does not parse is an error naming it.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Result<DashboardFile, (PathBuf, String)>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read dashboard directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("list {}", dir.display()))?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "json"));
    paths.sort();
    Ok(paths.into_iter().map(|p| DashboardFile::read(&p).map_err(|e| (p, format!("{e:#}")))).collect())
}

/// Panel types that hold no queries.
pub fn is_layout_only(panel: &Value) -> bool {
    matches!(panel["type"].as_str(), Some("row" | "text" | "news" | "dashlist"))
}

/// One query of a panel, with the datasource it resolves to.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub ref_id: String,
    /// The target's own datasource, else the panel's.
    pub datasource: Option<&'a Value>,
    /// `expr` (Prometheus, Loki) or `query` (Elasticsearch).
    pub text: String,
    pub instant: bool,
    pub exemplar: bool,
}

impl Query<'_> {
    /// The datasource plugin type (`prometheus`, `loki`, ...), if declared.
    pub fn datasource_type(&self) -> Option<&str> {
        self.datasource.and_then(|d| d["type"].as_str())
    }
}

pub fn queries(panel: &Value) -> Vec<Query<'_>> {
    let panel_ds = panel.get("datasource").filter(|d| !d.is_null());
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Query {
            ref_id: t["refId"].as_str().unwrap_or_default().to_owned(),
            datasource: t.get("datasource").filter(|d| !d.is_null()).or(panel_ds),
            text: t["expr"].as_str().or_else(|| t["query"].as_str()).unwrap_or_default().to_owned(),
            instant: t["instant"].as_bool().unwrap_or(false) && !t["range"].as_bool().unwrap_or(false),
            exemplar: t["exemplar"].as_bool().unwrap_or(false),
        })
        .collect()
}

pub fn panel_title(panel: &Value) -> String {
    panel["title"].as_str().filter(|t| !t.is_empty()).map(str::to_owned).unwrap_or_else(|| format!("panel id {}", panel["id"]))
}
