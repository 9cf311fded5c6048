//! The consistency checks over the files in `alerts/`, each returning the list
//! of problems it found (empty = fine), so the CLI can print them all at once
//! and the tests can assert on them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context;

use crate::generate::{self, GENERATED_MARKER, Options, RUNBOOK_DIR};
use crate::repo::Repo;
use crate::rules::{self, LoadedRules};
use crate::spec;

/// Headings every runbook must have, in this order: what the alert means, who
/// is hurt, where to look, what to query, why it usually happens, what to do.
pub const RUNBOOK_SECTIONS: [&str; 6] = ["## Meaning", "## Impact", "## Dashboards", "## Queries", "## Likely causes", "## Mitigation"];

/// Every severity the Alertmanager config routes.
pub const SEVERITIES: [&str; 2] = ["page", "ticket"];

/// Differences between `alerts/rules/` and what the specs generate now:
/// changed, missing and stale generated files.
pub fn generated_drift(repo: &Repo) -> anyhow::Result<Vec<String>> {
    let specs = spec::load_dir(&repo.slos_dir())?;
    let fresh = generate::generate(&specs, Options::default())?;
    let mut problems = Vec::new();
    let mut expected = BTreeSet::new();
    for f in &fresh {
        expected.insert(f.file_name.clone());
        let path = repo.rules_dir().join(&f.file_name);
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == f.contents => {}
            Ok(on_disk) => problems.push(format!(
                "{} differs from what its spec generates (first differing line {}); run `cargo run -p glasshouse-alerts -- generate`",
                repo.display(&path),
                first_difference(&on_disk, &f.contents)
            )),
            Err(_) => problems.push(format!("{} is missing; run `cargo run -p glasshouse-alerts -- generate`", repo.display(&path))),
        }
    }
    for path in stale_generated(repo, &expected)? {
        problems.push(format!("{} is generated but no spec produces it any more; delete it (generate does)", repo.display(&path)));
    }
    Ok(problems)
}

/// Files in `alerts/rules/` that carry the generated marker but are not in `expected`.
pub fn stale_generated(repo: &Repo, expected: &BTreeSet<String>) -> anyhow::Result<Vec<PathBuf>> {
    let dir = repo.rules_dir();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".yaml") || expected.contains(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        if text.starts_with(GENERATED_MARKER) {
            stale.push(path);
        }
    }
    stale.sort();
    Ok(stale)
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or_else(|| a.lines().count().min(b.lines().count())) + 1
}

/// Every alert's labels and annotations, and its runbook: `severity` is page or
/// ticket; `summary` is set; `description` is templated; `runbook_url` is
/// `alerts/runbooks/<AlertName>.md` and that file exists with every section.
/// Also: no runbook without an alert, no alert name twice.
pub fn alert_problems(repo: &Repo, files: &[LoadedRules]) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (path, rule) in rules::alerts(files) {
        let name = rule.alert.as_deref().unwrap_or_default();
        let at = format!("{name} ({})", repo.display(path));
        if !seen.insert(name.to_owned()) {
            problems.push(format!("{at}: alert name used twice; each alert needs its own runbook"));
        }
        match rule.labels.get("severity") {
            Some(s) if SEVERITIES.contains(&s.as_str()) => {}
            other => problems.push(format!("{at}: label severity is {other:?}, must be one of {SEVERITIES:?}")),
        }
        if rule.annotations.get("summary").is_none_or(|s| s.trim().is_empty()) {
            problems.push(format!("{at}: annotation summary is missing"));
        }
        match rule.annotations.get("description") {
            Some(d) if d.contains("{{") => {}
            _ => problems.push(format!("{at}: annotation description is missing or not templated (no `{{{{ ... }}}}`)")),
        }
        let expected_url = format!("{RUNBOOK_DIR}/{name}.md");
        if rule.annotations.get("runbook_url") != Some(&expected_url) {
            problems.push(format!("{at}: runbook_url is {:?}, must be {expected_url:?}", rule.annotations.get("runbook_url")));
        }
        let runbook = repo.root().join(&expected_url);
        match std::fs::read_to_string(&runbook) {
            Err(_) => problems.push(format!("{at}: runbook {expected_url} is missing")),
            Ok(text) => problems.extend(runbook_problems(&text).into_iter().map(|p| format!("{expected_url}: {p}"))),
        }
    }
    let dir = repo.runbooks_dir();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "md") && stem != "README" && !seen.contains(stem) {
            problems.push(format!("{}: runbook of an alert that no rule defines", repo.display(&path)));
        }
    }
    Ok(problems)
}

/// Missing or misordered sections of one runbook, and sections left empty.
pub fn runbook_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut last = 0;
    for section in RUNBOOK_SECTIONS {
        let Some(at) = text.lines().position(|l| l.trim_end() == section) else {
            problems.push(format!("section `{section}` is missing"));
            continue;
        };
        if at < last {
            problems.push(format!("section `{section}` is out of order"));
        }
        last = at;
        let body_has_text = text.lines().skip(at + 1).take_while(|l| !l.starts_with("## ")).any(|l| !l.trim().is_empty());
        if !body_has_text {
            problems.push(format!("section `{section}` is empty"));
        }
    }
    problems
}

/// Every rule expression against the naming contract (METRICS.md, proposals,
/// recorded names).
pub fn contract_problems(repo: &Repo, files: &[LoadedRules]) -> anyhow::Result<Vec<String>> {
    let contract = repo.contract()?;
    let mut problems = Vec::new();
    for f in files {
        for r in f.file.rules() {
            let name = r.record.as_deref().or(r.alert.as_deref()).unwrap_or_default();
            for p in contract.check_expr(&r.expr) {
                problems.push(format!("{} rule {name}: {p}", repo.display(&f.path)));
            }
        }
    }
    Ok(problems)
}

/// The ```promql blocks of every runbook against the naming contract, so the
/// queries a responder copies name series that exist.
pub fn runbook_query_problems(repo: &Repo) -> anyhow::Result<Vec<String>> {
    let contract = repo.contract()?;
    let dir = repo.runbooks_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "md"));
    paths.sort();
    let mut problems = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        for query in promql_blocks(&text) {
            for p in contract.check_expr(&query) {
                problems.push(format!("{}: query `{}`: {p}", repo.display(&path), query.trim()));
            }
        }
    }
    Ok(problems)
}

/// The bodies of the fenced code blocks tagged `promql` in a Markdown text.
pub fn promql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```promql") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(body), l) => {
                body.push_str(l);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// promtool unit tests, read back: per alert name, how many cases expect it
/// firing and how many expect it silent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    pub firing: usize,
    pub silent: usize,
}

/// Each alert has a firing and a silent case in `alerts/tests/promtool/`, and
/// each firing case asserts `severity` and `service` labels and all three
/// annotations (promtool then compares them exactly).
pub fn unit_test_problems(repo: &Repo, files: &[LoadedRules]) -> anyhow::Result<Vec<String>> {
    let mut coverage: BTreeMap<String, Coverage> = BTreeMap::new();
    let mut problems = Vec::new();
    for path in unit_test_files(repo)? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        let tests = doc.get("tests").and_then(|t| t.as_sequence()).cloned().unwrap_or_default();
        for case in tests.iter().flat_map(|t| t.get("alert_rule_test").and_then(|a| a.as_sequence()).cloned().unwrap_or_default()) {
            let name = case.get("alertname").and_then(|a| a.as_str()).unwrap_or_default().to_owned();
            let expected = case.get("exp_alerts").and_then(|e| e.as_sequence()).cloned().unwrap_or_default();
            let c = coverage.entry(name.clone()).or_default();
            if expected.is_empty() {
                c.silent += 1;
            } else {
                c.firing += 1;
            }
            for alert in &expected {
                for label in ["severity", "service"] {
                    if alert.get("exp_labels").and_then(|l| l.get(label)).is_none() {
                        problems.push(format!("{}: a firing case of {name} does not assert label `{label}`", repo.display(&path)));
                    }
                }
                for ann in ["summary", "description", "runbook_url"] {
                    if alert.get("exp_annotations").and_then(|l| l.get(ann)).is_none() {
                        problems.push(format!("{}: a firing case of {name} does not assert annotation `{ann}`", repo.display(&path)));
                    }
                }
            }
        }
    }
    for (_, rule) in rules::alerts(files) {
        let name = rule.alert.clone().unwrap_or_default();
        let c = coverage.get(&name).copied().unwrap_or_default();
        if c.firing == 0 {
            problems.push(format!("{name}: no promtool case expects it to fire"));
        }
        if c.silent == 0 {
            problems.push(format!("{name}: no promtool case expects it to stay silent"));
        }
    }
    Ok(problems)
}

/// The promtool unit-test files, sorted.
pub fn unit_test_files(repo: &Repo) -> anyhow::Result<Vec<PathBuf>> {
    let dir = repo.promtool_tests_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    paths.sort();
    Ok(paths)
}

/// All static checks (no promtool): generated files current, alerts
/// well-formed with runbooks, naming contract of rules and runbook queries,
/// unit-test coverage.
pub fn all_static(repo: &Repo) -> anyhow::Result<Vec<String>> {
    let files = rules::load_dir(&repo.rules_dir())?;
    let mut problems = generated_drift(repo)?;
    problems.extend(alert_problems(repo, &files)?);
    problems.extend(contract_problems(repo, &files)?);
    problems.extend(runbook_query_problems(repo)?);
    problems.extend(unit_test_problems(repo, &files)?);
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_promql_blocks() {
        let md = "text\n```promql\nup\n```\n```sh\nls\n```\n```promql\nsum(x)\n/ y\n```\n";
        assert_eq!(promql_blocks(md), ["up\n", "sum(x)\n/ y\n"]);
    }

    #[test]
    fn runbook_sections_are_required_in_order_and_non_empty() {
        let good = RUNBOOK_SECTIONS.iter().map(|s| format!("{s}\ntext\n")).collect::<String>();
        assert!(runbook_problems(&good).is_empty());
        let missing = good.replace("## Queries\n", "");
        assert_eq!(runbook_problems(&missing), ["section `## Queries` is missing"]);
        let empty = good.replace("## Impact\ntext\n", "## Impact\n\n");
        assert_eq!(runbook_problems(&empty), ["section `## Impact` is empty"]);
        let swapped = good.replace("## Meaning", "## X").replace("## Impact", "## Meaning").replace("## X", "## Impact");
        assert!(runbook_problems(&swapped).iter().any(|p| p.contains("out of order")), "{:?}", runbook_problems(&swapped));
    }
}
