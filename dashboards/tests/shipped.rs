//! The shipped dashboards and provisioning files: generated files are current,
//! the structure is sound, and they show what the issue asks for.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeSet;

use glasshouse_alerts::repo::Repo;
use glasshouse_dashboards::model::{self, DashboardFile};
use glasshouse_dashboards::{checker, dashboards_dir, drift, provisioning, provisioning_dir, structure};
use serde_json::Value;

fn repo() -> Repo {
    Repo::locate(None).unwrap()
}

fn shipped() -> Vec<DashboardFile> {
    model::read_dir(&dashboards_dir(repo().root())).unwrap().into_iter().map(|r| r.unwrap()).collect()
}

fn by_uid(uid: &str) -> DashboardFile {
    shipped().into_iter().find(|d| d.json["uid"] == uid).unwrap_or_else(|| panic!("no dashboard with uid {uid}"))
}

/// Every PromQL expression of a dashboard, joined (for "does it query X" checks).
fn exprs(d: &DashboardFile) -> String {
    d.panels().iter().flat_map(|p| model::queries(p)).map(|q| q.text).collect::<Vec<_>>().join("\n")
}

#[test]
fn committed_dashboards_match_a_fresh_generation() {
    let problems = drift(&dashboards_dir(repo().root())).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_hand_edit_of_a_generated_dashboard_is_caught() {
    let tmp = std::env::temp_dir().join(format!("glasshouse-dash-drift-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp).unwrap();
    for r in glasshouse_dashboards::render().unwrap() {
        std::fs::write(tmp.join(&r.file_name), &r.contents).unwrap();
    }
    assert!(drift(&tmp).unwrap().is_empty());
    let f = tmp.join("overview.json");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replacen("Order funnel", "Order tunnel", 1)).unwrap();
    let problems = drift(&tmp).unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("overview.json differs"), "{problems:#?}");
}

#[tokio::test]
async fn shipped_dashboards_have_no_structure_problems() {
    let repo = repo();
    let opts = checker::Options {
        dashboards_dir: dashboards_dir(repo.root()),
        provisioning_dir: provisioning_dir(repo.root()),
        prometheus: None,
        require_data: false,
        lookback: std::time::Duration::from_secs(1800),
    };
    let report = checker::run(&opts, &repo.contract().unwrap()).await.unwrap();
    assert_eq!(report.structure_problems, 0, "{:#?}", report.lines);
    assert_eq!(shipped().len(), 11);
}

#[test]
fn dashboards_reference_datasources_by_variable_and_provisioned_uids_only() {
    let provisioned = provisioning::datasources(&provisioning_dir(repo().root())).unwrap();
    let kinds: BTreeSet<&str> = provisioned.values().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["elasticsearch", "jaeger", "loki", "prometheus"]));
    for d in shipped() {
        for p in d.panels() {
            for q in model::queries(p) {
                let uid = q.datasource.and_then(|ds| ds["uid"].as_str()).unwrap_or_default();
                assert!(uid.starts_with("${"), "{} / {}: datasource {uid} is not a variable", d.title(), model::panel_title(p));
            }
        }
        assert!(!d.json.to_string().contains("http://"), "{} has a hard-coded URL", d.title());
    }
}

#[test]
fn exemplars_link_to_jaeger_and_to_logs_by_trace_id() {
    let provisioned = provisioning::datasources(&provisioning_dir(repo().root())).unwrap();
    let prom = &provisioned["glasshouse-prometheus"];
    let destinations = prom.json_data["exemplarTraceIdDestinations"].as_sequence().unwrap();
    assert!(destinations.iter().any(|d| d["name"] == "trace_id" && d["datasourceUid"] == "glasshouse-jaeger"));
    assert!(
        destinations
            .iter()
            .any(|d| d["url"].as_str().is_some_and(|u| u.contains("/d/glasshouse-logs/") && u.contains("var-trace_id=$${__value.raw}")))
    );
    // The logs dashboard those links open filters both log stores by that variable.
    let logs = by_uid("glasshouse-logs");
    let queries = exprs(&logs);
    assert!(queries.contains(r#"|= "$trace_id""#) && queries.contains("$trace_id"), "{queries}");
    assert_eq!(logs.panels().iter().filter(|p| p["type"] == "logs").count(), 2);
    // Jaeger spans jump to their logs; Loki and Elasticsearch lines link back to the trace.
    assert_eq!(provisioned["glasshouse-jaeger"].json_data["tracesToLogsV2"]["filterByTraceID"], serde_yaml::Value::Bool(true));
    assert_eq!(provisioned["glasshouse-loki"].json_data["derivedFields"][0]["datasourceUid"].as_str(), Some("glasshouse-jaeger"));
    assert_eq!(provisioned["glasshouse-elasticsearch"].json_data["dataLinks"][0]["field"].as_str(), Some("trace.id"));
}

#[test]
fn every_latency_panel_asks_for_exemplars() {
    let mut latency_panels = 0;
    for d in shipped() {
        for p in d.panels() {
            if p["fieldConfig"]["defaults"]["unit"] == "s" && exprs_of(p).contains("histogram_quantile") {
                latency_panels += 1;
                for q in model::queries(p) {
                    assert!(q.exemplar, "{} / {} query {}", d.title(), model::panel_title(p), q.ref_id);
                }
            }
        }
    }
    assert!(latency_panels >= 10, "{latency_panels}");
}

fn exprs_of(p: &Value) -> String {
    model::queries(p).into_iter().map(|q| q.text).collect::<Vec<_>>().join("\n")
}

#[test]
fn overview_has_funnel_red_and_slo_budget() {
    let d = by_uid("glasshouse-overview");
    let q = exprs(&d);
    assert!(q.contains("sum by (status) (increase(orders_total[$__range]))"), "funnel");
    for needle in ["http_server_request_duration_seconds_count", "status_class=\"5xx\"", "http_server_request_duration_seconds_bucket"] {
        assert!(q.contains(needle), "RED: {needle}");
    }
    assert!(q.contains("slo:period_error_budget_remaining:ratio") && q.contains("slo:sli_error:ratio_rate1h"), "SLO");
}

#[test]
fn each_service_dashboard_covers_red_kafka_outbox_breaker_and_pool() {
    for svc in ["order", "inventory", "notification"] {
        let d = by_uid(&format!("glasshouse-{svc}"));
        let q = exprs(&d);
        for metric in [
            "http_server_request_duration_seconds_count",
            "http_server_request_duration_seconds_bucket",
            "messaging_consume_duration_seconds_count",
            "messaging_consumer_lag",
            "messaging_dead_letter_total",
            "outbox_pending",
            "outbox_oldest_age_seconds",
            "circuit_breaker_state",
            "db_pool_connections",
        ] {
            assert!(q.contains(&format!("{metric}{{service=\"{svc}\"")), "{svc}: no panel reads {metric} of the service");
        }
        assert!(q.contains(&format!("{{service=\"{svc}\"}} |~ \"$trace_id\"")), "{svc}: no logs panel by trace id");
    }
}

#[test]
fn order_flow_and_loadtest_dashboards_show_what_they_promise() {
    let flow = exprs(&by_uid("glasshouse-order-flow"));
    assert!(
        flow.contains("order_to_notification_seconds_bucket")
            && flow.contains("messaging_consumer_lag")
            && flow.contains("outbox_oldest_age_seconds")
    );
    let load = exprs(&by_uid("glasshouse-loadtest"));
    for m in
        ["loadtest_requests_total", "loadtest_request_duration_seconds_bucket", "loadtest_dropped_iterations_total", "loadtest_target_rate"]
    {
        assert!(load.contains(m), "loadtest dashboard lacks {m}");
    }
    assert!(load.contains("http_server_request_duration_seconds_bucket"), "no system-side latency beside the runner's");
}

#[test]
fn structure_check_reports_each_kind_of_problem() {
    let repo = repo();
    let provisioned = provisioning::datasources(&provisioning_dir(repo.root())).unwrap();
    let contract = repo.contract().unwrap();
    let d = DashboardFile { path: "broken.json".into(), json: broken_dashboard() };
    let problems = structure::check(&d, &provisioned, &contract).join("\n");
    for expected in [
        "schemaVersion is Some(20), expected at least 39",
        "panel 'No unit': timeseries panel without a unit",
        "panel 'Same id': id 1 is used by another panel",
        "panel 'Empty query' query A: empty query",
        "panel 'Unknown datasource' query A: datasource uid 'nope' is neither provisioned",
        "panel 'Unknown metric' query A: `orders_placed_total` is not in telemetry/METRICS.md",
        "panel 'Unknown variable' query A: uses $nope, which is not a variable of this dashboard",
        "panel 'No exemplars' query A: latency quantile without exemplars",
        "hard-coded URL in 'http://grafana.example/d/x'",
    ] {
        assert!(problems.contains(expected), "expected {expected:?} in:\n{problems}");
    }
}

/// A dashboard with one problem per panel (shared with the checker CLI test by copy).
fn broken_dashboard() -> Value {
    let ds = serde_json::json!({ "type": "prometheus", "uid": "${datasource}" });
    let ts = |id: u64, title: &str, unit: Option<&str>, target: Value| {
        let mut p = serde_json::json!({
            "id": id, "type": "timeseries", "title": title, "gridPos": { "x": 0, "y": 0, "w": 12, "h": 8 },
            "datasource": ds, "fieldConfig": { "defaults": {}, "overrides": [] }, "targets": [target],
        });
        if let Some(u) = unit {
            p["fieldConfig"]["defaults"]["unit"] = serde_json::json!(u);
        }
        p
    };
    let q = |expr: &str| serde_json::json!({ "refId": "A", "expr": expr, "datasource": ds });
    serde_json::json!({
        "uid": "broken", "title": "Broken", "schemaVersion": 20,
        "links": [{ "title": "x", "type": "link", "url": "http://grafana.example/d/x" }],
        "templating": { "list": [{ "name": "datasource", "type": "datasource", "query": "prometheus" }] },
        "panels": [
            ts(1, "No unit", None, q("up")),
            ts(1, "Same id", Some("short"), q("up")),
            ts(3, "Empty query", Some("short"), q("")),
            ts(4, "Unknown datasource", Some("short"), serde_json::json!({ "refId": "A", "expr": "up", "datasource": { "type": "prometheus", "uid": "nope" } })),
            ts(5, "Unknown metric", Some("short"), q("sum(rate(orders_placed_total[5m]))")),
            ts(6, "Unknown variable", Some("short"), q("up{instance=~\"$nope\"}")),
            ts(7, "No exemplars", Some("s"), q("histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))")),
        ],
    })
}
