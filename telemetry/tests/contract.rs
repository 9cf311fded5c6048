//! The naming contract: the standard families in `telemetry/METRICS.md` are
//! exactly what the code exposes, with exactly those label names.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};

use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::contract::{METRICS_MD, parse_metrics_md};
use glasshouse_telemetry::metrics::{BreakerState, ClientOutcome, ConsumeOutcome, Exporter, Signal};

/// `name -> label names` from the "Standard families" table of METRICS.md.
fn contract() -> BTreeMap<String, BTreeSet<String>> {
    let specs = parse_metrics_md(METRICS_MD).expect("METRICS.md is a readable contract");
    specs.into_iter().filter(|s| s.section.starts_with("Standard families")).map(|s| (s.name.clone(), s.label_names())).collect()
}

/// `family name -> label names` as the exposition shows them (histogram
/// series are folded into their family, `le` dropped).
fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let types: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some((series, rest)) = line.split_once('{') else { continue };
        let family = types
            .keys()
            .filter(|f| {
                series == f.as_str()
                    || series.strip_prefix(f.as_str()).is_some_and(|s| ["_bucket", "_sum", "_count", "_total"].contains(&s))
            })
            .max_by_key(|f| f.len())
            .cloned()
            .unwrap_or_else(|| series.to_owned());
        let name = if types.get(&family).map(String::as_str) == Some("counter") { format!("{family}_total") } else { family };
        out.entry(name).or_default().extend(label_names(rest).into_iter().filter(|k| k != "le"));
    }
    out
}

/// Label names of `k1="v1",k2="v2"}...`; values may hold `,` `{` `}` (route templates do).
fn label_names(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').to_owned());
        // Skip the quoted value, honouring backslash escapes.
        let mut escaped = false;
        let end = after.char_indices().find(|&(_, c)| {
            let close = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            close
        });
        let Some((i, _)) = end else { break };
        rest = &after[i + 1..];
        if rest.starts_with('}') {
            break;
        }
    }
    names
}

#[test]
fn standard_families_match_metrics_md_exactly() {
    let m = Metrics::new("order");
    let s = &m.standard;
    s.observe_http_server("GET", "/orders/{id}", 200, 0.01);
    s.observe_http_client("inventory", ClientOutcome::success, 0.01);
    s.observe_consume("orders.v1", ConsumeOutcome::success, 0.01);
    s.set_consumer_lag("orders.v1", 0, 1);
    s.inc_dead_letter("orders.v1");
    s.set_consumer_retry_seconds("orders.v1", 0.0);
    s.set_outbox(1, 2.0);
    s.inc_outbox_published("orders.v1", 1);
    s.set_breaker_state("inventory", BreakerState::Closed);
    s.set_db_pool(1, 1);
    s.add_dropped(Signal::traces, Exporter::otlp, 1);
    // Table pruning.
    s.inc_rows_pruned("processed_events", 1);

    let want = contract();
    assert!(want.len() >= 12, "the table was not parsed: {want:?}");
    let got = exposed(&m.encode());
    assert_eq!(got, want, "code (left) and METRICS.md (right) disagree");
}
