//! The naming contract: which series names and labels may be queried.
//!
//! Allowed are the families of `telemetry/METRICS.md` (histograms as
//! `_bucket`/`_sum`/`_count`), names recorded by a rule in `alerts/rules/`,
//! Prometheus' own `up` and `ALERTS`, and names listed in
//! `alerts/PROPOSED_METRICS.md` — additions asked of the lead that are not yet
//! in the contract (a test fails once METRICS.md has them, so the proposal list
//! is removed in the same change that adopts them).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use glasshouse_telemetry::contract::parse_metrics_md;

use crate::promql::{self, MatchOp};

/// Where a name comes from; messages say it, so a reader knows which file to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `telemetry/METRICS.md`.
    Contract,
    /// `alerts/PROPOSED_METRICS.md`: asked for, not yet emitted.
    Proposed,
    /// A recording rule in `alerts/rules/`.
    Recorded,
    /// `alerts/INFRA_METRICS.md`: a series of an infrastructure exporter (PostgreSQL, MariaDB, Kafka).
    Infra,
    /// Synthesised by Prometheus itself (`up`, `ALERTS`).
    Builtin,
}

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// One family as a table row of METRICS.md describes it (the telemetry crate's reader).
pub use glasshouse_telemetry::contract::{MetricKind as Kind, MetricSpec as Family};

/// What may be queried under one series name.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub source: Source,
    /// `None`: any label (recorded and built-in series, whose labels depend on targets or rules).
    pub labels: Option<BTreeMap<String, Option<BTreeSet<String>>>>,
}

/// Every series name that may be queried, and the labels each may be matched on.
#[derive(Debug, Clone, Default)]
pub struct Contract {
    series: BTreeMap<String, SeriesSpec>,
}

/// Reads the family tables of a METRICS.md-style document with
/// [`glasshouse_telemetry::contract::parse_metrics_md`] (its docs give the row grammar).
pub fn parse_families(markdown: &str) -> anyhow::Result<Vec<Family>> {
    Ok(parse_metrics_md(markdown)?)
}

impl Contract {
    /// Families from METRICS.md plus Prometheus' own series.
    pub fn from_metrics_md(markdown: &str) -> anyhow::Result<Self> {
        let mut c = Self::default();
        c.add_families(&parse_families(markdown).context("telemetry/METRICS.md")?, Source::Contract);
        for builtin in ["up", "ALERTS"] {
            c.series.insert(builtin.to_owned(), SeriesSpec { source: Source::Builtin, labels: None });
        }
        Ok(c)
    }

    /// Adds the families of a proposal document; fails when one is already in
    /// the contract, so an adopted proposal is noticed and its row removed.
    pub fn add_proposed(&mut self, markdown: &str) -> anyhow::Result<()> {
        let families = parse_families(markdown).context("alerts/PROPOSED_METRICS.md")?;
        for f in &families {
            if self.series.keys().any(|k| k == &f.name || f.series_names().contains(k)) {
                bail!(
                    "`{}` is proposed in alerts/PROPOSED_METRICS.md but is already in telemetry/METRICS.md: \
                     delete its row from the proposal",
                    f.name
                );
            }
        }
        self.add_families(&families, Source::Proposed);
        Ok(())
    }

    /// Adds the exporter families of `alerts/INFRA_METRICS.md` (not ours to name,
    /// so kept apart from METRICS.md); fails when one collides with a family there.
    pub fn add_infra(&mut self, markdown: &str) -> anyhow::Result<()> {
        let families = parse_families(markdown).context("alerts/INFRA_METRICS.md")?;
        for f in &families {
            if f.series_names().iter().any(|n| self.series.contains_key(n)) {
                bail!("`{}` of alerts/INFRA_METRICS.md is already defined elsewhere in the contract", f.name);
            }
        }
        self.add_families(&families, Source::Infra);
        Ok(())
    }

    /// Adds names produced by recording rules (any labels).
    pub fn add_recorded<'a>(&mut self, names: impl IntoIterator<Item = &'a String>) {
        for n in names {
            self.series.entry(n.clone()).or_insert(SeriesSpec { source: Source::Recorded, labels: None });
        }
    }

    fn add_families(&mut self, families: &[Family], source: Source) {
        for f in families {
            for name in f.series_names() {
                let mut labels = f.labels.clone();
                if name.ends_with("_bucket") && f.kind == Kind::Histogram {
                    labels.insert("le".to_owned(), None);
                }
                self.series.insert(name, SeriesSpec { source, labels: Some(labels) });
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&SeriesSpec> {
        self.series.get(name)
    }

    /// Every problem with the selectors of `expr`: unknown names, labels the
    /// family does not have, values outside an enumerated label's list.
    pub fn check_expr(&self, expr: &str) -> Vec<String> {
        let selectors = match promql::selectors(expr) {
            Ok(s) => s,
            Err(e) => return vec![format!("cannot read expression: {e:#}")],
        };
        let mut problems = Vec::new();
        for sel in selectors {
            let Some(name) = sel.metric else {
                problems.push("a selector without a metric name cannot be checked against the contract".to_owned());
                continue;
            };
            let Some(spec) = self.series.get(&name) else {
                problems.push(format!(
                    "`{name}` is not in telemetry/METRICS.md, not proposed in alerts/PROPOSED_METRICS.md, not an exporter series of alerts/INFRA_METRICS.md and not recorded by any rule"
                ));
                continue;
            };
            let Some(labels) = &spec.labels else { continue };
            for m in &sel.matchers {
                if m.label == "__name__" || TARGET_LABELS.contains(&m.label.as_str()) {
                    continue;
                }
                let Some(allowed) = labels.get(&m.label) else {
                    problems.push(format!("`{name}` has no label `{}` (its labels: {:?})", m.label, labels.keys().collect::<Vec<_>>()));
                    continue;
                };
                let Some(values) = allowed else { continue };
                for v in literal_alternatives(m.op, &m.value) {
                    if !values.contains(&v) {
                        problems.push(format!("`{name}{{{}=...}}`: value '{v}' is not one of {values:?}", m.label));
                    }
                }
            }
        }
        problems
    }
}

/// The literal values a matcher names: the value of `=`/`!=`, and the
/// alternatives of a regex made only of plain words joined by `|`. Other
/// regexes are not checked (they may legitimately match by pattern).
fn literal_alternatives(op: MatchOp, value: &str) -> Vec<String> {
    match op {
        MatchOp::Equal | MatchOp::NotEqual if !value.is_empty() => vec![value.to_owned()],
        MatchOp::Regex | MatchOp::NotRegex
            if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "_-.|".contains(c)) =>
        {
            value.split('|').map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "
| name | type | labels | meaning |
| --- | --- | --- | --- |
| `http_server_request_duration_seconds` | histogram | `service`, `method`, `route`, `status_class` | latency |
| `orders_total` | counter | `status` (`created`, `confirmed`, `rejected`, `cancelled`) | order |
| `inventory_stock_low_items` | gauge | — | inventory |
";

    #[test]
    fn parses_families_with_labels_and_enumerated_values() {
        let f = parse_families(MD).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].kind, Kind::Histogram);
        assert_eq!(f[0].labels.keys().collect::<Vec<_>>(), ["method", "route", "service", "status_class"]);
        let status = f[1].labels["status"].as_ref().unwrap();
        assert_eq!(status.iter().collect::<Vec<_>>(), ["cancelled", "confirmed", "created", "rejected"]);
        assert!(f[2].labels.is_empty());
        assert!(parse_families("| `x` | summary | — |").unwrap_err().to_string().contains("unknown type 'summary'"));
        assert!(parse_families("| `x` | counter | — |").unwrap_err().to_string().contains("must end in _total"));
    }

    #[test]
    fn checks_names_labels_and_values() {
        let mut c = Contract::from_metrics_md(MD).unwrap();
        c.add_recorded(&["slo:sli_error:ratio_rate5m".to_owned()]);
        let ok = r#"sum(rate(http_server_request_duration_seconds_bucket{service="order",le="0.3",job="glasshouse"}[5m]))
            / sum(rate(orders_total{status=~"confirmed|rejected"}[5m])) + slo:sli_error:ratio_rate5m{slo="x"} + up{anything="y"}"#;
        assert_eq!(c.check_expr(ok), Vec::<String>::new());

        let p = c.check_expr(r#"http_server_request_duration_seconds{service="order"}"#);
        assert!(p[0].contains("`http_server_request_duration_seconds` is not in"), "{p:?}");
        let p = c.check_expr(r#"orders_total{state="created"}"#);
        assert!(p[0].contains("has no label `state`"), "{p:?}");
        let p = c.check_expr(r#"orders_total{status=~"confirmed|canceled"}"#);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("'canceled'"), "{p:?}");
        let p = c.check_expr(r#"http_server_request_duration_seconds_sum{le="1"}"#);
        assert!(p[0].contains("has no label `le`"), "{p:?}");
    }

    #[test]
    fn a_proposal_already_in_the_contract_is_an_error() {
        let mut c = Contract::from_metrics_md(MD).unwrap();
        let err = c.add_proposed("| `orders_total` | counter | `status` | dup |").unwrap_err().to_string();
        assert!(err.contains("delete its row"), "{err}");
        c.add_proposed("| `order_completion_seconds` | histogram | `status` | new |").unwrap();
        assert_eq!(c.get("order_completion_seconds_bucket").unwrap().source, Source::Proposed);
    }

    #[test]
    fn exporter_series_are_checked_like_ours_and_may_not_shadow_them() {
        let mut c = Contract::from_metrics_md(MD).unwrap();
        c.add_infra("| `pg_stat_activity_count` | gauge | `server`, `datname`, `state` | backends |").unwrap();
        assert_eq!(c.get("pg_stat_activity_count").unwrap().source, Source::Infra);
        assert!(c.check_expr(r#"sum(pg_stat_activity_count{job="postgres",datname!=""})"#).is_empty());
        let p = c.check_expr(r#"pg_stat_activity_count{database="orders"}"#);
        assert!(p[0].contains("has no label `database`"), "{p:?}");
        let err = c.add_infra("| `orders_total` | counter | `status` | dup |").unwrap_err().to_string();
        assert!(err.contains("already defined"), "{err}");
    }

    #[test]
    fn the_shipped_infra_metrics_parse() {
        let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/INFRA_METRICS.md")).unwrap();
        let families = parse_families(&md).unwrap();
        for name in ["pg_up", "mysql_global_status_threads_connected", "kafka_consumergroup_lag"] {
            assert!(families.iter().any(|f| f.name == name), "{name} missing from alerts/INFRA_METRICS.md");
        }
    }
}
