//! The checker: structure of every dashboard and provisioning file, then every
//! PromQL query run against Prometheus, one line per panel:
//! `dashboard / panel title -> OK | EMPTY | ERROR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use glasshouse_alerts::contract::Contract;

use crate::build::EMPTY_WHEN_HEALTHY_KEY;
use crate::model::{self, DashboardFile};
use crate::prom::{Prometheus, Verdict};
use crate::provisioning;
use crate::structure;
use crate::vars::Vars;

/// What to check and against what.
#[derive(Debug, Clone)]
pub struct Options {
    pub dashboards_dir: PathBuf,
    pub provisioning_dir: PathBuf,
    /// Prometheus base URL; `None` checks structure only.
    pub prometheus: Option<String>,
    /// EMPTY panels fail the check (after a load run), except those marked empty-when-healthy.
    pub require_data: bool,
    /// Range queries cover this much time back from now.
    pub lookback: Duration,
}

/// The outcome: the lines to print and the counts that decide the exit code.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub structure_problems: usize,
    pub ok: usize,
    pub empty: usize,
    /// EMPTY panels marked as empty when the system is healthy (never fatal).
    pub empty_allowed: usize,
    pub error: usize,
    /// Non-PromQL queries (Loki, Elasticsearch): structure-checked only.
    pub skipped: usize,
}

impl Report {
    /// Whether the run failed: any structure problem or ERROR; EMPTY too with `require_data`.
    pub fn failed(&self, require_data: bool) -> bool {
        self.structure_problems > 0 || self.error > 0 || (require_data && self.empty > 0)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} structure problem(s); panels: {} OK, {} EMPTY, {} EMPTY (allowed), {} ERROR, {} SKIPPED",
            self.structure_problems, self.ok, self.empty, self.empty_allowed, self.error, self.skipped
        )
    }

    fn structure(&mut self, what: &str, problem: &str) {
        self.structure_problems += 1;
        self.lines.push(format!("STRUCTURE {what}: {problem}"));
    }
}

/// Runs every check. Errors only when Prometheus cannot be reached at all
/// (then no verdict would mean anything).
pub async fn run(opts: &Options, contract: &Contract) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let provisioned = match provisioning::datasources(&opts.provisioning_dir) {
        Ok(p) => p,
        Err(e) => {
            report.structure("provisioning", &format!("{e:#}"));
            BTreeMap::new()
        }
    };
    if let Err(e) = provisioning::dashboard_providers(&opts.provisioning_dir) {
        report.structure("provisioning", &format!("{e:#}"));
    }

    let mut dashboards = Vec::new();
    let mut uids: BTreeMap<String, PathBuf> = BTreeMap::new();
    let files = model::read_dir(&opts.dashboards_dir)?;
    if files.is_empty() {
        report.structure("dashboards", &format!("no *.json in {}", opts.dashboards_dir.display()));
    }
    for f in files {
        match f {
            Err((path, e)) => report.structure(&path.display().to_string(), &e),
            Ok(d) => {
                let what = format!("{} ({})", d.title(), d.path.file_name().unwrap_or_default().to_string_lossy());
                for p in structure::check(&d, &provisioned, contract) {
                    report.structure(&what, &p);
                }
                if let Some(uid) = d.json["uid"].as_str()
                    && let Some(other) = uids.insert(uid.to_owned(), d.path.clone())
                {
                    report.structure(&what, &format!("uid {uid} is also the uid of {}", other.display()));
                }
                dashboards.push(d);
            }
        }
    }

    let Some(url) = &opts.prometheus else {
        return Ok(report);
    };
    let prom = Prometheus::new(url, opts.lookback)?;
    prom.require_reachable().await?;
    for d in &dashboards {
        run_dashboard(d, &prom, opts, &mut report).await;
    }
    Ok(report)
}

async fn run_dashboard(d: &DashboardFile, prom: &Prometheus, opts: &Options, report: &mut Report) {
    let title = d.title();
    let vars = Vars::for_dashboard(d, opts.lookback.as_secs());
    for v in d.variables() {
        if v["type"] != "query" || v["datasource"]["type"] != "prometheus" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or_default();
        let q = v["query"].as_str().or_else(|| v["query"]["query"].as_str()).unwrap_or_default();
        let verdict = match label_values_parts(q) {
            Some((selector, label)) => prom.label_values(&selector, &label).await,
            None => Verdict::Error(format!("variable query '{q}' is not label_values(selector, label)")),
        };
        record(report, &format!("{title} / ${name}"), &[("var".to_owned(), verdict)], None, opts.require_data);
    }
    for panel in d.panels() {
        if model::is_layout_only(panel) {
            continue;
        }
        let what = format!("{title} / {}", model::panel_title(panel));
        let mut verdicts = Vec::new();
        let mut skipped_kinds = Vec::new();
        for q in model::queries(panel) {
            if q.datasource_type() != Some("prometheus") {
                skipped_kinds.push(q.datasource_type().unwrap_or("unknown").to_owned());
                continue;
            }
            let verdict = match vars.substitute(&q.text) {
                Ok(expr) => prom.query(&expr, q.instant).await,
                Err(unknown) => Verdict::Error(format!("unknown variable(s) {unknown:?}")),
            };
            verdicts.push((q.ref_id.clone(), verdict));
        }
        if verdicts.is_empty() {
            report.skipped += 1;
            report.lines.push(format!("{what} -> SKIPPED ({} query: structure checked only)", skipped_kinds.join(", ")));
            continue;
        }
        let allowed = panel[EMPTY_WHEN_HEALTHY_KEY].as_str();
        record(report, &what, &verdicts, allowed, opts.require_data);
    }
}

/// One output line for a panel (or variable) from its queries' verdicts:
/// ERROR if any query errs, OK if any has series, EMPTY otherwise.
fn record(report: &mut Report, what: &str, verdicts: &[(String, Verdict)], allowed_empty: Option<&str>, require_data: bool) {
    let errors: Vec<String> = verdicts
        .iter()
        .filter_map(|(r, v)| match v {
            Verdict::Error(e) => Some(format!("{r}: {e}")),
            _ => None,
        })
        .collect();
    let with_data = verdicts.iter().filter(|(_, v)| matches!(v, Verdict::Ok(_))).count();
    if !errors.is_empty() {
        report.error += 1;
        report.lines.push(format!("{what} -> ERROR ({})", errors.join("; ")));
    } else if with_data > 0 {
        report.ok += 1;
        let partial =
            if with_data < verdicts.len() { format!(" ({with_data}/{} queries with data)", verdicts.len()) } else { String::new() };
        report.lines.push(format!("{what} -> OK{partial}"));
    } else if let Some(why) = allowed_empty {
        report.empty_allowed += 1;
        report.lines.push(format!("{what} -> EMPTY (allowed: {why})"));
    } else {
        report.empty += 1;
        let fatal = if require_data { " [fatal with --require-data]" } else { "" };
        report.lines.push(format!("{what} -> EMPTY{fatal}"));
    }
}

/// `label_values(selector, label)` -> (selector, label); `label_values(label)` -> ("", label).
fn label_values_parts(query: &str) -> Option<(String, String)> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((sel, label)) => Some((sel.trim().to_owned(), label.trim().to_owned())),
        None => Some((String::new(), inner.trim().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_verdicts_combine_worst_first() {
        let mut r = Report::default();
        let ok = || ("A".to_owned(), Verdict::Ok(2));
        let empty = || ("B".to_owned(), Verdict::Empty);
        record(&mut r, "d / ok", &[ok(), empty()], None, true);
        record(&mut r, "d / err", &[ok(), ("C".to_owned(), Verdict::Error("bad_data: parse error".into()))], None, true);
        record(&mut r, "d / empty", &[empty()], None, true);
        record(&mut r, "d / allowed", &[empty()], Some("healthy"), true);
        assert_eq!(
            r.lines,
            [
                "d / ok -> OK (1/2 queries with data)",
                "d / err -> ERROR (C: bad_data: parse error)",
                "d / empty -> EMPTY [fatal with --require-data]",
                "d / allowed -> EMPTY (allowed: healthy)",
            ]
        );
        assert!(r.failed(false));
        r.error = 0;
        assert!(!r.failed(false) && r.failed(true));
    }

    #[test]
    fn label_values_queries_split() {
        assert_eq!(label_values_parts(r#"label_values(up{job="a,b"}, instance)"#), Some((r#"up{job="a,b"}"#.into(), "instance".into())));
        assert_eq!(label_values_parts("label_values(job)"), Some((String::new(), "job".into())));
        assert_eq!(label_values_parts("query_result(up)"), None);
    }
}
