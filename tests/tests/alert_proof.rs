//! Proof that the SLO alerting works end to end: a real fault under a real
//! load fires the fast-burn page, and Alertmanager delivers it.
//!
//! The three services run for real; Inventory's catalog fault flag is turned
//! to "every call fails", so `POST /orders` answers 503 and burns the order
//! API availability SLO. The rules are the generated ones rendered with the
//! documented test override (`glasshouse-alerts generate --time-scale 60`:
//! 1h -> 1m, 5m -> 5s), loaded by a Prometheus of this test's own (never the
//! stack's, whose rule files stay as generated), which sends to an
//! Alertmanager of this test's own, whose webhook is a receiver in this test.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_tests::poll;
use glasshouse_tests::services::{Part, Saga, bin_dir, free_port};
use glasshouse_tests::stack;
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, handler, post};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

type Received = Arc<Mutex<Vec<Value>>>;

#[handler]
fn hook(Json(body): Json<Value>, Data(received): Data<&Received>) -> &'static str {
    received.lock().unwrap().push(body);
    "ok"
}

fn spawn(program: &str, args: &[String], log: &std::path::Path) -> anyhow::Result<Child> {
    Ok(Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log)?)
        .stderr(std::fs::File::options().append(true).open(log)?)
        .kill_on_drop(true)
        .spawn()?)
}

async fn wait_http(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    poll::until(url, Duration::from_secs(60), Duration::from_millis(200), || {
        let (http, url) = (http.clone(), url.to_owned());
        async move { Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_fault_under_load_pages_through_alertmanager() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let dir = saga.dir.join("alerting");
    std::fs::create_dir_all(&dir)?;

    // The rules, time-scaled for the test (written outside alerts/rules/).
    let rules = dir.join("rules");
    let generated = Command::new(bin_dir()?.join("glasshouse-alerts"))
        .args(["generate", "--time-scale", "60", "--out"])
        .arg(&rules)
        .current_dir(stack::repo_root())
        .output()
        .await?;
    anyhow::ensure!(generated.status.success(), "generate: {}", String::from_utf8_lossy(&generated.stderr));

    // The webhook receiver.
    let received: Received = Arc::default();
    let hook_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hook_port = hook_listener.local_addr()?.port();
    let hook_app = Route::new().at("/hook", post(hook)).data(received.clone());
    let hook_task = tokio::spawn(glasshouse_platform::app::serve(
        hook_listener,
        hook_app,
        glasshouse_platform::app::Shutdown::new(),
        Duration::from_secs(1),
    ));

    // A private Alertmanager: every alert to the webhook, at once.
    let am_port = free_port();
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n"
        ),
    )?;
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &dir.join("alertmanager.log"),
    )?;
    wait_http(&format!("http://127.0.0.1:{am_port}/-/ready")).await?;

    // A private Prometheus: scrapes the three services every second, evaluates every second.
    let prom_port = free_port();
    let targets: String = [("order", saga.order.port), ("inventory", saga.inventory.port), ("notification", saga.notification.port)]
        .iter()
        .map(|(name, port)| format!("      - targets: ['127.0.0.1:{port}']\n        labels: {{service: {name}}}\n"))
        .collect();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels: {{rules: time-scaled}}\n\
             alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]\n\
             rule_files: ['{}/*.yaml']\n\
             scrape_configs:\n  - job_name: glasshouse\n    static_configs:\n{targets}",
            rules.display()
        ),
    )?;
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir.join("prometheus.log"),
    )?;
    wait_http(&format!("http://127.0.0.1:{prom_port}/-/ready")).await?;

    // Stock to order, then a steady load of orders that runs through the whole test.
    let http = reqwest::Client::new();
    let admin = saga.token("ops", Role::Admin);
    let put = http
        .put(saga.inventory.url("/items/PROOF-1"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "proof item", "price": { "amount_minor": 100, "currency": "EUR" }, "stock": 100000 }))
        .send()
        .await?;
    anyhow::ensure!(put.status().is_success(), "seed: {}", put.text().await?);
    let customer = saga.token("proof-customer", Role::Customer);
    let stop = glasshouse_platform::app::Shutdown::new();
    let load = tokio::spawn({
        let (http, url, stop) = (http.clone(), saga.order.url("/orders"), stop.clone());
        async move {
            let mut statuses = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut i = 0u64;
            while !stop.is_triggered() {
                tick.tick().await;
                i += 1;
                let r = http
                    .post(&url)
                    .bearer_auth(&customer)
                    .header("Idempotency-Key", format!("proof-{i}"))
                    .json(&json!({ "lines": [{ "sku": "PROOF-1", "quantity": 1 }] }))
                    .send()
                    .await;
                statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        }
    });

    // Healthy first: Prometheus sees the orders succeed (the SLI's error
    // series does not exist yet: there is no 5xx to count).
    let prom = format!("http://127.0.0.1:{prom_port}");
    let ratio = |q: &'static str| {
        let (http, prom) = (http.clone(), prom.clone());
        async move {
            let v: Value = http.get(format!("{prom}/api/v1/query")).query(&[("query", q)]).send().await?.json().await?;
            anyhow::Ok(v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<f64>().ok()))
        }
    };
    poll::until("Prometheus to see successful orders", Duration::from_secs(60), Duration::from_millis(500), || async {
        Ok(ratio(r#"sum(rate(http_server_request_duration_seconds_count{service="order",route="/orders",method="POST",status_class="2xx"}[5s]))"#)
            .await?
            .filter(|r| *r > 0.0))
    })
    .await?;
    assert!(received.lock().unwrap().is_empty(), "nothing pages while healthy");

    // The fault: every catalog call fails, so every order is refused with 503.
    std::fs::write(saga.faults_file(Part::Inventory), r#"{"catalog_error_rate": 1.0}"#)?;
    let page = poll::until("the fast-burn page at the webhook", Duration::from_secs(120), Duration::from_millis(500), || async {
        let got = received.lock().unwrap().clone();
        Ok(got
            .into_iter()
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| a["labels"]["alertname"] == "OrderApiAvailabilityFastBurn" && a["status"] == "firing"))
    })
    .await?;
    stop.trigger();
    let statuses = load.await?;
    assert!(
        statuses.contains(&202) && statuses.contains(&503),
        "the load saw both health and the fault: {:?}",
        statuses.iter().collect::<std::collections::BTreeSet<_>>()
    );

    assert_eq!(page["labels"]["severity"], "page");
    assert_eq!(page["labels"]["service"], "order");
    assert_eq!(page["labels"]["slo"], "order-api-availability");
    assert_eq!(page["labels"]["rules"], "time-scaled", "from the test's own Prometheus");
    assert_eq!(page["annotations"]["runbook_url"], "alerts/runbooks/OrderApiAvailabilityFastBurn.md");
    assert!(stack::repo_root().join("alerts/runbooks/OrderApiAvailabilityFastBurn.md").exists());
    hook_task.abort();
    saga.stop().await
}
