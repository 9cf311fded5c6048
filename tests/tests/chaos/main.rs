//! The chaos suite: real faults under load, and proof that nothing accepted
//! is lost or stuck and nothing is oversold.
//!
//! Run it with `make chaos` (all scenarios, serially), or one test by name:
//! `cargo build --workspace --bins && cargo test -p glasshouse-tests --test chaos -- --ignored --test-threads=1 --nocapture kafka`.
//! Every test is `#[ignore]`d so `make test` compiles the suite but does not
//! spend its minutes; it needs the local stack (`deploy/local/stack up`).
//!
//! # What a scenario does
//!
//! 1. Starts Order, Inventory and Notification as real processes
//!    (`glasshouse_tests::services::Saga`) on scratch databases and a topic
//!    prefix of their own, and a private Prometheus + Alertmanager with the
//!    project's alert rules time-scaled 60x (`glasshouse_tests::alerting`).
//!    A scenario that stops PostgreSQL, MariaDB or Kafka runs the saga on a
//!    private instance of that component (`glasshouse_tests::private_stack`):
//!    the shared stack serves everyone else's tests meanwhile.
//! 2. Seeds five plentiful SKUs and one scarce SKU (40 units), and drives
//!    `POST /orders` at 10 orders/s, open model ([`driver`]: why not the load
//!    runner is said there).
//! 3. Injects the fault once the load flows, holds it, clears it. A fault
//!    flag is written to the flag file of the service it targets
//!    (`Saga::faults_file`; `glasshouse_platform::faults`), and its row checks
//!    that `fault_flag_active{flag}` read 1 on that service's `/metrics` while
//!    set and 0 after, and that the service logged both changes.
//! 4. Stops the load; re-sends every request whose answer was lost with the
//!    same `Idempotency-Key` (an order stored before the connection broke
//!    comes back as the idempotent replay).
//! 5. Polls Order's database until every accepted order is final (deadline
//!    [`harness::SETTLE`]): "time to recover" is fault cleared -> all final.
//! 6. Runs the reconciliation audit ([`audit`]: `glasshouse_ops::audit`) until it is clean or 45 s
//!    have passed, and writes the row to `docs/reliability.md` ([`report`]).
//!
//! Scenarios of one test share one saga (the three SIGKILLs; Inventory's four
//! fault flags; the consumer and relay flags), and the audit covers the whole saga: a violation left by one
//! scenario shows again in the rows after it, which is why the phase most
//! likely to fail on older code runs last in its test.
//!
//! A row fails when an accepted order is missing from the database (lost),
//! not final by the deadline (stuck), when the dead letters are not exactly
//! the ones the scenario made on purpose, when the audit finds a violation,
//! or when a scenario's own check fails. A test fails when any of its rows
//! does, and its message lists why.
//!
//! # Reading a failure
//!
//! Each row's section in `docs/reliability.md` says what failed. The
//! services' logs are in the saga's scratch directory
//! (`$TMPDIR/saga_<id>/{order,inventory,notification}.log`, deleted on a
//! clean stop, kept when the test panics), the private Prometheus'
//! data next to them (`alerting/`).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod audit;
mod driver;
mod harness;
mod kafka;
mod report;

use std::time::{Duration, Instant};

use glasshouse_tests::private_stack::{self, PrivateStack};
use glasshouse_tests::services::{Backends, Part};
use harness::{Chaos, Expect, RATE};
use report::Check;
use serde_json::json;

/// How long the load must have flowed before a fault, and after one.
const FLOWING: usize = 30;
/// Deadline for [`FLOWING`] more orders to be accepted.
const FLOWING_WITHIN: Duration = Duration::from_secs(90);

/// Keeps a fault in place for its scenario's duration. This is the length of
/// the outage under test (a parameter of the experiment), not a wait for
/// anything to happen: every "until X" in the suite is a poll with a deadline.
async fn hold(fault: Duration) {
    tokio::time::sleep(fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn sigkill_each_service_mid_load() -> anyhow::Result<()> {
    let mut c = Chaos::start(Backends::shared(), None).await?;
    for (letter, part) in ["a", "b", "c"].into_iter().zip(Part::ALL) {
        let name = part.name();
        let p = c
            .begin(
                &format!("1{letter}-sigkill-{name}"),
                &format!("SIGKILL {name} mid-load"),
                &format!(
                    "`kill -9` of the {name} process while orders flow, then the same binary restarted on the same port \
                     with the same settings. Expected: requests in flight fail or lose their answer (replayed), \
                     redelivered events are absorbed by the consumers' dedupe, every accepted order ends final."
                ),
                RATE,
            )
            .await?;
        p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
        let down = Instant::now();
        c.kill(part).await?;
        c.restart(part).await?;
        let cleared = Instant::now();
        let checks = vec![Check::new(
            "restarted",
            true,
            format!("{name} back and ready {:.1} s after the SIGKILL", cleared.duration_since(down).as_secs_f64()),
        )];
        p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
        c.finish(p, cleared, checks, Expect::NOTHING).await?;
    }
    c.conclude().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn kafka_outage_30s() -> anyhow::Result<()> {
    let private = PrivateStack::start(&[private_stack::KAFKA]).await?;
    let backends = Backends { kafka: Some(private.kafka()), ..Backends::shared() };
    let mut c = Chaos::start(backends, Some(private)).await?;
    let p = c
        .begin(
            "2-kafka-outage",
            "Kafka down 30 s",
            "The saga's (private) Kafka broker stopped for 30 s under load, then started on the same port and data. \
             Expected: Order keeps accepting (the order and its event are one PostgreSQL transaction; the outbox \
             holds the event), relays and consumers reconnect, every accepted order ends final, nothing dead-lettered.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let broker = c.private.as_ref().expect("a private stack");
    broker.stop(private_stack::KAFKA).await?;
    let before = p.accepted_so_far();
    hold(Duration::from_secs(30)).await;
    let during = p.accepted_so_far() - before;
    broker.start_again(private_stack::KAFKA).await?;
    let cleared = Instant::now();
    let checks = vec![Check::new(
        "accepting without Kafka",
        during > 0,
        format!("{during} orders accepted while the broker was down (their events waited in the outbox)"),
    )];
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;
    c.conclude().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn mariadb_outage_120s() -> anyhow::Result<()> {
    let private = PrivateStack::start(&[private_stack::MARIADB]).await?;
    let backends = Backends { inventory_db_url: Some(private.inventory_db_url()), ..Backends::shared() };
    let mut c = Chaos::start(backends, Some(private)).await?;
    let p = c
        .begin(
            "3-mariadb-outage",
            "MariaDB down 120 s",
            "Inventory's (private) MariaDB stopped for 120 s under load, then started again; while it is down, 10 \
             orders placed before are cancelled, so `order.cancelled` events reach Inventory while it cannot apply \
             them. Expected: Order's circuit breaker to Inventory opens and `POST /orders` answers 503 fast \
             (nothing stored); Inventory's consumer keeps retrying the events it cannot apply instead of \
             dead-lettering them; after the restart every order ends final and every cancelled order's units are \
             back in stock.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let db = c.private.as_ref().expect("a private stack");
    db.stop(private_stack::MARIADB).await?;
    let stopped = Instant::now();
    let outage = Duration::from_secs(120);
    let opened =
        glasshouse_tests::poll::until("Order's breaker to Inventory open", Duration::from_secs(60), Duration::from_millis(250), || async {
            Ok((c.metric(Part::Order, "circuit_breaker_state", &[]).await? >= 2.0).then(Instant::now))
        })
        .await;
    let mut checks = vec![Check::new(
        "breaker opens",
        opened.is_ok(),
        match &opened {
            Ok(at) => format!("circuit_breaker_state = 2 (open) {:.1} s into the outage", at.duration_since(stopped).as_secs_f64()),
            Err(e) => format!("{e:#}"),
        },
    )];
    // Events Inventory must apply while its database is away: cancellations
    // (Order and its PostgreSQL are up, so these are accepted).
    let mut cancelled = 0;
    for id in p.attempts().iter().filter_map(|a| match a.outcome {
        driver::Outcome::Accepted(id) => Some(id),
        _ => None,
    }) {
        if cancelled == 10 {
            break;
        }
        if c.cancel(&p, id).await? == 200 {
            cancelled += 1;
        }
    }
    checks.push(Check::new(
        "cancelled during the outage",
        cancelled == 10,
        format!("{cancelled} orders cancelled while MariaDB was down (their order.cancelled wait for Inventory)"),
    ));
    hold(outage.saturating_sub(stopped.elapsed())).await;
    // 503s while the breaker had been open: they must not wait for a timeout.
    let from = opened.as_ref().map(|at| *at).unwrap_or(stopped);
    let fast = driver::quantile(&p.attempts_latencies(from, stopped + outage, 503), 0.5);
    checks.push(Check::new(
        "503 fast while open",
        fast.is_some_and(|d| d < Duration::from_millis(250)),
        format!("median 503 latency after the breaker opened: {fast:?} (limit 250 ms)"),
    ));
    db.start_again(private_stack::MARIADB).await?;
    let cleared = Instant::now();
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    // Orders whose reservation was in flight when MariaDB went away wait the
    // whole 120 s outage: the saga timeout (120 s) may reject them first.
    c.finish(p, cleared, checks, Expect { dead_letters: 0, alerts: &["OrderApiAvailabilityFastBurn"], saga_timeouts: true }).await?;
    c.conclude().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn postgres_outage_30s() -> anyhow::Result<()> {
    let private = PrivateStack::start(&[private_stack::POSTGRES]).await?;
    let backends = Backends { orders_db_url: Some(private.orders_db_url()), ..Backends::shared() };
    let mut c = Chaos::start(backends, Some(private)).await?;
    let p = c
        .begin(
            "4-postgres-outage",
            "PostgreSQL down 30 s",
            "Order's (private) PostgreSQL stopped for 30 s under load, then started again. Expected: `POST /orders` \
             is refused while it is down (nothing half-stored); Order's consumer keeps retrying Inventory's answers \
             instead of dead-lettering them; the outbox relay resumes; every accepted order ends final.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let db = c.private.as_ref().expect("a private stack");
    db.stop(private_stack::POSTGRES).await?;
    let before = p.accepted_so_far();
    hold(Duration::from_secs(30)).await;
    let during = p.accepted_so_far() - before;
    db.start_again(private_stack::POSTGRES).await?;
    let cleared = Instant::now();
    let checks = vec![Check::new(
        "nothing accepted without the database",
        during == 0,
        format!("{during} orders answered 202 while PostgreSQL was down"),
    )];
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect { dead_letters: 0, alerts: &["OrderApiAvailabilityFastBurn"], saga_timeouts: false }).await?;
    c.conclude().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn inventory_sigterm_mid_batch() -> anyhow::Result<()> {
    let mut c = Chaos::start(Backends::shared(), None).await?;
    // Each reservation takes 100 ms more, so the burst (accepted in 3 s) is
    // still being consumed for seconds after it was accepted.
    c.set_faults(Part::Inventory, json!({ "reservation_latency_ms": 100 }))?;
    let mut checks = vec![c.flag_visible(Part::Inventory, "reservation_latency_ms", true).await];
    let burst = 150;
    let p = c
        .begin_burst(
            "5-inventory-sigterm-mid-batch",
            "SIGTERM Inventory mid-batch",
            "A burst of 150 orders at 50/s; Inventory consumes them 100 ms slower than usual (fault flag), and gets \
             SIGTERM once the burst is accepted and some but not all of it is reserved; it is restarted (flag off) on the same port. Expected: a \
             graceful stop (the message in hand finished and its offset committed), no order reserved twice or \
             skipped, every order final.",
            50.0,
            Some(burst),
        )
        .await?;
    glasshouse_tests::poll::until("the whole burst answered", Duration::from_secs(60), Duration::from_millis(100), || async {
        Ok((p.attempts().len() as u64 == burst).then_some(()))
    })
    .await?;
    let reserved =
        glasshouse_tests::poll::until("a fifth of the burst reserved", Duration::from_secs(60), Duration::from_millis(100), || async {
            let n = c.reserved_orders().await?;
            Ok((n >= 30).then_some(n))
        })
        .await?;
    let status = c.terminate(Part::Inventory, Duration::from_secs(30)).await?;
    let reserved_at_stop = c.reserved_orders().await?;
    // Orders that exist or may exist: accepted, or sent without an answer (a
    // slow machine times some out; they are replayed with their key later).
    let accepted =
        p.attempts().iter().filter(|a| matches!(a.outcome, driver::Outcome::Accepted(_) | driver::Outcome::Ambiguous(_))).count() as i64;
    checks.push(Check::new(
        "mid-batch",
        reserved_at_stop < accepted,
        format!(
            "SIGTERM when {reserved} orders were reserved; {reserved_at_stop} of {accepted} accepted (or unanswered) were reserved at exit"
        ),
    ));
    checks.push(Check::new(
        "graceful exit",
        status.is_some_and(|s| s.success()),
        format!("Inventory exit status after SIGTERM: {status:?} (None = still running after 30 s, killed)"),
    ));
    c.set_faults(Part::Inventory, json!({}))?;
    c.restart(Part::Inventory).await?;
    let cleared = Instant::now();
    checks.push(c.flag_visible(Part::Inventory, "reservation_latency_ms", false).await);
    c.finish(p, cleared, checks, Expect::NOTHING).await?;
    c.conclude().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn poison_event_is_dead_lettered_and_consumption_continues() -> anyhow::Result<()> {
    let mut c = Chaos::start(Backends::shared(), None).await?;
    let p = c
        .begin(
            "6-poison-event",
            "Poison event on orders.v1",
            "A malformed JSON message produced to `<prefix>orders.v1` mid-load. Expected: each consumer group of the \
             topic (Inventory, Notification) dead-letters it once to `<prefix>orders.v1.dlq`, untouched, with the \
             error in its headers, and goes on consuming: every later order ends final.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let poison: &[u8] = br#"{"type": "order.created", "id": "not-a-uuid", "payload": "#;
    let topic = format!("{}{}", c.saga.prefix, kafka::ORDERS);
    kafka::produce(&c.saga.kafka, &topic, "poison", poison).await?;
    let cleared = Instant::now();
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let dlq = format!("{topic}.dlq");
    let (kafka_addr, dlq_ref) = (c.saga.kafka.clone(), &dlq);
    let got = glasshouse_tests::poll::until(
        "the poison event in the dead-letter topic twice",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let kafka_addr = kafka_addr.clone();
            async move {
                let read = kafka::read_all(&kafka_addr, dlq_ref).await?;
                Ok((read.len() >= 2).then_some(read))
            }
        },
    )
    .await;
    let checks = match got {
        Ok(read) => vec![
            Check::new(
                "dead-lettered untouched",
                read.iter().all(|m| m.payload == poison && m.key.as_deref() == Some("poison")),
                format!("{} messages in {dlq}, payload and key as produced", read.len()),
            ),
            Check::new(
                "error in headers",
                read.iter()
                    .all(|m| m.headers.get("dlq.error").is_some_and(|e| !e.is_empty()) && m.headers.get("dlq.topic") == Some(&topic)),
                format!("dlq.error: {:?}", read.first().and_then(|m| m.headers.get("dlq.error"))),
            ),
        ],
        Err(e) => vec![Check::new("dead-lettered untouched", false, format!("{e:#}"))],
    };
    c.finish(p, cleared, checks, Expect { dead_letters: 2, alerts: &["DeadLetterQueueReceiving"], saga_timeouts: false }).await?;
    c.conclude().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn inventory_fault_flags() -> anyhow::Result<()> {
    let mut c = Chaos::start(Backends::shared(), None).await?;

    // a. Slow catalog: slower orders, none refused (300 ms < Order's 800 ms timeout).
    let p = c
        .begin(
            "7a-catalog-latency",
            "Catalog latency 300 ms (fault flag)",
            "`catalog_latency_ms: 300` for 15 s. Expected: `POST /orders` slower by about that much (Order prices \
             every order through the catalog), nothing refused (300 ms is under Order's 800 ms timeout).",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.set_faults(Part::Inventory, json!({ "catalog_latency_ms": 300 }))?;
    let mut checks = vec![c.flag_visible(Part::Inventory, "catalog_latency_ms", true).await];
    let on = Instant::now();
    hold(Duration::from_secs(15)).await;
    c.set_faults(Part::Inventory, json!({}))?;
    let cleared = Instant::now();
    checks.push(c.flag_visible(Part::Inventory, "catalog_latency_ms", false).await);
    let attempts = p.attempts();
    let slow: Vec<Duration> = {
        let mut v: Vec<Duration> = attempts
            .iter()
            .filter(|a| a.due >= on && a.due < cleared && matches!(a.outcome, driver::Outcome::Accepted(_)))
            .map(|a| a.latency)
            .collect();
        v.sort();
        v
    };
    let median = driver::quantile(&slow, 0.5);
    checks.push(Check::new(
        "latency felt",
        median.is_some_and(|d| d >= Duration::from_millis(300)),
        format!("median POST /orders latency under the flag: {median:?}"),
    ));
    let refused = attempts.iter().filter(|a| a.due >= on && a.due < cleared && matches!(a.outcome, driver::Outcome::Refused(..))).count();
    checks.push(Check::new("nothing refused", refused == 0, format!("{refused} orders refused under the flag")));
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;

    // b. Failing catalog: every order refused with 503, the availability SLO burns, the page reaches Alertmanager.
    let p = c
        .begin(
            "7b-catalog-errors",
            "Catalog error rate 1.0 (fault flag)",
            "`catalog_error_rate: 1.0` until OrderApiAvailabilityFastBurn reaches the private Alertmanager (rules \
             time-scaled 60x; tests/tests/alert_proof.rs proves the same page down to a webhook). Expected: every \
             `POST /orders` answered 503 with nothing stored, the page fires, orders flow again once the flag is off.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.set_faults(Part::Inventory, json!({ "catalog_error_rate": 1.0 }))?;
    let mut checks = vec![c.flag_visible(Part::Inventory, "catalog_error_rate", true).await];
    let on = Instant::now();
    let page = c.alerting.wait_for("OrderApiAvailabilityFastBurn", on, Duration::from_secs(180)).await;
    checks.push(Check::new(
        "page at Alertmanager",
        page.is_ok(),
        match &page {
            Ok(a) => format!(
                "OrderApiAvailabilityFastBurn {:?} reached Alertmanager {:.0} s after the flag",
                a.labels.get("severity"),
                a.first_seen.duration_since(on).as_secs_f64()
            ),
            Err(e) => format!("{e:#}"),
        },
    ));
    c.set_faults(Part::Inventory, json!({}))?;
    let cleared = Instant::now();
    checks.push(c.flag_visible(Part::Inventory, "catalog_error_rate", false).await);
    let refused_503 =
        p.attempts().iter().filter(|a| a.due >= on && a.due < cleared && matches!(a.outcome, driver::Outcome::Refused(503, _))).count();
    checks.push(Check::new("503 under the flag", refused_503 > 0, format!("{refused_503} orders answered 503")));
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;

    // c. Slow reservations: the consumer falls behind, then catches up.
    let p = c
        .begin(
            "7c-slow-reservation",
            "Reservation latency 250 ms for 20 s (fault flag)",
            "`reservation_latency_ms: 250` for 20 s at 10 orders/s: Inventory can apply about 4 a second, so a \
             backlog builds. Expected: orders stay PENDING meanwhile, the backlog drains once the flag is off, every \
             order ends final.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.set_faults(Part::Inventory, json!({ "reservation_latency_ms": 250 }))?;
    let mut checks = vec![c.flag_visible(Part::Inventory, "reservation_latency_ms", true).await];
    hold(Duration::from_secs(20)).await;
    let backlog = c.pending().await?;
    c.set_faults(Part::Inventory, json!({}))?;
    let cleared = Instant::now();
    checks.push(c.flag_visible(Part::Inventory, "reservation_latency_ms", false).await);
    checks.push(Check::new("backlog built", backlog >= 20, format!("{backlog} orders PENDING when the flag went off")));
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;

    // d. Failing reservations (last: when it fails today, its stuck orders
    //    and dead letters stay in the saga and would fail any later audit): retried, never dead-lettered.
    let p = c
        .begin(
            "7d-reservation-errors",
            "Reservation error rate 0.9 for 60 s (fault flag)",
            "`reservation_error_rate: 0.9` for 60 s: nine in ten attempts at applying an `order.created` fail with a \
             transient error. Expected: Inventory's consumer retries (with backoff) instead of dead-lettering; once \
             the flag is off the backlog drains; every order ends final, nothing dead-lettered.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let retries_before = c.metric(Part::Inventory, "messaging_consume_duration_seconds_count", &[r#"outcome="retry""#]).await?;
    c.set_faults(Part::Inventory, json!({ "reservation_error_rate": 0.9 }))?;
    let mut checks = vec![c.flag_visible(Part::Inventory, "reservation_error_rate", true).await];
    hold(Duration::from_secs(60)).await;
    c.set_faults(Part::Inventory, json!({}))?;
    let cleared = Instant::now();
    checks.push(c.flag_visible(Part::Inventory, "reservation_error_rate", false).await);
    let retries = c.metric(Part::Inventory, "messaging_consume_duration_seconds_count", &[r#"outcome="retry""#]).await? - retries_before;
    checks.push(Check::new("retried", retries > 0.0, format!("{retries} retries counted by Inventory's consumer under the flag")));
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;

    c.conclude().await
}

/// How many lines of `part`'s log contain `needle` (the log survives restarts).
fn log_lines(c: &Chaos, part: Part, needle: &str) -> usize {
    std::fs::read_to_string(&c.saga.service(part).log).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos suite (minutes): run by `make chaos`"]
async fn platform_fault_flags() -> anyhow::Result<()> {
    let mut c = Chaos::start(Backends::shared(), None).await?;

    // a. Notification's consumer fails half its deliveries: retried in place, nothing dead-lettered.
    let p = c
        .begin(
            "8a-consumer-errors",
            "Notification consumer error rate 0.5 for 20 s (fault flag)",
            "`consumer_error_rate: 0.5` in Notification's flag file for 20 s: half the deliveries of `orders.v1` \
             to Notification fail with a transient error before any work. Expected: the platform consumer retries \
             them (with backoff) instead of dead-lettering; once the flag is off every notification is stored \
             exactly once, every order ends final, nothing dead-lettered.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let retry = [r#"outcome="retry""#];
    let retries_before = c.metric(Part::Notification, "messaging_consume_duration_seconds_count", &retry).await?;
    c.set_faults(Part::Notification, json!({ "consumer_error_rate": 0.5 }))?;
    let mut checks = vec![c.flag_visible(Part::Notification, "consumer_error_rate", true).await];
    hold(Duration::from_secs(20)).await;
    c.set_faults(Part::Notification, json!({}))?;
    let cleared = Instant::now();
    checks.push(c.flag_visible(Part::Notification, "consumer_error_rate", false).await);
    checks.push(c.flag_logged(Part::Notification, "consumer_error_rate", 2).await);
    let retries = c.metric(Part::Notification, "messaging_consume_duration_seconds_count", &retry).await? - retries_before;
    checks.push(Check::new("retried", retries > 0.0, format!("{retries} retries counted by Notification's consumer under the flag")));
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;

    // b. Order's relay paused: orders accepted, their events wait in the outbox, all go out after.
    let p = c
        .begin(
            "8b-relay-paused",
            "Relay paused 20 s (order, fault flag)",
            "`relay_paused: true` in Order's flag file for 20 s: Order's outbox relay publishes nothing while its \
             loop keeps running. Expected: `POST /orders` keeps accepting (order and event are one transaction), \
             the events wait in the outbox (`outbox_pending` grows, `outbox_published_total` stands still), and \
             once the flag is off the relay publishes them all: every accepted order ends final, nothing lost.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.set_faults(Part::Order, json!({ "relay_paused": true }))?;
    let mut checks = vec![c.flag_visible(Part::Order, "relay_paused", true).await];
    // The flag is applied before the gauge shows it; one idle poll later no batch is in flight.
    let published_before = c.metric(Part::Order, "outbox_published_total", &[]).await?;
    let accepted_before = p.accepted_so_far();
    hold(Duration::from_secs(20)).await;
    let accepted_during = p.accepted_so_far() - accepted_before;
    let published_during = c.metric(Part::Order, "outbox_published_total", &[]).await? - published_before;
    let waiting = c.metric(Part::Order, "outbox_pending", &[]).await?;
    c.set_faults(Part::Order, json!({}))?;
    let cleared = Instant::now();
    checks.push(c.flag_visible(Part::Order, "relay_paused", false).await);
    checks.push(c.flag_logged(Part::Order, "relay_paused", 2).await);
    checks.push(Check::new(
        "accepting while paused",
        accepted_during > 0,
        format!("{accepted_during} orders accepted while the relay was paused"),
    ));
    checks.push(Check::new(
        "nothing published while paused",
        published_during == 0.0,
        format!("outbox_published_total grew by {published_during} while paused"),
    ));
    checks.push(Check::new(
        "events wait in the outbox",
        waiting >= accepted_during as f64 * 0.9 && waiting > 0.0,
        format!("outbox_pending = {waiting} at the end of the pause ({accepted_during} orders accepted during it)"),
    ));
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;

    // c. Half the publishes of both relays fail: rows stay unsent and are retried.
    let p = c
        .begin(
            "8c-produce-errors",
            "Kafka produce error rate 0.5 for 20 s (order and inventory, fault flag)",
            "`kafka_produce_error_rate: 0.5` in Order's and Inventory's flag files for 20 s: half the publishes of \
             both outbox relays fail as a failed produce would. Expected: a failed row stays unsent (and the later \
             rows of its key wait behind it), the relay retries with backoff; once the flag is off both outboxes \
             drain, every order ends final, nothing lost, nothing dead-lettered.",
            RATE,
        )
        .await?;
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    let injected = "injected fault (kafka_produce_error_rate)";
    let failed_before = [Part::Order, Part::Inventory].map(|part| log_lines(&c, part, injected));
    for part in [Part::Order, Part::Inventory] {
        c.set_faults(part, json!({ "kafka_produce_error_rate": 0.5 }))?;
    }
    let mut checks = Vec::new();
    for part in [Part::Order, Part::Inventory] {
        checks.push(c.flag_visible(part, "kafka_produce_error_rate", true).await);
    }
    hold(Duration::from_secs(20)).await;
    for part in [Part::Order, Part::Inventory] {
        c.set_faults(part, json!({}))?;
    }
    let cleared = Instant::now();
    for (i, part) in [Part::Order, Part::Inventory].into_iter().enumerate() {
        checks.push(c.flag_visible(part, "kafka_produce_error_rate", false).await);
        checks.push(c.flag_logged(part, "kafka_produce_error_rate", 2).await);
        let failed = log_lines(&c, part, injected) - failed_before[i];
        checks.push(Check::new(
            format!("{}: publishes failed", part.name()),
            failed > 0,
            format!("{failed} publishes failed on purpose (\"publish failed\" logged) by {}'s relay", part.name()),
        ));
    }
    p.wait_more_accepted(FLOWING, FLOWING_WITHIN).await?;
    c.finish(p, cleared, checks, Expect::NOTHING).await?;

    c.conclude().await
}
