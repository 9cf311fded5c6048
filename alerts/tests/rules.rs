//! The rules themselves: promtool accepts them and their unit tests, every alert
//! is well-formed with a runbook and promtool cases, and every query keeps the
//! naming contract of telemetry/METRICS.md.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::PathBuf;

use common::{TempDir, edit, repo, scratch_repo};
use glasshouse_alerts::{checks, promtool, rules};

fn rule_files(repo: &glasshouse_alerts::repo::Repo) -> Vec<PathBuf> {
    rules::load_dir(&repo.rules_dir()).unwrap().into_iter().map(|f| f.path).collect()
}

#[test]
fn promtool_check_rules_accepts_every_rule_file() {
    let repo = repo();
    let files = rule_files(&repo);
    assert!(files.len() >= 2, "expected the generated and the symptom rule files, found {files:?}");
    for f in &files {
        let out = promtool::check_rules(&[f.as_path()]).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(out.contains("SUCCESS"), "{out}");
    }
}

#[test]
fn promtool_check_rules_rejects_a_broken_rule() {
    let (_tmp, repo) = scratch_repo();
    let f = repo.rules_dir().join("symptoms.yaml");
    edit(&f, "expr: up{job=\"glasshouse\"} == 0", "expr: up{job=\"glasshouse\" == 0");
    let err = promtool::check_rules(&[f.as_path()]).unwrap_err();
    assert!(format!("{err:#}").contains("symptoms.yaml"), "{err:#}");
}

#[test]
fn promtool_unit_tests_pass() {
    let repo = repo();
    let files = checks::unit_test_files(&repo).unwrap();
    assert!(files.len() >= 3, "{files:?}");
    let refs: Vec<_> = files.iter().map(PathBuf::as_path).collect();
    let out = promtool::test_rules(&refs).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

#[test]
fn promtool_unit_tests_compare_annotations_exactly() {
    // A one-character change to an expected description must fail the test
    // run, or the suite would not really assert annotations.
    let (_tmp, repo) = scratch_repo();
    let f = repo.promtool_tests_dir().join("symptoms.yaml");
    edit(&f, "is 5m 0s old", "is 5m 1s old");
    let err = promtool::test_rules(&[f.as_path()]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("OutboxBacklogOld") && msg.contains("5m 0s old"), "{msg}");
}

#[test]
fn every_alert_has_severity_annotations_and_a_runbook_with_all_sections() {
    let repo = repo();
    let files = rules::load_dir(&repo.rules_dir()).unwrap();
    let alerts = rules::alerts(&files);
    assert!(alerts.len() >= 12, "expected 6 SLO and 6 symptom alerts, found {}", alerts.len());
    let problems = checks::alert_problems(&repo, &files).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_missing_runbook_or_annotation_is_reported() {
    let (_tmp, repo) = scratch_repo();
    std::fs::remove_file(repo.runbooks_dir().join("CircuitBreakerOpen.md")).unwrap();
    edit(&repo.rules_dir().join("symptoms.yaml"), "severity: page", "severity: critical");
    edit(&repo.runbooks_dir().join("TelemetryDropping.md"), "## Mitigation", "## What to do");
    std::fs::write(repo.runbooks_dir().join("NoSuchAlert.md"), "# orphan\n").unwrap();
    let files = rules::load_dir(&repo.rules_dir()).unwrap();
    let problems = checks::alert_problems(&repo, &files).unwrap().join("\n");
    for expected in [
        "CircuitBreakerOpen (alerts/rules/symptoms.yaml): runbook alerts/runbooks/CircuitBreakerOpen.md is missing",
        "ServiceDown (alerts/rules/symptoms.yaml): label severity is Some(\"critical\")",
        "alerts/runbooks/TelemetryDropping.md: section `## Mitigation` is missing",
        "alerts/runbooks/NoSuchAlert.md: runbook of an alert that no rule defines",
    ] {
        assert!(problems.contains(expected), "expected {expected:?} in:\n{problems}");
    }
}

#[test]
fn every_alert_has_a_firing_and_a_silent_promtool_case() {
    let repo = repo();
    let files = rules::load_dir(&repo.rules_dir()).unwrap();
    let problems = checks::unit_test_problems(&repo, &files).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn an_alert_without_a_silent_case_is_reported() {
    let (_tmp, repo) = scratch_repo();
    // Drop the only silent case of CircuitBreakerOpen.
    edit(
        &repo.promtool_tests_dir().join("symptoms.yaml"),
        "      - eval_time: 2m\n        alertname: CircuitBreakerOpen\n        exp_alerts: []\n",
        "",
    );
    let files = rules::load_dir(&repo.rules_dir()).unwrap();
    let problems = checks::unit_test_problems(&repo, &files).unwrap();
    assert_eq!(problems, ["CircuitBreakerOpen: no promtool case expects it to stay silent"]);
}

/// The naming contract: every series a rule reads is in telemetry/METRICS.md,
/// in alerts/PROPOSED_METRICS.md, or recorded by another rule, with labels the
/// family has.
#[test]
fn every_rule_queries_only_names_of_the_contract() {
    let repo = repo();
    let files = rules::load_dir(&repo.rules_dir()).unwrap();
    let problems = checks::contract_problems(&repo, &files).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_rule_reading_an_unknown_metric_or_label_breaks_the_contract() {
    let (_tmp, repo) = scratch_repo();
    let f = repo.rules_dir().join("symptoms.yaml");
    edit(&f, "max by (service) (outbox_oldest_age_seconds)", "max by (service) (outbox_age_seconds)");
    edit(&f, "max by (service, peer) (circuit_breaker_state)", "max by (service, peer) (circuit_breaker_state{target=\"x\"})");
    let files = rules::load_dir(&repo.rules_dir()).unwrap();
    let problems = checks::contract_problems(&repo, &files).unwrap().join("\n");
    assert!(problems.contains("rule OutboxBacklogOld: `outbox_age_seconds` is not in telemetry/METRICS.md"), "{problems}");
    assert!(problems.contains("rule CircuitBreakerOpen: `circuit_breaker_state` has no label `target`"), "{problems}");
}

#[test]
fn a_proposal_adopted_by_metrics_md_must_leave_the_proposal_list() {
    // `order_completion_seconds` is in METRICS.md now; proposing it again must fail.
    let (_tmp, repo) = scratch_repo();
    std::fs::write(
        repo.proposed_metrics_md(),
        "| name | type | labels | owner |\n| --- | --- | --- | --- |\n| `order_completion_seconds` | histogram | `status` | order |\n",
    )
    .unwrap();
    let err = format!("{:#}", repo.contract().unwrap_err());
    assert!(err.contains("`order_completion_seconds` is proposed") && err.contains("delete its row"), "{err}");
}

#[test]
fn a_scratch_directory_is_not_taken_for_the_repository() {
    let tmp = TempDir::new("glasshouse-alerts-empty");
    let err = glasshouse_alerts::repo::Repo::locate(Some(tmp.path().to_path_buf())).unwrap_err().to_string();
    assert!(err.contains("does not look like the Glasshouse repository"), "{err}");
}

#[test]
fn runbook_queries_keep_the_naming_contract() {
    let problems = checks::runbook_query_problems(&repo()).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");

    let (_tmp, repo) = scratch_repo();
    edit(
        &repo.runbooks_dir().join("ServiceDown.md"),
        "```promql\nup{job=\"glasshouse\"}\n```",
        "```promql\nup_total{job=\"glasshouse\"}\n```",
    );
    let problems = checks::runbook_query_problems(&repo).unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("ServiceDown.md: query `up_total{job=\"glasshouse\"}`"), "{problems:#?}");
}
