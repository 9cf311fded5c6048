//! The reconciliation audit the suite runs after each scenario, behind one
//! small adapter ([`audit`]) so the suite does not care who implements it.
//!
//! Today the checks are the suite's own, straight over the real databases
//! and the broker ([`interim`]). The `glasshouse-ops` crate's
//! `glasshouse_ops::audit::run_audit(&AuditConfig)` checks the same
//! invariants; once it is in the workspace, [`audit`] builds its
//! `AuditConfig` from [`AuditTarget`], maps `report.violations()` to
//! [`AuditOutcome::violations`] and its `Display` to
//! [`AuditOutcome::summary`], and [`interim`] goes.
//!
//! The invariants ("nothing accepted is lost or stuck, no oversell"):
//! - every order is final (the load has stopped before the audit runs, so no
//!   order is legitimately young);
//! - per SKU: stock >= 0 and stock + units actively reserved == the seeded
//!   stock (the suite restocks and adjusts nothing);
//! - the active reservations are exactly the lines of the CONFIRMED orders;
//! - one notification per order event: `order.created` and the final
//!   event exactly once each (a cancelled order may also have had its
//!   `order.confirmed`, at most once);
//! - no outbox row of either service is unsent;
//! - the dead-letter topics hold exactly the messages the scenarios put
//!   there on purpose (listed by topic).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};

use crate::kafka;

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditTarget {
    pub orders_db_url: String,
    pub inventory_db_url: String,
    pub mongo_url: String,
    pub mongo_db: String,
    pub kafka: String,
    pub topic_prefix: String,
    /// Stock each SKU was seeded with.
    pub initial_stock: BTreeMap<String, i64>,
    /// Dead letters the scenarios produced on purpose (poison events), in total.
    pub expected_dead_letters: u64,
}

/// The verdict.
#[derive(Debug, Clone, Default)]
pub struct AuditOutcome {
    /// One line per broken invariant, with counts and a few examples.
    pub violations: Vec<String>,
    /// What was checked, in numbers, dead letters per topic included (for the report).
    pub summary: String,
}

impl AuditOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs the audit (see the module doc for what replaces the body).
pub async fn audit(target: &AuditTarget) -> anyhow::Result<AuditOutcome> {
    interim::run(target).await
}

/// The suite's own checks, until `glasshouse_ops::audit` is in the workspace.
mod interim {
    use super::*;

    /// At most this many ids are quoted in one violation.
    const EXAMPLES: usize = 3;

    fn examples<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
        items.into_iter().take(EXAMPLES).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    }

    pub async fn run(t: &AuditTarget) -> anyhow::Result<AuditOutcome> {
        let pg = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&t.orders_db_url).await?;
        let my = sqlx::mysql::MySqlPoolOptions::new().max_connections(2).connect(&t.inventory_db_url).await?;
        let result = checks(t, &pg, &my).await;
        pg.close().await;
        my.close().await;
        result
    }

    async fn checks(t: &AuditTarget, pg: &sqlx::PgPool, my: &sqlx::MySqlPool) -> anyhow::Result<AuditOutcome> {
        let mut v = Vec::new();

        // Orders: all final.
        let orders: Vec<(String, String)> = sqlx::query_as("SELECT id::text, status FROM orders").fetch_all(pg).await?;
        let status: HashMap<&str, &str> = orders.iter().map(|(id, s)| (id.as_str(), s.as_str())).collect();
        let pending: Vec<&str> = orders.iter().filter(|(_, s)| s == "PENDING").map(|(id, _)| id.as_str()).collect();
        if !pending.is_empty() {
            v.push(format!("{} orders not final (PENDING), e.g. {}", pending.len(), examples(&pending)));
        }
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, s) in &orders {
            *by_status.entry(s.as_str()).or_default() += 1;
        }

        // Stock: never below zero; stock + actively reserved units == seeded stock.
        let stock: BTreeMap<String, i64> =
            sqlx::query_as::<_, (String, i64)>("SELECT CAST(sku AS CHAR), stock FROM items").fetch_all(my).await?.into_iter().collect();
        let reserved: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT CAST(sku AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM reservations WHERE released_at IS NULL GROUP BY sku",
        )
        .fetch_all(my)
        .await?
        .into_iter()
        .collect();
        for (sku, initial) in &t.initial_stock {
            let Some(&s) = stock.get(sku) else {
                v.push(format!("SKU {sku} is missing from items"));
                continue;
            };
            let r = reserved.get(sku).copied().unwrap_or(0);
            if s < 0 {
                v.push(format!("SKU {sku}: stock {s} is below zero"));
            }
            if s + r != *initial {
                v.push(format!("SKU {sku}: stock {s} + reserved {r} = {} but {initial} were seeded", s + r));
            }
        }

        // Reservations: exactly the lines of the confirmed orders.
        let active: BTreeSet<(String, String, i64)> = sqlx::query_as::<_, (String, String, i32)>(
            "SELECT CAST(order_id AS CHAR), CAST(sku AS CHAR), quantity FROM reservations WHERE released_at IS NULL",
        )
        .fetch_all(my)
        .await?
        .into_iter()
        .map(|(o, s, q)| (o, s, i64::from(q)))
        .collect();
        let confirmed_lines: BTreeSet<(String, String, i64)> = sqlx::query_as::<_, (String, String, i32)>(
            "SELECT o.id::text, l.sku, l.quantity FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.status = 'CONFIRMED'",
        )
        .fetch_all(pg)
        .await?
        .into_iter()
        .map(|(o, s, q)| (o, s, i64::from(q)))
        .collect();
        let not_confirmed: BTreeSet<&str> = active.difference(&confirmed_lines).map(|(o, _, _)| o.as_str()).collect();
        if !not_confirmed.is_empty() {
            let shown: Vec<String> = not_confirmed.iter().map(|o| format!("{o} ({})", status.get(o).unwrap_or(&"no such order"))).collect();
            v.push(format!("{} orders hold reservations without being CONFIRMED, e.g. {}", not_confirmed.len(), examples(shown)));
        }
        let unreserved: BTreeSet<&str> = confirmed_lines.difference(&active).map(|(o, _, _)| o.as_str()).collect();
        if !unreserved.is_empty() {
            v.push(format!("{} CONFIRMED orders lack their reservations, e.g. {}", unreserved.len(), examples(&unreserved)));
        }

        // Notifications: order.created and the final event, once each, for every final order.
        let client = mongodb::Client::with_uri_str(&t.mongo_url).await?;
        let docs: Vec<Document> = client
            .database(&t.mongo_db)
            .collection::<Document>("notifications")
            .find(doc! {})
            .projection(doc! { "order_id": 1, "event_type": 1 })
            .await?
            .try_collect()
            .await?;
        let mut per_order: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
        for d in &docs {
            let (Ok(o), Ok(e)) = (d.get_str("order_id"), d.get_str("event_type")) else { continue };
            *per_order.entry(o.to_owned()).or_default().entry(e.to_owned()).or_default() += 1;
        }
        let mut wrong = Vec::new();
        for (id, s) in &orders {
            if s == "PENDING" {
                continue;
            }
            let mut want: BTreeMap<String, usize> =
                [("order.created".to_owned(), 1), (format!("order.{}", s.to_lowercase()), 1)].into_iter().collect();
            let mut have = per_order.remove(id).unwrap_or_default();
            // Cancelled after being confirmed: that confirmation was notified too.
            if s == "CANCELLED" && have.get("order.confirmed") == Some(&1) {
                want.insert("order.confirmed".to_owned(), 1);
            }
            have.retain(|_, n| *n > 0);
            if have != want {
                wrong.push(format!("{id} {s}: {have:?}"));
            }
        }
        if !wrong.is_empty() {
            v.push(format!("{} final orders without exactly one notification per event, e.g. {}", wrong.len(), examples(&wrong)));
        }
        per_order.retain(|o, _| !status.contains_key(o.as_str()));
        if !per_order.is_empty() {
            v.push(format!("{} orders notified that Order does not know, e.g. {}", per_order.len(), examples(per_order.keys())));
        }

        // Outboxes: everything published.
        let (pg_unsent,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(pg).await?;
        let (my_unsent,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(my).await?;
        for (svc, n) in [("order", pg_unsent), ("inventory", my_unsent)] {
            if n > 0 {
                v.push(format!("{svc}: {n} outbox rows not yet sent"));
            }
        }

        // Dead letters: only the ones put there on purpose.
        let dead_letters = kafka::dead_letters(&t.kafka, &t.topic_prefix).await?;
        let total: u64 = dead_letters.values().sum();
        if total != t.expected_dead_letters {
            v.push(format!("{total} dead letters, {} expected: {dead_letters:?}", t.expected_dead_letters));
        }

        let summary = format!(
            "{} orders {by_status:?}; {} SKUs; {} active reservations; {} notifications; unsent outbox rows order {pg_unsent}, inventory {my_unsent}; dead letters {dead_letters:?}",
            orders.len(),
            t.initial_stock.len(),
            active.len(),
            docs.len(),
        );
        Ok(AuditOutcome { violations: v, summary })
    }
}
