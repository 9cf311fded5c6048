//! Structure checks of one dashboard, without any backend: the things that make
//! a dashboard load broken or lie quietly in Grafana.

use std::collections::{BTreeMap, BTreeSet};

use glasshouse_alerts::contract::Contract;
use serde_json::Value;

use crate::build::SCHEMA_VERSION;
use crate::model::{self, DashboardFile};
use crate::provisioning::Datasource;
use crate::vars;

/// Panel types whose values need a unit to be read right.
const NEEDS_UNIT: [&str; 4] = ["timeseries", "stat", "gauge", "bargauge"];

/// Every structure problem of `d`, each a sentence naming the panel.
///
/// - `uid`, `title` set; `schemaVersion` at least 39;
/// - panel ids present and unique; titles set and unique;
/// - every datasource reference resolves: a template variable of type
///   `datasource` for the same plugin, a provisioned UID of that plugin, or Grafana's own;
/// - value panels have a unit; query panels have queries, none empty, refIds unique;
/// - every variable a query uses is defined;
/// - every PromQL series keeps the naming contract;
/// - latency quantiles (`histogram_quantile` over `*_seconds_bucket`) ask for exemplars;
/// - no absolute `http(s)://` URL anywhere (instance URLs belong in provisioning).
pub fn check(d: &DashboardFile, provisioned: &BTreeMap<String, Datasource>, contract: &Contract) -> Vec<String> {
    let mut problems = Vec::new();
    let j = &d.json;
    for key in ["uid", "title"] {
        if j[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("dashboard has no {key}"));
        }
    }
    match j["schemaVersion"].as_u64() {
        Some(v) if v >= SCHEMA_VERSION => {}
        other => problems.push(format!("schemaVersion is {other:?}, expected at least {SCHEMA_VERSION}")),
    }
    find_urls(j, "", &mut problems);

    // Datasource variables: name -> plugin type.
    let mut ds_vars: BTreeMap<String, String> = BTreeMap::new();
    let mut var_names: BTreeSet<String> = BTreeSet::new();
    for v in d.variables() {
        let name = v["name"].as_str().unwrap_or_default().to_owned();
        if name.is_empty() {
            problems.push("a template variable has no name".to_owned());
            continue;
        }
        if v["type"] == "datasource" {
            let plugin = v["query"].as_str().unwrap_or_default().to_owned();
            if !provisioned.values().any(|ds| ds.kind == plugin) {
                problems.push(format!("variable ${name} picks `{plugin}` datasources, but none is provisioned"));
            }
            ds_vars.insert(name.clone(), plugin);
        } else if let Some(ds) = v.get("datasource").filter(|d| !d.is_null()) {
            if let Err(p) = resolve(ds, &ds_vars, provisioned) {
                problems.push(format!("variable ${name}: {p}"));
            }
            if v["datasource"]["type"] == "prometheus" {
                let q = v["query"].as_str().or_else(|| v["query"]["query"].as_str()).unwrap_or_default();
                for p in contract.check_expr(&label_values_selector(q)) {
                    problems.push(format!("variable ${name}: {p}"));
                }
            }
        }
        var_names.insert(name);
    }

    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in d.panels() {
        let title = model::panel_title(panel);
        let at = format!("panel '{title}'");
        match panel["id"].as_u64() {
            Some(id) if !ids.insert(id) => problems.push(format!("{at}: id {id} is used by another panel")),
            Some(_) => {}
            None => problems.push(format!("{at}: no numeric id")),
        }
        if panel["title"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{at}: no title"));
        } else if panel["type"] != "row" && !titles.insert(title.clone()) {
            problems.push(format!("{at}: title used by another panel (the checker's output would be ambiguous)"));
        }
        if panel["gridPos"]["w"].as_u64().is_none() || panel["gridPos"]["h"].as_u64().is_none() {
            problems.push(format!("{at}: no gridPos"));
        }
        if model::is_layout_only(panel) {
            continue;
        }
        let kind = panel["type"].as_str().unwrap_or_default();
        if NEEDS_UNIT.contains(&kind) && panel["fieldConfig"]["defaults"]["unit"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{at}: {kind} panel without a unit (fieldConfig.defaults.unit)"));
        }
        let queries = model::queries(panel);
        if queries.is_empty() {
            problems.push(format!("{at}: no queries"));
        }
        let mut ref_ids = BTreeSet::new();
        for q in &queries {
            let qat = format!("{at} query {}", q.ref_id);
            if q.ref_id.is_empty() || !ref_ids.insert(q.ref_id.clone()) {
                problems.push(format!("{qat}: refId empty or used twice"));
            }
            match q.datasource {
                None => problems.push(format!("{qat}: no datasource (neither on the query nor the panel)")),
                Some(ds) => {
                    if let Err(p) = resolve(ds, &ds_vars, provisioned) {
                        problems.push(format!("{qat}: {p}"));
                    }
                }
            }
            let is_elasticsearch = q.datasource_type() == Some("elasticsearch");
            if q.text.trim().is_empty() && !is_elasticsearch {
                problems.push(format!("{qat}: empty query"));
            }
            for name in vars::references(&q.text) {
                if !name.starts_with("__") && !var_names.contains(&name) {
                    problems.push(format!("{qat}: uses ${name}, which is not a variable of this dashboard"));
                }
            }
            if q.datasource_type() == Some("prometheus") {
                for p in contract.check_expr(&strip_vars(&q.text)) {
                    problems.push(format!("{qat}: {p}"));
                }
                let latency = q.text.contains("histogram_quantile(") && q.text.contains("_seconds_bucket");
                if latency && !q.exemplar {
                    problems.push(format!("{qat}: latency quantile without exemplars (set \"exemplar\": true)"));
                }
            }
        }
    }
    problems
}

/// Whether `ds` names a datasource the dashboard can reach.
fn resolve(ds: &Value, ds_vars: &BTreeMap<String, String>, provisioned: &BTreeMap<String, Datasource>) -> Result<(), String> {
    let kind = ds["type"].as_str().unwrap_or_default();
    let uid = match ds {
        Value::String(s) => s.as_str(), // legacy: a datasource name or variable as a plain string
        _ => ds["uid"].as_str().unwrap_or_default(),
    };
    if kind == "grafana" || uid == "-- Grafana --" || uid == "grafana" {
        return Ok(());
    }
    let refs = vars::references(uid);
    if let Some(var) = refs.first() {
        return match ds_vars.get(var) {
            Some(plugin) if plugin == kind => Ok(()),
            Some(plugin) => Err(format!("datasource variable ${var} is of type {plugin}, the query is {kind}")),
            None => Err(format!("datasource uid {uid} refers to no datasource variable")),
        };
    }
    match provisioned.get(uid) {
        Some(p) if p.kind == kind => Ok(()),
        Some(p) => Err(format!("datasource uid {uid} is a provisioned {} datasource, the query says {kind}", p.kind)),
        None => Err(format!(
            "datasource uid '{uid}' is neither provisioned ({:?}) nor a datasource variable",
            provisioned.keys().collect::<Vec<_>>()
        )),
    }
}

/// `label_values(sel, label)` -> `sel`; anything else unchanged.
pub fn label_values_selector(query: &str) -> String {
    let q = query.trim();
    if let Some(inner) = q.strip_prefix("label_values(").and_then(|s| s.strip_suffix(')')) {
        if let Some((sel, _label)) = inner.rsplit_once(',') {
            return sel.trim().to_owned();
        }
        return String::new(); // label_values(label): no selector
    }
    q.to_owned()
}

/// Replaces variable references by a placeholder that keeps PromQL lexable,
/// for the contract check (which only looks at names and labels).
fn strip_vars(text: &str) -> String {
    vars::blank_out(text, "1m")
}

fn find_urls(v: &Value, path: &str, problems: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains("http://") || s.contains("https://") => {
            problems.push(format!("{path}: hard-coded URL in '{s}' (use provisioned datasources and relative links)"));
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| find_urls(x, &format!("{path}[{i}]"), problems)),
        Value::Object(o) => o.iter().for_each(|(k, x)| find_urls(x, &format!("{path}.{k}"), problems)),
        _ => {}
    }
}
