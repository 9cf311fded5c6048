//! The pruner against real PostgreSQL and MariaDB: rows past their table's
//! retention go, younger rows and unsent outbox rows stay, one batch deletes
//! at most `batch_size` rows, and `db_rows_pruned_total{table}` counts them.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use glasshouse_platform::migrations;
use glasshouse_platform::outbox::OutboxDb;
use glasshouse_platform::prune::{
    IDEMPOTENCY_KEY_RETENTION, OUTBOX_SENT_RETENTION, PROCESSED_EVENTS_RETENTION, PruneConfig, PruneTable, Pruner,
};
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::{ScratchMySql, ScratchPg};
use sqlx::Connection;

const BATCH: u32 = 1000;

/// Old rows of each table: more than two batches of `processed_events`, so
/// a round takes several batches and the last one is short.
const OLD_PROCESSED: i64 = 2500;
const OLD_KEYS: i64 = 1200;

fn config() -> PruneConfig {
    PruneConfig { batch_size: BATCH, batch_pause: Duration::ZERO, ..PruneConfig::default() }
}

fn tables(idempotency_table: &'static str) -> anyhow::Result<Vec<PruneTable>> {
    Ok(vec![
        PruneTable::processed_events(PROCESSED_EVENTS_RETENTION)?,
        PruneTable::new(idempotency_table, "created_at", IDEMPOTENCY_KEY_RETENTION)?,
        PruneTable::outbox_sent(OUTBOX_SENT_RETENTION)?,
    ])
}

fn assert_counted(metrics: &Metrics, service: &str, table: &str, n: i64) {
    let text = metrics.encode();
    let line = format!(r#"db_rows_pruned_total{{service="{service}",table="{table}"}} {n}"#);
    assert!(text.contains(&line), "missing {line} in:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prunes_old_rows_in_bounded_batches() -> anyhow::Result<()> {
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    // Shaped like Order's idempotency table.
    sqlx::query(
        "CREATE TABLE idempotency_keys (customer_id TEXT NOT NULL, key TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
         PRIMARY KEY (customer_id, key))",
    )
    .execute(&db.pool)
    .await?;
    let p = &db.pool;
    // processed_events: old (8 days), young (6 days and now).
    sqlx::query(
        "INSERT INTO processed_events (consumer, event_id, processed_at) \
         SELECT 'c', gen_random_uuid(), now() - interval '8 days' FROM generate_series(1, $1)",
    )
    .bind(OLD_PROCESSED)
    .execute(p)
    .await?;
    sqlx::query("INSERT INTO processed_events (consumer, event_id, processed_at) SELECT 'c', gen_random_uuid(), now() - interval '6 days' FROM generate_series(1, 30)")
        .execute(p)
        .await?;
    sqlx::query("INSERT INTO processed_events (consumer, event_id) SELECT 'c', gen_random_uuid() FROM generate_series(1, 10)")
        .execute(p)
        .await?;
    // Idempotency keys: old (25 h), young (23 h).
    sqlx::query("INSERT INTO idempotency_keys (customer_id, key, created_at) SELECT 'cust', 'old-' || n, now() - interval '25 hours' FROM generate_series(1, $1) n")
        .bind(OLD_KEYS)
        .execute(p)
        .await?;
    sqlx::query("INSERT INTO idempotency_keys (customer_id, key, created_at) SELECT 'cust', 'young-' || n, now() - interval '23 hours' FROM generate_series(1, 5) n")
        .execute(p)
        .await?;
    // Outbox: sent 2 h ago (old), sent now (young), unsent for 3 days (never pruned).
    for (sent_at, n) in [("now() - interval '2 hours'", 3), ("now()", 2), ("NULL", 2)] {
        sqlx::query(&format!(
            "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, created_at, sent_at) \
             SELECT gen_random_uuid(), 't', 'k', 'e', '{{}}', now() - interval '3 days', {sent_at} FROM generate_series(1, {n})"
        ))
        .execute(p)
        .await?;
    }

    let metrics = Metrics::new("prune-test");
    let pruner =
        Pruner::new(OutboxDb::Postgres(db.pool.clone()), metrics.standard.clone(), tables("idempotency_keys")?).with_config(config());

    // One batch deletes exactly one batch's worth of old rows, no more.
    let processed = PruneTable::processed_events(PROCESSED_EVENTS_RETENTION)?;
    assert_eq!(pruner.prune_batch(&processed).await?, u64::from(BATCH));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events").fetch_one(p).await?;
    assert_eq!(left, OLD_PROCESSED - i64::from(BATCH) + 40);

    // A row another transaction holds is skipped, not waited for.
    let mut holder = sqlx::PgConnection::connect(&db.url).await?;
    let mut held = holder.begin().await?;
    sqlx::query("SELECT 1 FROM idempotency_keys WHERE key = 'old-1' FOR UPDATE").execute(&mut *held).await?;
    let pruned = tokio::time::timeout(Duration::from_secs(30), pruner.prune_once()).await??;
    assert_eq!(pruned as i64, (OLD_PROCESSED - i64::from(BATCH)) + (OLD_KEYS - 1) + 3);
    held.commit().await?;

    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await };
    assert_eq!(count("SELECT count(*) FROM processed_events").await?, 40, "young dedupe rows stay");
    assert_eq!(count("SELECT count(*) FROM processed_events WHERE processed_at < now() - interval '7 days'").await?, 0);
    assert_eq!(count("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'young-%'").await?, 5, "young keys stay");
    assert_eq!(count("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'old-%'").await?, 1, "only the held key is left");
    assert_eq!(count("SELECT count(*) FROM outbox WHERE sent_at IS NULL").await?, 2, "unsent rows stay, however old");
    assert_eq!(count("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").await?, 2, "recently sent rows stay");

    // The next round takes the row once it is free; then there is nothing to do.
    assert_eq!(pruner.prune_once().await?, 1);
    assert_eq!(pruner.prune_once().await?, 0);
    // prune_batch is not counted; the rounds are.
    assert_counted(&metrics, "prune-test", "processed_events", OLD_PROCESSED - i64::from(BATCH));
    assert_counted(&metrics, "prune-test", "idempotency_keys", OLD_KEYS);
    assert_counted(&metrics, "prune-test", "outbox", 3);
    drop(holder);
    db.drop_db().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_prunes_old_rows_in_bounded_batches() -> anyhow::Result<()> {
    let db = ScratchMySql::new().await?;
    migrations::run_mysql(&db.pool, None).await?;
    // Shaped like Inventory's idempotency table.
    sqlx::query(
        "CREATE TABLE request_keys (idempotency_key VARCHAR(255) NOT NULL PRIMARY KEY, \
         created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE = InnoDB",
    )
    .execute(&db.pool)
    .await?;
    let p = &db.pool;
    // Multi-row inserts of `n` rows with one time expression, 500 rows a statement.
    async fn insert(p: &sqlx::MySqlPool, sql_head: &str, row: &str, n: i64) -> anyhow::Result<()> {
        let mut done = 0;
        while done < n {
            let chunk = (n - done).min(500);
            let values = (0..chunk).map(|i| row.replace("{n}", &(done + i).to_string())).collect::<Vec<_>>().join(", ");
            sqlx::query(&format!("{sql_head} VALUES {values}")).execute(p).await?;
            done += chunk;
        }
        Ok(())
    }
    let pe = "INSERT INTO processed_events (consumer, event_id, processed_at)";
    insert(p, pe, "('c', UUID(), CURRENT_TIMESTAMP(6) - INTERVAL 8 DAY)", OLD_PROCESSED).await?;
    insert(p, pe, "('c', UUID(), CURRENT_TIMESTAMP(6) - INTERVAL 6 DAY)", 30).await?;
    insert(p, pe, "('c', UUID(), CURRENT_TIMESTAMP(6))", 10).await?;
    let rk = "INSERT INTO request_keys (idempotency_key, created_at)";
    insert(p, rk, "('old-{n}', CURRENT_TIMESTAMP(6) - INTERVAL 25 HOUR)", OLD_KEYS).await?;
    insert(p, rk, "('young-{n}', CURRENT_TIMESTAMP(6) - INTERVAL 23 HOUR)", 5).await?;
    let ob = "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, created_at, sent_at)";
    insert(p, ob, "(UUID(), 't', 'k', 'e', '{}', CURRENT_TIMESTAMP(6) - INTERVAL 3 DAY, CURRENT_TIMESTAMP(6) - INTERVAL 2 HOUR)", 3)
        .await?;
    insert(p, ob, "(UUID(), 't', 'k', 'e', '{}', CURRENT_TIMESTAMP(6) - INTERVAL 3 DAY, CURRENT_TIMESTAMP(6))", 2).await?;
    insert(p, ob, "(UUID(), 't', 'k', 'e', '{}', CURRENT_TIMESTAMP(6) - INTERVAL 3 DAY, NULL)", 2).await?;

    // One connection, so the check below sees the very connection the pruner used.
    let one = sqlx::mysql::MySqlPoolOptions::new().max_connections(1).connect(&db.url).await?;
    let metrics = Metrics::new("prune-test");
    let pruner = Pruner::new(OutboxDb::MySql(one.clone()), metrics.standard.clone(), tables("request_keys")?).with_config(config());

    let processed = PruneTable::processed_events(PROCESSED_EVENTS_RETENTION)?;
    assert_eq!(pruner.prune_batch(&processed).await?, u64::from(BATCH), "one batch, one batch's worth");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events").fetch_one(p).await?;
    assert_eq!(left, OLD_PROCESSED - i64::from(BATCH) + 40);

    let pruned = pruner.prune_once().await?;
    assert_eq!(pruned as i64, (OLD_PROCESSED - i64::from(BATCH)) + OLD_KEYS + 3);
    let isolation: String = sqlx::query_scalar("SELECT @@session.tx_isolation").fetch_one(&one).await?;
    assert_eq!(isolation, "REPEATABLE-READ", "READ COMMITTED was for the pruner's transactions only, not the pooled connection");

    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await };
    assert_eq!(count("SELECT count(*) FROM processed_events").await?, 40, "young dedupe rows stay");
    assert_eq!(count("SELECT count(*) FROM request_keys WHERE idempotency_key LIKE 'young-%'").await?, 5, "young keys stay");
    assert_eq!(count("SELECT count(*) FROM request_keys WHERE idempotency_key LIKE 'old-%'").await?, 0);
    assert_eq!(count("SELECT count(*) FROM outbox WHERE sent_at IS NULL").await?, 2, "unsent rows stay, however old");
    assert_eq!(count("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").await?, 2, "recently sent rows stay");
    assert_eq!(pruner.prune_once().await?, 0);

    assert_counted(&metrics, "prune-test", "processed_events", OLD_PROCESSED - i64::from(BATCH));
    assert_counted(&metrics, "prune-test", "request_keys", OLD_KEYS);
    assert_counted(&metrics, "prune-test", "outbox", 3);
    one.close().await;
    db.drop_db().await
}

/// `run` prunes at once, then stops promptly on shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prunes_then_stops_on_shutdown() -> anyhow::Result<()> {
    let db = ScratchPg::new().await?;
    migrations::run_postgres(&db.pool, None).await?;
    sqlx::query("INSERT INTO processed_events (consumer, event_id, processed_at) SELECT 'c', gen_random_uuid(), now() - interval '8 days' FROM generate_series(1, 5)")
        .execute(&db.pool)
        .await?;
    let metrics = Metrics::new("prune-run");
    let pruner = Pruner::new(
        OutboxDb::Postgres(db.pool.clone()),
        metrics.standard.clone(),
        vec![PruneTable::processed_events(PROCESSED_EVENTS_RETENTION)?],
    )
    .with_config(PruneConfig { interval: Duration::from_secs(3600), ..config() });
    let shutdown = glasshouse_platform::app::Shutdown::new();
    let task = tokio::spawn(pruner.run(shutdown.subscribe()));
    let pool = db.pool.clone();
    glasshouse_tests::poll::until("the first round", Duration::from_secs(30), Duration::from_millis(20), || {
        let pool = pool.clone();
        async move { Ok((sqlx::query_scalar::<_, i64>("SELECT count(*) FROM processed_events").fetch_one(&pool).await? == 0).then_some(())) }
    })
    .await?;
    shutdown.trigger();
    // The hour-long pause between rounds ends with the signal.
    tokio::time::timeout(Duration::from_secs(10), task).await???;
    assert_counted(&metrics, "prune-run", "processed_events", 5);
    db.drop_db().await
}
