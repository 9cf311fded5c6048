//! Grafana provisioning files under `dashboards/provisioning/`: which
//! datasource UIDs exist (the dashboards may reference them), and that the
//! files themselves name no instance URL (Grafana expands `$VAR` in them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct DatasourcesFile {
    #[serde(rename = "apiVersion")]
    api_version: u32,
    datasources: Vec<Datasource>,
}

/// The fields of a provisioned datasource the checks need.
#[derive(Debug, Clone, Deserialize)]
pub struct Datasource {
    pub name: String,
    pub uid: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, rename = "jsonData")]
    pub json_data: serde_yaml::Value,
}

#[derive(Debug, Deserialize)]
struct DashboardsFile {
    #[serde(rename = "apiVersion")]
    api_version: u32,
    providers: Vec<serde_yaml::Value>,
}

/// Every datasource provisioned in `<dir>/datasources/*.yaml`, by UID.
/// Fails on a file that is not provisioning YAML, a UID twice, or a URL that
/// is not taken from the environment.
pub fn datasources(dir: &Path) -> anyhow::Result<BTreeMap<String, Datasource>> {
    let mut out = BTreeMap::new();
    for path in yaml_files(&dir.join("datasources"))? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let file: DatasourcesFile =
            serde_yaml::from_str(&text).with_context(|| format!("{} is not Grafana datasource provisioning", path.display()))?;
        if file.api_version != 1 {
            bail!("{}: apiVersion {} (Grafana reads 1)", path.display(), file.api_version);
        }
        for ds in file.datasources {
            if !ds.url.starts_with('$') {
                bail!("{}: datasource {} has url '{}': take it from the environment (${{GH_..._URL}})", path.display(), ds.uid, ds.url);
            }
            if out.contains_key(&ds.uid) {
                bail!("{}: datasource uid {} provisioned twice", path.display(), ds.uid);
            }
            out.insert(ds.uid.clone(), ds);
        }
    }
    if out.is_empty() {
        bail!("no datasources provisioned under {}", dir.join("datasources").display());
    }
    Ok(out)
}

/// Checks `<dir>/dashboards/*.yaml` parse as dashboard providers; returns how many.
pub fn dashboard_providers(dir: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    for path in yaml_files(&dir.join("dashboards"))? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let file: DashboardsFile =
            serde_yaml::from_str(&text).with_context(|| format!("{} is not Grafana dashboard provisioning", path.display()))?;
        if file.api_version != 1 {
            bail!("{}: apiVersion {} (Grafana reads 1)", path.display(), file.api_version);
        }
        for p in &file.providers {
            if p["type"].as_str() != Some("file") || p["options"]["path"].as_str().is_none() {
                bail!("{}: every provider needs type: file and options.path", path.display());
            }
        }
        n += file.providers.len();
    }
    Ok(n)
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    paths.sort();
    Ok(paths)
}
