//! A private Prometheus and Alertmanager that watch one [`Saga`] with the
//! project's alert rules, time-scaled, so a test can say which alerts a fault
//! made reach Alertmanager.
//!
//! The SLO rules are rendered by `glasshouse-alerts generate --time-scale 60`
//! (1h -> 1m, 5m -> 5s; see alerts/README.md) into the saga's scratch
//! directory, next to a copy of the hand-written symptom rules
//! (`alerts/rules/symptoms.yaml`), which the generator does not scale: those
//! keep their real windows and `for:` (DeadLetterQueueReceiving fires at the
//! first dead letter; ServiceDown and CircuitBreakerOpen need a minute). The
//! stack's own Prometheus and `alerts/rules/` are never touched. Prometheus scrapes the three services every second as
//! job `glasshouse` with a `service` label, exactly like the stack's file
//! discovery, and evaluates every second. A background task reads
//! Alertmanager's `/api/v2/alerts` every second and remembers every alert it
//! ever saw: that list is the proof an alert reached Alertmanager.
//! `tests/tests/alert_proof.rs` proves the same path down to a webhook.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::poll;
use crate::services::{Saga, bin_dir, free_port};
use crate::stack;

/// One firing episode of one alert, as Alertmanager held it.
#[derive(Debug, Clone)]
pub struct SeenAlert {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// When the poller first saw it (1 s resolution).
    pub first_seen: Instant,
}

/// The private Prometheus + Alertmanager; both stop when this is dropped.
pub struct PrivateAlerting {
    pub prometheus_url: String,
    pub alertmanager_url: String,
    seen: Arc<Mutex<Vec<SeenAlert>>>,
    poller: tokio::task::JoinHandle<()>,
    _prometheus: Child,
    _alertmanager: Child,
}

impl PrivateAlerting {
    /// Renders the time-scaled rules and starts both for `saga`'s three services.
    pub async fn start(saga: &Saga) -> anyhow::Result<Self> {
        let dir = saga.dir.join("alerting");
        std::fs::create_dir_all(&dir)?;
        let rules = dir.join("rules");
        let generated = Command::new(bin_dir()?.join("glasshouse-alerts"))
            .args(["generate", "--time-scale", "60", "--out"])
            .arg(&rules)
            .current_dir(stack::repo_root())
            .output()
            .await?;
        anyhow::ensure!(generated.status.success(), "glasshouse-alerts generate: {}", String::from_utf8_lossy(&generated.stderr));
        std::fs::copy(stack::repo_root().join("alerts/rules/symptoms.yaml"), rules.join("symptoms.yaml"))?;

        let am_port = free_port();
        std::fs::write(
            dir.join("alertmanager.yml"),
            "route:\n  receiver: none\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: none\n",
        )?;
        let alertmanager = spawn(
            "prometheus-alertmanager",
            &[
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", dir.join("am").display()),
                format!("--web.listen-address=127.0.0.1:{am_port}"),
                "--cluster.listen-address=".into(),
                "--log.level=warn".into(),
            ],
            &dir.join("alertmanager.log"),
        )?;
        let alertmanager_url = format!("http://127.0.0.1:{am_port}");
        wait_http(&format!("{alertmanager_url}/-/ready")).await?;

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
        let prometheus = spawn(
            "prometheus",
            &[
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
                "--log.level=warn".into(),
            ],
            &dir.join("prometheus.log"),
        )?;
        let prometheus_url = format!("http://127.0.0.1:{prom_port}");
        wait_http(&format!("{prometheus_url}/-/ready")).await?;

        let seen: Arc<Mutex<Vec<SeenAlert>>> = Arc::default();
        let poller = tokio::spawn(watch_alertmanager(alertmanager_url.clone(), seen.clone()));
        Ok(Self { prometheus_url, alertmanager_url, seen, poller, _prometheus: prometheus, _alertmanager: alertmanager })
    }

    /// Every alert that reached Alertmanager since `since`.
    pub fn seen_since(&self, since: Instant) -> Vec<SeenAlert> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|a| a.first_seen >= since).cloned().collect()
    }

    /// Waits until an alert named `name` has reached Alertmanager since `since`.
    pub async fn wait_for(&self, name: &str, since: Instant, timeout: Duration) -> anyhow::Result<SeenAlert> {
        poll::until(&format!("{name} at Alertmanager"), timeout, Duration::from_millis(500), || async {
            Ok(self.seen_since(since).into_iter().find(|a| a.name == name))
        })
        .await
    }
}

impl Drop for PrivateAlerting {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Remembers each (alert, `startsAt`) pair Alertmanager shows as active.
async fn watch_alertmanager(url: String, seen: Arc<Mutex<Vec<SeenAlert>>>) {
    let http = reqwest::Client::new();
    let mut known: std::collections::HashSet<String> = Default::default();
    loop {
        if let Ok(resp) = http.get(format!("{url}/api/v2/alerts")).timeout(Duration::from_secs(2)).send().await
            && let Ok(alerts) = resp.json::<serde_json::Value>().await
        {
            for a in alerts.as_array().into_iter().flatten() {
                if a["status"]["state"] != "active" {
                    continue;
                }
                let key = format!("{}|{}", a["fingerprint"], a["startsAt"]);
                if !known.insert(key) {
                    continue;
                }
                let labels: BTreeMap<String, String> = a["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let name = labels.get("alertname").cloned().unwrap_or_default();
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(SeenAlert { name, labels, first_seen: Instant::now() });
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn spawn(program: &str, args: &[String], log: &std::path::Path) -> anyhow::Result<Child> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log)?)
        .stderr(std::fs::File::options().append(true).open(log)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {program}: {e} (the stack installs it: `deploy/local/stack install`)"))
}

async fn wait_http(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    poll::until(url, Duration::from_secs(60), Duration::from_millis(200), || {
        let (http, url) = (http.clone(), url.to_owned());
        async move { Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
    })
    .await
}
