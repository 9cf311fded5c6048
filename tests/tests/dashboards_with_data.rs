//! The naming contract, proven end to end: the three services run, Prometheus
//! scrapes them, the load runner drives the order flow for a short while,
//! and then every panel query of every shipped dashboard must return data
//! (`glasshouse-dashboards check --require-data`, run against the real Prometheus).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Stdio;
use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::{Saga, bin_dir};
use glasshouse_tests::stack::{self, PROMETHEUS};
use serde_json::json;

/// Registers a service with the stack's Prometheus as job `glasshouse`, labelled
/// `service=<name>` (what dashboards and alerts select on), until dropped.
struct Target(std::path::PathBuf);

impl Target {
    fn register(name: &str, port: u16) -> anyhow::Result<Self> {
        let dir = stack::prometheus_targets_dir()?.join("glasshouse");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{}.json", stack::unique_name(name)));
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, json!([{ "targets": [format!("127.0.0.1:{port}")], "labels": { "service": name } }]).to_string())?;
        std::fs::rename(&tmp, &file)?;
        Ok(Self(file))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_has_data_after_a_short_load() -> anyhow::Result<()> {
    stack::require(PROMETHEUS).await?;
    let saga = Saga::start().await?;
    let _targets = [
        Target::register("order", saga.order.port)?,
        Target::register("inventory", saga.inventory.port)?,
        Target::register("notification", saga.notification.port)?,
    ];
    let http = reqwest::Client::new();
    let admin = saga.token("ops", Role::Admin);
    for (i, stock) in [1000, 1000, 1000, 2].into_iter().enumerate() {
        let resp = http
            .put(saga.inventory.url(&format!("/items/DASH-{i}")))
            .bearer_auth(&admin)
            .json(
                &json!({ "name": format!("dashboard item {i}"), "price": { "amount_minor": 100 + i, "currency": "EUR" }, "stock": stock }),
            )
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "seed DASH-{i}: {}", resp.text().await?);
    }
    // Prometheus must be scraping all three before the load, or rates miss it.
    let prom = PROMETHEUS.http();
    poll::until("Prometheus to scrape the three services", Duration::from_secs(60), Duration::from_millis(500), || async {
        let v: serde_json::Value = http
            .get(format!("{prom}/api/v1/query"))
            .query(&[(
                "query",
                format!(
                    r#"count(up{{job="glasshouse",instance=~"127.0.0.1:({}|{}|{})"}} == 1)"#,
                    saga.order.port, saga.inventory.port, saga.notification.port
                ),
            )])
            .send()
            .await?
            .json()
            .await?;
        Ok((v["data"]["result"][0]["value"][1] == "3").then_some(()))
    })
    .await?;

    // 25 s of the order flow with the real runner (it registers itself with Prometheus too).
    let tokens: Vec<String> = (0..10).map(|i| saga.token(&format!("dash-customer-{i}"), Role::Customer)).collect();
    let out = saga.dir.join("load");
    let status = tokio::process::Command::new(bin_dir()?.join("glasshouse-loadtest"))
        .args(["run", "--config"])
        .arg(stack::repo_root().join("loadtest/scenarios/order-flow.yaml"))
        .args(["--duration", "25s", "--rate", "8", "--quiet", "--metrics-port", "0", "--out"])
        .arg(&out)
        .arg("--target")
        .arg(format!("order={}", saga.order.url("")))
        .arg("--target")
        .arg(format!("inventory={}", saga.inventory.url("")))
        .arg("--target")
        .arg(format!("notification={}", saga.notification.url("")))
        .env("GLASSHOUSE_LOADTEST_TOKEN", tokens.join(" "))
        .stdout(Stdio::null())
        .status()
        .await?;
    // 1 = a threshold breached, which still produced the load (and its data).
    anyhow::ensure!(matches!(status.code(), Some(0 | 1)), "the load runner failed: {status}");

    // Recording rules and rates need a few evaluations after the last scrape of the load.
    let check = poll::until("every panel to have data", Duration::from_secs(120), Duration::from_secs(5), || async {
        let output = tokio::process::Command::new(bin_dir()?.join("glasshouse-dashboards"))
            .args(["check", "--require-data", "--prometheus", &prom])
            .current_dir(stack::repo_root())
            .output()
            .await?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            Ok(Some(text))
        } else {
            Err(anyhow::anyhow!(
                "checker still failing:\n{}",
                text.lines().filter(|l| l.contains("EMPTY [fatal") || l.contains("ERROR")).collect::<Vec<_>>().join("\n")
            ))
        }
    })
    .await?;
    assert!(check.contains("0 ERROR"), "{check}");
    saga.stop().await
}
