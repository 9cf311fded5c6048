//! SLO specs: the Sloth-style YAML under `alerts/slos/` (objective, error query,
//! total query) read into typed, validated values.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The placeholder that each SLI query carries where its range goes, as in Sloth.
pub const WINDOW_PLACEHOLDER: &str = "{{.window}}";

/// The only spec format version this generator understands; a bump means a
/// format change the generator must learn first.
pub const SPEC_VERSION: &str = "glasshouse.slo/v1";

/// One spec file: the SLOs of one service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub version: String,
    /// Becomes the `service` label of every generated series and alert, so the
    /// SLO alerts route and inhibit like the service's other alerts.
    pub service: String,
    pub slos: Vec<Slo>,
}

/// One service-level objective.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Kebab-case id; the `slo` label on every generated series and alert.
    pub name: String,
    /// Human title used in alert summaries ("Order API availability").
    pub title: String,
    /// What counts as good and bad, in words, for the runbooks and dashboards.
    pub description: String,
    /// Target percentage of good events over the period, e.g. `99.9`.
    pub objective: f64,
    pub sli: Sli,
    pub alerting: Alerting,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sli {
    pub events: Events,
}

/// Ratio SLI: bad events over all events, each a PromQL query that yields one
/// label-less series and contains [`WINDOW_PLACEHOLDER`] in its range selectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    pub error_query: String,
    pub total_query: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerting {
    /// Prefix of the two alert names: `<name>FastBurn` (page) and `<name>SlowBurn` (ticket).
    pub name: String,
}

impl Slo {
    /// Allowed bad fraction, `1 - objective/100`, rounded so that `99.9` gives exactly `0.001`.
    pub fn error_budget(&self) -> f64 {
        round12((100.0 - self.objective) / 100.0)
    }

    /// `objective/100`, rounded the same way.
    pub fn objective_ratio(&self) -> f64 {
        round12(self.objective / 100.0)
    }

    pub fn page_alert(&self) -> String {
        format!("{}FastBurn", self.alerting.name)
    }

    pub fn ticket_alert(&self) -> String {
        format!("{}SlowBurn", self.alerting.name)
    }
}

/// Rounds away binary noise (`1 - 0.999` is `0.0010000000000000009`), so
/// generated thresholds read as written.
fn round12(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

/// A spec file as read from disk, with where it came from for messages and headers.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub path: PathBuf,
    /// File name without `.yaml`: names the generated file `slo-<stem>.yaml`.
    pub stem: String,
    pub spec: SpecFile,
}

/// Reads every `*.yaml` in `dir`, sorted by name, and validates each.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<LoadedSpec>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read SLO spec directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("list {}", dir.display()))?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    paths.sort();
    if paths.is_empty() {
        bail!("no SLO specs (*.yaml) in {}", dir.display());
    }
    let mut specs = Vec::new();
    let mut slo_names = std::collections::BTreeSet::new();
    let mut alert_names = std::collections::BTreeSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let spec = parse(&text).with_context(|| format!("SLO spec {}", path.display()))?;
        for slo in &spec.slos {
            if !slo_names.insert(slo.name.clone()) {
                bail!("SLO name '{}' appears twice (second time in {})", slo.name, path.display());
            }
            if !alert_names.insert(slo.alerting.name.clone()) {
                bail!("alerting name '{}' appears twice (second time in {})", slo.alerting.name, path.display());
            }
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("spec file name {} is not UTF-8", path.display()))?
            .to_owned();
        specs.push(LoadedSpec { path, stem, spec });
    }
    Ok(specs)
}

/// Parses and validates one spec file's text.
pub fn parse(text: &str) -> anyhow::Result<SpecFile> {
    let spec: SpecFile = serde_yaml::from_str(text).context("not a valid SLO spec")?;
    validate(&spec)?;
    Ok(spec)
}

fn validate(spec: &SpecFile) -> anyhow::Result<()> {
    if spec.version != SPEC_VERSION {
        bail!("unsupported version '{}' (this generator reads '{SPEC_VERSION}')", spec.version);
    }
    if !is_label_value_id(&spec.service) {
        bail!("service '{}' must be lowercase letters, digits, '-' or '_'", spec.service);
    }
    if spec.slos.is_empty() {
        bail!("service '{}' lists no SLOs", spec.service);
    }
    for slo in &spec.slos {
        let name = &slo.name;
        if !is_label_value_id(name) {
            bail!("SLO name '{name}' must be lowercase letters, digits, '-' or '_'");
        }
        if !(slo.objective > 0.0 && slo.objective < 100.0) {
            bail!("SLO '{name}': objective {} must be a percentage strictly between 0 and 100", slo.objective);
        }
        let a = &slo.alerting.name;
        let mut chars = a.chars();
        if !(chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())) {
            bail!("SLO '{name}': alerting name '{a}' must be UpperCamelCase letters and digits");
        }
        for (which, q) in [("error_query", &slo.sli.events.error_query), ("total_query", &slo.sli.events.total_query)] {
            if !q.contains(WINDOW_PLACEHOLDER) {
                bail!("SLO '{name}': {which} has no {WINDOW_PLACEHOLDER} placeholder for the window");
            }
        }
        if slo.title.trim().is_empty() || slo.description.trim().is_empty() {
            bail!("SLO '{name}': title and description must not be empty");
        }
    }
    Ok(())
}

fn is_label_value_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: glasshouse.slo/v1
service: order
slos:
  - name: api-availability
    title: Order API availability
    description: non-5xx share of non-4xx requests
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(x_total{code="5xx"}[{{.window}}]))
        total_query: sum(rate(x_total[{{.window}}]))
    alerting:
      name: OrderApiAvailability
"#;

    #[test]
    fn reads_a_good_spec_and_derives_budget_and_names() {
        let spec = parse(GOOD).unwrap();
        let slo = &spec.slos[0];
        assert_eq!(slo.error_budget(), 0.001);
        assert_eq!(slo.objective_ratio(), 0.999);
        assert_eq!(slo.page_alert(), "OrderApiAvailabilityFastBurn");
        assert_eq!(slo.ticket_alert(), "OrderApiAvailabilitySlowBurn");
    }

    #[test]
    fn rejects_bad_specs_naming_the_problem() {
        let cases = [
            (GOOD.replace("99.9", "100"), "objective 100"),
            (GOOD.replace("99.9", "0"), "objective 0"),
            (GOOD.replace("[{{.window}}]))\n        total", "[5m]))\n        total"), "error_query has no"),
            (GOOD.replace("OrderApiAvailability", "order_api"), "alerting name 'order_api'"),
            (GOOD.replace("api-availability", "Api Availability"), "SLO name 'Api Availability'"),
            (GOOD.replace("glasshouse.slo/v1", "v0"), "unsupported version 'v0'"),
            (GOOD.replace("title:", "titel:"), "unknown field `titel`"),
            (GOOD.replace("service: order", "service: Order!"), "service 'Order!'"),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains(expected), "expected '{expected}' in: {err}");
        }
    }
}
