//! What every scenario does around its fault: start the saga (and a private
//! Prometheus + Alertmanager watching it), seed a catalog, drive load, stop
//! and restart services, then settle, audit and record a row.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use glasshouse_platform::auth::Role;
use glasshouse_tests::alerting::PrivateAlerting;
use glasshouse_tests::poll;
use glasshouse_tests::private_stack::PrivateStack;
use glasshouse_tests::services::{Backends, Part, Saga};
use glasshouse_tests::stack::FERRETDB;
use serde_json::json;

use crate::audit::{self, AuditOutcome, AuditTarget};
use crate::driver::{self, Catalog, Load, LoadResult, Target};
use crate::kafka;
use crate::report::{self, Check, Row};

/// Orders per second of the default load: modest, the machine is shared.
pub const RATE: f64 = 10.0;
/// Longest wait, after the fault is cleared, for every accepted order to be
/// final. Above the saga timeout (`APP_SAGA__TIMEOUT_SECONDS`, 120 s by
/// default), which rejects an order Inventory never answered, plus margin.
pub const SETTLE: Duration = Duration::from_secs(150);
/// Longest wait, once every order is final, for the rest to catch up
/// (notifications stored, outboxes drained) before the audit's verdict.
const QUIESCE: Duration = Duration::from_secs(45);
/// Stock of each plentiful SKU, and of the scarce one.
const PLENTY: i64 = 1_000_000;
const SCARCE: i64 = 40;

/// What a scenario makes happen on purpose, beyond "every order final".
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    /// Messages it puts in the dead-letter topics (poison events).
    pub dead_letters: u64,
    /// Alerts that must reach the private Alertmanager (waited for after the
    /// audit, up to 60 s).
    pub alerts: &'static [&'static str],
    /// Whether the fault may legitimately leave an order without a verdict
    /// for `saga.timeout_seconds` (Inventory's database away longer than the
    /// timeout), so that Order rejects it as `timeout`. Otherwise every
    /// accepted order must end through the saga itself: a timeout then means
    /// the flow stalled after the fault was cleared.
    pub saga_timeouts: bool,
}

impl Expect {
    /// No dead letters, no alert required, no saga timeout.
    pub const NOTHING: Expect = Expect { dead_letters: 0, alerts: &[], saga_timeouts: false };
}

/// A saga under test and everything the rows need to remember about it.
pub struct Chaos {
    pub saga: Saga,
    pub alerting: PrivateAlerting,
    pub private: Option<PrivateStack>,
    pub http: reqwest::Client,
    catalog: Catalog,
    /// Order's database, polled for final states (reconnects after an outage).
    orders: sqlx::PgPool,
    /// Duplicates counted by service processes that have since been stopped.
    carried_duplicates: f64,
    /// Dead letters made on purpose so far (the audit's expectation).
    expected_dead_letters: u64,
    next_seq: u64,
    rows: Vec<Row>,
}

/// One scenario in progress.
pub struct Phase {
    id: String,
    scenario: String,
    fault: String,
    pub started: Instant,
    load: Load,
    target: Target,
    duplicates_at_start: f64,
    dead_letters_at_start: u64,
}

impl Phase {
    /// Waits (deadline `timeout`) until `n` more orders than now were accepted:
    /// "the load is flowing", as a condition instead of a fixed pause.
    pub async fn wait_more_accepted(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let base = self.load.accepted_so_far();
        poll::until(&format!("{n} more accepted orders"), timeout, Duration::from_millis(100), || async {
            Ok((self.load.accepted_so_far() >= base + n).then_some(()))
        })
        .await
    }

    /// Orders accepted so far in this scenario.
    pub fn accepted_so_far(&self) -> usize {
        self.load.accepted_so_far()
    }

    /// Sorted latencies of the answers with `status` to requests due in `[from, to)`.
    pub fn attempts_latencies(&self, from: Instant, to: Instant, status: u16) -> Vec<Duration> {
        LoadResult { attempts: self.attempts() }.latencies(from, to, |o| matches!(o, driver::Outcome::Refused(s, _) if *s == status))
    }

    /// Every attempt so far (the load keeps running).
    pub fn attempts(&self) -> Vec<driver::Attempt> {
        self.load.snapshot()
    }
}

impl Chaos {
    /// Starts the saga on `backends` (with `private` kept alive alongside),
    /// the private alerting, and seeds the catalog.
    pub async fn start(backends: Backends, private: Option<PrivateStack>) -> anyhow::Result<Self> {
        let saga = Saga::start_on(backends).await?;
        let alerting = PrivateAlerting::start(&saga).await?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let admin = saga.token("chaos-ops", Role::Admin);
        let plenty: Vec<String> = ["CHAOS-A", "CHAOS-B", "CHAOS-C", "CHAOS-D", "CHAOS-E"].map(String::from).to_vec();
        let scarce = "CHAOS-SCARCE".to_owned();
        for (sku, stock) in plenty.iter().map(|s| (s.clone(), PLENTY)).chain([(scarce.clone(), SCARCE)]) {
            let resp = http
                .put(saga.inventory.url(&format!("/items/{sku}")))
                .bearer_auth(&admin)
                .json(
                    &json!({ "name": format!("{sku} (chaos suite)"), "price": { "amount_minor": 250, "currency": "EUR" }, "stock": stock }),
                )
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "seed {sku}: {} {}", resp.status(), resp.text().await?);
        }
        let orders = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(&saga.orders_db_url)?;
        Ok(Self {
            saga,
            alerting,
            private,
            http,
            catalog: Catalog { plenty, scarce },
            orders,
            carried_duplicates: 0.0,
            expected_dead_letters: 0,
            next_seq: 0,
            rows: Vec::new(),
        })
    }

    /// Starts a scenario: `rate` orders/s from now on.
    pub async fn begin(&mut self, id: &str, scenario: &str, fault: &str, rate: f64) -> anyhow::Result<Phase> {
        self.begin_burst(id, scenario, fault, rate, None).await
    }

    /// [`Chaos::begin`] with a load of `arrivals` orders only (`None`: until the scenario ends).
    pub async fn begin_burst(&mut self, id: &str, scenario: &str, fault: &str, rate: f64, arrivals: Option<u64>) -> anyhow::Result<Phase> {
        let target = Target {
            http: self.http.clone(),
            url: self.saga.order.url("/orders"),
            // A fresh token per scenario: a whole test outlives one token's 15 minutes.
            token: self.saga.token("chaos-customer", Role::Customer),
            catalog: self.catalog.clone(),
        };
        let duplicates_at_start = self.duplicates().await?;
        let dead_letters_at_start = self.dead_letter_total().await?;
        let seq0 = self.next_seq;
        self.next_seq += 1_000_000;
        tracing::info!(scenario, "scenario starts");
        eprintln!("chaos: {id}: {scenario}");
        Ok(Phase {
            id: id.to_owned(),
            scenario: scenario.to_owned(),
            fault: fault.to_owned(),
            started: Instant::now(),
            load: Load::start(target.clone(), rate, arrivals, 200, seq0),
            target,
            duplicates_at_start,
            dead_letters_at_start,
        })
    }

    /// `messaging_consume_duration_seconds_count{outcome="duplicate"}` summed
    /// over the three services, including processes already stopped.
    async fn duplicates(&self) -> anyhow::Result<f64> {
        let mut total = self.carried_duplicates;
        for part in Part::ALL {
            total += self.metric(part, "messaging_consume_duration_seconds_count", &[r#"outcome="duplicate""#]).await?;
        }
        Ok(total)
    }

    /// The sum of the samples of `name` whose labels contain every `labels`
    /// fragment, from `part`'s `/metrics`.
    pub async fn metric(&self, part: Part, name: &str, labels: &[&str]) -> anyhow::Result<f64> {
        let text = self.http.get(self.saga.service(part).url("/metrics")).send().await?.error_for_status()?.text().await?;
        Ok(sum_samples(&text, name, labels))
    }

    async fn dead_letter_total(&self) -> anyhow::Result<u64> {
        Ok(kafka::dead_letters(&self.saga.kafka, &self.saga.prefix).await?.values().sum())
    }

    /// Remembers what `part` counted before it goes away.
    async fn carry(&mut self, part: Part) {
        match self.metric(part, "messaging_consume_duration_seconds_count", &[r#"outcome="duplicate""#]).await {
            Ok(n) => self.carried_duplicates += n,
            Err(e) => tracing::warn!(service = part.name(), error = %e, "could not read duplicates before stopping"),
        }
    }

    /// SIGKILL `part` and wait for it to be gone.
    pub async fn kill(&mut self, part: Part) -> anyhow::Result<()> {
        self.carry(part).await;
        self.saga.kill(part).await
    }

    /// SIGTERM `part`; its exit status, `None` if it outlived `deadline`.
    pub async fn terminate(&mut self, part: Part, deadline: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.carry(part).await;
        self.saga.terminate(part, deadline).await
    }

    /// Starts `part` again on its port and settings; returns once ready.
    pub async fn restart(&mut self, part: Part) -> anyhow::Result<()> {
        self.saga.restart(part).await
    }

    /// Replaces `part`'s fault flag file (`glasshouse_platform::faults`;
    /// [`Saga::faults_file`]) in one rename, so the service never reads half a file.
    ///
    /// [`Saga::faults_file`]: glasshouse_tests::services::Saga::faults_file
    pub fn set_faults(&self, part: Part, flags: serde_json::Value) -> anyhow::Result<()> {
        let path = self.saga.faults_file(part);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, flags.to_string())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Waits until `part`'s `/metrics` shows `fault_flag_active{flag}` at
    /// `active`; a [`Check`] saying whether it did within 15 s.
    pub async fn flag_visible(&self, part: Part, flag: &str, active: bool) -> Check {
        let want = if active { 1.0 } else { 0.0 };
        let label = format!(r#"flag="{flag}""#);
        let name = part.name();
        let seen = poll::until(
            &format!("{name}: fault_flag_active{{{label}}} {want}"),
            Duration::from_secs(15),
            Duration::from_millis(250),
            || async {
                let text = self.http.get(self.saga.service(part).url("/metrics")).send().await?.error_for_status()?.text().await?;
                // Absent is not 0: the series must be there.
                let present = text.lines().any(|l| l.starts_with(&format!("fault_flag_active{{{label}}}")));
                Ok((present && sum_samples(&text, "fault_flag_active", &[&label]) == want).then_some(()))
            },
        )
        .await;
        Check::new(
            format!("{name}: fault_flag_active{{flag=\"{flag}\"}} = {want}"),
            seen.is_ok(),
            match seen {
                Ok(()) => format!("seen on {name}'s /metrics"),
                Err(e) => format!("{e:#}"),
            },
        )
    }

    /// Waits until `part`'s log holds `changes` "fault flag changed" lines
    /// naming `flag` (the watcher logs each change with its old and new
    /// value); a [`Check`] saying whether it did within 15 s.
    pub async fn flag_logged(&self, part: Part, flag: &str, changes: usize) -> Check {
        let log = self.saga.service(part).log.clone();
        let name = part.name();
        let count = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("fault flag changed") && l.contains(flag))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let seen = poll::until(
            &format!("{changes} changes of {flag} in {name}'s log"),
            Duration::from_secs(15),
            Duration::from_millis(250),
            || {
                let lines = count();
                async move { Ok((lines.len() >= changes).then_some(lines)) }
            },
        )
        .await;
        Check::new(
            format!("{name}: {flag} changes logged"),
            seen.is_ok(),
            match seen {
                Ok(lines) => format!(
                    "{} \"fault flag changed\" lines in {name}'s log, the last: {}",
                    lines.len(),
                    lines.last().map(|l| l.trim()).unwrap_or_default()
                ),
                Err(e) => format!("{e:#}"),
            },
        )
    }

    /// `POST /orders/{id}/cancel` as the customer who placed it; the status.
    pub async fn cancel(&self, phase: &Phase, id: uuid::Uuid) -> anyhow::Result<u16> {
        let resp = self.http.post(self.saga.order.url(&format!("/orders/{id}/cancel"))).bearer_auth(&phase.target.token).send().await?;
        Ok(resp.status().as_u16())
    }

    /// Orders in Order's database still PENDING now.
    pub async fn pending(&self) -> anyhow::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM orders WHERE status = 'PENDING'").fetch_one(&self.orders).await?;
        Ok(n)
    }

    /// Orders Inventory holds a reservation for (released or not).
    pub async fn reserved_orders(&self) -> anyhow::Result<i64> {
        let my = sqlx::mysql::MySqlPoolOptions::new().max_connections(1).connect(&self.saga.inventory_db_url).await?;
        let (n,): (i64,) = sqlx::query_as("SELECT count(DISTINCT order_id) FROM reservations").fetch_one(&my).await?;
        my.close().await;
        Ok(n)
    }

    /// Accepted ids that are final now (and whether each exists at all).
    async fn states(&self, ids: &[uuid::Uuid]) -> anyhow::Result<BTreeMap<uuid::Uuid, String>> {
        let rows: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT id, status FROM orders WHERE id = ANY($1)").bind(ids).fetch_all(&self.orders).await?;
        Ok(rows.into_iter().collect())
    }

    fn audit_target(&self) -> AuditTarget {
        AuditTarget {
            orders_db_url: self.saga.orders_db_url.clone(),
            inventory_db_url: self.saga.inventory_db_url.clone(),
            mongo_url: format!("mongodb://{}/", FERRETDB.addr()),
            mongo_db: self.saga.mongo_db.clone(),
            kafka: self.saga.kafka.clone(),
            topic_prefix: self.saga.prefix.clone(),
            expected_dead_letters: self.expected_dead_letters,
        }
    }

    /// Ends a scenario whose fault was cleared at `cleared`: stops the load,
    /// replays lost answers, waits for every accepted order to be final,
    /// audits, waits for the alerts `expect` names, and records the row.
    pub async fn finish(&mut self, phase: Phase, cleared: Instant, mut checks: Vec<Check>, expect: Expect) -> anyhow::Result<()> {
        let Phase { id, scenario, fault, started, load, target, duplicates_at_start, dead_letters_at_start } = phase;
        let expected_dead_letters = expect.dead_letters;
        let mut result: LoadResult = load.stop().await?;
        let ambiguous = driver::replay_ambiguous(&target, &mut result, Duration::from_secs(60)).await;
        let accepted = result.accepted();
        self.expected_dead_letters += expected_dead_letters;

        // Settle: every accepted order final, or the deadline.
        let total = accepted.len();
        let this = &*self;
        let settled = poll::until("every accepted order final", SETTLE, Duration::from_millis(500), || async {
            let states = this.states(&accepted).await?;
            let final_ = states.values().filter(|s| *s != "PENDING").count();
            Ok((final_ == total).then(Instant::now))
        })
        .await;
        let recover_s = settled.as_ref().ok().map(|at| at.saturating_duration_since(cleared).as_secs_f64());
        let states = self.states(&accepted).await?;
        let lost = accepted.iter().filter(|id| !states.contains_key(id)).count();
        let stuck = states.values().filter(|s| *s == "PENDING").count();
        let (timeouts,): (i64,) = sqlx::query_as("SELECT count(*) FROM orders WHERE id = ANY($1) AND rejection_reason = 'timeout'")
            .bind(&accepted)
            .fetch_one(&self.orders)
            .await?;
        checks.push(Check::new(
            "no saga timeout",
            expect.saga_timeouts || timeouts == 0,
            format!(
                "{timeouts} of {total} accepted orders rejected by the saga timeout{}",
                if expect.saga_timeouts { " (allowed: the fault outlasts the timeout)" } else { "" }
            ),
        ));

        // Quiesce: let notifications and outboxes catch up, then the verdict.
        // (A loop rather than poll::until: the last outcome is the verdict either way.)
        let target_audit = self.audit_target();
        let quiet_by = Instant::now() + QUIESCE;
        let outcome: AuditOutcome = loop {
            let o = audit::audit(&target_audit).await.unwrap_or_else(|e| AuditOutcome {
                violations: vec![format!("the audit could not run: {e:#}")],
                summary: "not run".into(),
            });
            if o.passed() || Instant::now() >= quiet_by {
                break o;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };

        for name in expect.alerts {
            let seen = self.alerting.wait_for(name, started, Duration::from_secs(60)).await;
            checks.push(Check::new(
                format!("{name} at Alertmanager"),
                seen.is_ok(),
                match &seen {
                    Ok(a) => format!(
                        "reached Alertmanager {:.0} s into the scenario, labels {:?}",
                        a.first_seen.duration_since(started).as_secs_f64(),
                        a.labels
                    ),
                    Err(e) => format!("{e:#}"),
                },
            ));
        }
        let duplicates = (self.duplicates().await? - duplicates_at_start).max(0.0).round() as u64;
        let dead_letters = self.dead_letter_total().await?.saturating_sub(dead_letters_at_start);
        let mut alerts: Vec<String> = self.alerting.seen_since(started).into_iter().map(|a| a.name).collect();
        alerts.sort();
        alerts.dedup();

        let row = Row {
            id,
            scenario,
            fault,
            accepted: accepted.len(),
            refused: result.refused(),
            ambiguous,
            dropped: result.count(|o| *o == driver::Outcome::Dropped),
            lost,
            stuck,
            duplicates,
            dead_letters,
            expected_dead_letters,
            recover_s,
            alerts,
            audit_violations: outcome.violations,
            audit_summary: outcome.summary,
            checks,
            duration_s: started.elapsed().as_secs_f64(),
            run_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit: commit(),
        };
        let doc = report::record(&row)?;
        eprintln!(
            "chaos: {}: {} (accepted {}, lost {}, stuck {}, duplicates {}, dead letters {}, recover {:?} s) -> {}",
            row.id,
            if row.passed() { "PASS".to_owned() } else { format!("FAIL: {}", row.failures().join("; ")) },
            row.accepted,
            row.lost,
            row.stuck,
            row.duplicates,
            row.dead_letters,
            row.recover_s.map(|s| (s * 10.0).round() / 10.0),
            doc.display()
        );
        self.rows.push(row);
        Ok(())
    }

    /// Stops everything; fails naming every row that failed.
    pub async fn conclude(self) -> anyhow::Result<()> {
        let Chaos { saga, alerting, private, rows, orders, .. } = self;
        orders.close().await;
        drop(alerting);
        let mongo = format!("mongodb://{}/", FERRETDB.addr());
        let mongo_db = saga.mongo_db.clone();
        saga.stop().await?;
        if let Ok(client) = mongodb::Client::with_uri_str(&mongo).await {
            let _ = client.database(&mongo_db).drop().await;
        }
        if let Some(p) = private {
            p.shutdown().await?;
        }
        let failed: Vec<String> = rows.iter().filter(|r| !r.passed()).map(|r| format!("{}: {}", r.id, r.failures().join("; "))).collect();
        anyhow::ensure!(failed.is_empty(), "{} of {} scenarios failed:\n{}", failed.len(), rows.len(), failed.join("\n"));
        Ok(())
    }
}

/// Sum of the samples of `name` (exact family sample name) whose label set
/// contains every fragment in `labels`, in Prometheus text format.
pub fn sum_samples(text: &str, name: &str, labels: &[&str]) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        // The value follows the label set (an exemplar may follow the value).
        let (label_set, after) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some((l, a)) => (l, a),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        if labels.iter().all(|f| label_set.contains(f))
            && let Some(v) = after.split_whitespace().next().and_then(|v| v.parse::<f64>().ok())
        {
            total += v;
        }
    }
    total
}

/// The short commit the suite ran on (`unknown` outside a git checkout).
fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(glasshouse_tests::stack::repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
