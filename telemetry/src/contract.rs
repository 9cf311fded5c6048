//! The metric naming contract, `telemetry/METRICS.md`, read as data.
//!
//! METRICS.md is written for people: `##` sections holding Markdown tables
//! whose rows are `` | `name` | type | labels | ... | ``. This module is the one
//! reader of that format; the telemetry tests, the load runner's tests and the
//! alert and dashboard checks all call [`parse_metrics_md`], so a change of the
//! format is made here once.
//!
//! A row is a metric family when its first cell is a backticked name and it has
//! at least three cells. The type cell is `counter`, `gauge` or `histogram`
//! (anything else is an error, as is a counter not ending in `_total`). The
//! labels cell lists backticked label names, each optionally followed by a
//! parenthesised list of backticked values; `—` means none:
//! `` `status` (`created`, `confirmed`), `currency` ``. Further cells are kept by
//! their column header (`meaning`, `owner`). Rows of other tables (a first
//! cell without backticks) are skipped.

use std::collections::{BTreeMap, BTreeSet};

/// The METRICS.md this crate implements, as compiled in.
pub const METRICS_MD: &str = include_str!("../METRICS.md");

/// A family's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    /// `counter`, `gauge` or `histogram`, as in the table and in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric family as a table row describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    /// The name queries use; counters include `_total`.
    pub name: String,
    pub kind: MetricKind,
    /// Label name -> its allowed values when the row enumerates them
    /// (`None`: any value). Target labels (`job`, `instance`) are not listed.
    pub labels: BTreeMap<String, Option<BTreeSet<String>>>,
    /// The `##` heading the table is under (`Standard families (every service)`);
    /// empty before the first heading.
    pub section: String,
    /// The row's other cells by lower-case column header (`meaning`, `owner`).
    pub notes: BTreeMap<String, String>,
}

impl MetricSpec {
    /// The family name in the OpenMetrics exposition (`# TYPE` lines): a
    /// counter's name without `_total`.
    pub fn family_name(&self) -> &str {
        match self.kind {
            MetricKind::Counter => self.name.strip_suffix("_total").unwrap_or(&self.name),
            MetricKind::Gauge | MetricKind::Histogram => &self.name,
        }
    }

    /// The series names a family appears under in Prometheus
    /// (histograms as `_bucket`, `_sum`, `_count`).
    pub fn series_names(&self) -> Vec<String> {
        match self.kind {
            MetricKind::Histogram => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{}{s}", self.name)).collect(),
            MetricKind::Counter | MetricKind::Gauge => vec![self.name.clone()],
        }
    }

    /// The label names, sorted.
    pub fn label_names(&self) -> BTreeSet<String> {
        self.labels.keys().cloned().collect()
    }
}

/// Why a document is not a readable contract; the message names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// A row's type cell is not `counter`, `gauge` or `histogram`.
    #[error("line {line}: family `{name}` has unknown type '{kind}'")]
    UnknownType { line: usize, name: String, kind: String },
    /// A counter whose name does not end in `_total`.
    #[error("line {line}: counter `{name}` must end in _total (OpenMetrics)")]
    CounterSuffix { line: usize, name: String },
    /// The labels cell does not follow the grammar.
    #[error("line {line}: labels of `{name}`: {reason}")]
    Labels { line: usize, name: String, reason: String },
    /// Not a single family row in the document.
    #[error("no metric family table rows found")]
    Empty,
}

/// Every metric family row of a METRICS.md-style document, in document order.
///
/// Errors: [`ContractError`] for the first bad row, or when there is none.
pub fn parse_metrics_md(markdown: &str) -> Result<Vec<MetricSpec>, ContractError> {
    let mut out = Vec::new();
    let mut section = String::new();
    // Column headers of the table being read; reset by any line outside a table.
    let mut header: Vec<String> = Vec::new();
    for (n, line) in markdown.lines().enumerate() {
        let line = line.trim();
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim().to_owned();
        }
        if !line.starts_with('|') {
            header.clear();
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(name) = cells[0].strip_prefix('`').and_then(|s| s.strip_suffix('`')) else {
            if header.is_empty() {
                header = cells.iter().map(|c| c.to_lowercase()).collect();
            }
            continue; // header or separator row, or another kind of table
        };
        if cells.len() >= 3 {
            out.push(parse_row(n + 1, name, &cells, &header, &section)?);
        }
    }
    if out.is_empty() {
        return Err(ContractError::Empty);
    }
    Ok(out)
}

fn parse_row(line: usize, name: &str, cells: &[&str], header: &[String], section: &str) -> Result<MetricSpec, ContractError> {
    let kind = match cells[1] {
        "counter" => MetricKind::Counter,
        "gauge" => MetricKind::Gauge,
        "histogram" => MetricKind::Histogram,
        other => return Err(ContractError::UnknownType { line, name: name.to_owned(), kind: other.to_owned() }),
    };
    if kind == MetricKind::Counter && !name.ends_with("_total") {
        return Err(ContractError::CounterSuffix { line, name: name.to_owned() });
    }
    let labels = parse_labels(cells[2]).map_err(|reason| ContractError::Labels { line, name: name.to_owned(), reason })?;
    let notes = (header.iter().zip(cells).skip(3)).map(|(h, c)| (h.clone(), (*c).to_owned())).collect();
    Ok(MetricSpec { name: name.to_owned(), kind, labels, section: section.to_owned(), notes })
}

/// `` `a` (`x`, `y`), `b` `` -> `{a: Some({x, y}), b: None}`.
fn parse_labels(cell: &str) -> Result<BTreeMap<String, Option<BTreeSet<String>>>, String> {
    let mut labels: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut depth = 0i32;
    let mut last: Option<String> = None;
    let mut rest = cell;
    while let Some(c) = rest.chars().next() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '`' => {
                let end = rest[1..].find('`').ok_or("unbalanced backtick")? + 1;
                let token = rest[1..end].to_owned();
                rest = &rest[end + 1..];
                if depth == 0 {
                    labels.insert(token.clone(), None);
                    last = Some(token);
                } else {
                    let label = last.as_ref().ok_or("a value list must follow a label")?;
                    labels.entry(label.clone()).or_default().get_or_insert_with(BTreeSet::new).insert(token);
                }
                continue;
            }
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in '{cell}'"));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "
## Standard
| name | type | labels | meaning |
| --- | --- | --- | --- |
| `http_server_request_duration_seconds` | histogram | `service`, `method` | latency |

## Business
| name | type | labels | owner |
| --- | --- | --- | --- |
| `orders_total` | counter | `status` (`created`, `confirmed`) | order |
| `inventory_stock_low_items` | gauge | — | inventory |

| configuration | req/s |
| --- | --- |
| telemetry off | 181 768 |
";

    #[test]
    fn reads_rows_with_sections_labels_values_and_notes() {
        let f = parse_metrics_md(MD).unwrap();
        assert_eq!(f.len(), 3, "the measurement table is not a family table: {f:?}");
        assert_eq!((f[0].kind, f[0].section.as_str()), (MetricKind::Histogram, "Standard"));
        assert_eq!(f[0].label_names().into_iter().collect::<Vec<_>>(), ["method", "service"]);
        assert_eq!(f[0].notes["meaning"], "latency");
        assert_eq!(
            f[0].series_names(),
            [
                "http_server_request_duration_seconds_bucket",
                "http_server_request_duration_seconds_sum",
                "http_server_request_duration_seconds_count"
            ]
        );
        let status = f[1].labels["status"].as_ref().unwrap();
        assert_eq!(status.iter().collect::<Vec<_>>(), ["confirmed", "created"]);
        assert_eq!((f[1].section.as_str(), f[1].notes["owner"].as_str(), f[1].family_name()), ("Business", "order", "orders"));
        assert!(f[2].labels.is_empty());
        assert_eq!(f[2].family_name(), "inventory_stock_low_items");
    }

    #[test]
    fn refuses_bad_rows_naming_the_line() {
        let err = |md: &str| parse_metrics_md(md).unwrap_err().to_string();
        assert_eq!(err("| `x` | summary | — |"), "line 1: family `x` has unknown type 'summary'");
        assert_eq!(err("\n| `x` | counter | — |"), "line 2: counter `x` must end in _total (OpenMetrics)");
        assert_eq!(err("| `x` | gauge | `a` (`b` |"), "line 1: labels of `x`: unbalanced parentheses in '`a` (`b`'");
        assert_eq!(err("| `x` | gauge | `a |"), "line 1: labels of `x`: unbalanced backtick");
        assert_eq!(err("| `x` | gauge | (`b`) |"), "line 1: labels of `x`: a value list must follow a label");
        assert_eq!(err("# nothing here"), "no metric family table rows found");
    }

    #[test]
    fn the_compiled_in_contract_parses() {
        let specs = parse_metrics_md(METRICS_MD).unwrap();
        assert!(specs.iter().any(|s| s.name == "http_server_request_duration_seconds" && s.section.starts_with("Standard families")));
        let names: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), specs.len(), "a family is listed twice");
    }
}
