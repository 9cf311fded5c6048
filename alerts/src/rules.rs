//! The Prometheus rule-file format (groups of recording and alerting rules):
//! written by the generator and read back by the checks for every file in
//! `alerts/rules/`, generated or hand-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    /// Evaluation interval of this group; the global one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

/// One rule: exactly one of `record` and `alert` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Sorted, so generated files are byte-stable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A rule file read from disk.
#[derive(Debug, Clone)]
pub struct LoadedRules {
    pub path: PathBuf,
    pub file: RuleFile,
}

/// Reads and parses every `*.yaml` in `dir`, sorted by name (what the local
/// Prometheus loads: `rule_files: [<repo>/alerts/rules/*.yaml]`).
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<LoadedRules>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read rule directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("list {}", dir.display()))?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
            let file = parse(&text).with_context(|| format!("rule file {}", path.display()))?;
            Ok(LoadedRules { path, file })
        })
        .collect()
}

/// Parses one rule file and checks that every rule is either a recording or an alert.
pub fn parse(text: &str) -> anyhow::Result<RuleFile> {
    let file: RuleFile = serde_yaml::from_str(text).context("not a Prometheus rule file")?;
    for g in &file.groups {
        for r in &g.rules {
            if r.record.is_some() == r.alert.is_some() {
                bail!("group '{}': a rule must have exactly one of `record` and `alert` (expr: {})", g.name, r.expr);
            }
        }
    }
    Ok(file)
}

impl RuleFile {
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }
}

/// Every alerting rule across `files`, with the file it is in.
pub fn alerts(files: &[LoadedRules]) -> Vec<(&Path, &Rule)> {
    files.iter().flat_map(|f| f.file.rules().filter(|r| r.alert.is_some()).map(move |r| (f.path.as_path(), r))).collect()
}

/// Names of every recorded series across `files`.
pub fn recorded_names(files: &[LoadedRules]) -> std::collections::BTreeSet<String> {
    files.iter().flat_map(|f| f.file.rules().filter_map(|r| r.record.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_kinds_and_rejects_ambiguous_rules() {
        let f = parse(
            "groups:\n- name: g\n  rules:\n  - record: a:b:c\n    expr: up\n  - alert: X\n    expr: up == 0\n    for: 1m\n    labels: {severity: page}\n",
        )
        .unwrap();
        let rules: Vec<_> = f.rules().collect();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].for_.as_deref(), Some("1m"));
        assert_eq!(rules[1].labels["severity"], "page");

        let err = parse("groups:\n- name: g\n  rules:\n  - expr: up\n").unwrap_err().to_string();
        assert!(err.contains("exactly one of"), "{err}");
        let err = format!("{:#}", parse("groups:\n- name: g\n  rules:\n  - alert: X\n    expr: up\n    severity: page\n").unwrap_err());
        assert!(err.contains("unknown field `severity`"), "{err}");
    }
}
