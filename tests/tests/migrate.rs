//! `glasshouse-<service> migrate` (the chart's pre-install/pre-upgrade Job), run
//! as the real binary against fresh databases on the local stack's real
//! PostgreSQL, MariaDB and FerretDB: every migration is applied (sqlx's
//! `_sqlx_migrations` holds the platform's and the service's files; MongoDB
//! gets notification's indexes), the process exits 0 within a deadline, and it
//! never served: its HTTP port was never bound. A bad argument exits 64.
//!
//! Needs the services' debug binaries (`cargo build --workspace --bins`, as
//! `make test` does) and the stack (PostgreSQL, MariaDB, FerretDB, Kafka).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glasshouse_tests::db::{ScratchMySql, ScratchPg};
use glasshouse_tests::services::{bin_dir, free_port};
use glasshouse_tests::stack::{self, FERRETDB, JAEGER_OTLP_GRPC, KAFKA, OPENSEARCH, VICTORIALOGS, repo_root};

const DEADLINE: Duration = Duration::from_secs(90);

/// The common environment: a JWKS file, a fresh topic prefix, the stack's telemetry, an absolute faults file.
fn env(dir: &Path, service: &str, port: u16) -> Vec<(String, String)> {
    let key = glasshouse_platform::auth::dev::SigningKey::generate_es256().unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, serde_json::to_string(&key.jwks()).unwrap()).unwrap();
    let prefix = format!("{}.", stack::unique_name("migrate"));
    vec![
        ("APP_HTTP__PORT".into(), port.to_string()),
        ("APP_AUTH__JWKS__FILE".into(), jwks.display().to_string()),
        ("APP_KAFKA__BROKERS".into(), KAFKA.addr()),
        ("APP_KAFKA__TOPIC_PREFIX".into(), prefix.clone()),
        ("APP_KAFKA__GROUP_ID".into(), format!("{prefix}{service}")),
        ("APP_KAFKA__PARTITIONS".into(), "1".into()),
        ("APP_TELEMETRY__TRACES__ENDPOINT".into(), JAEGER_OTLP_GRPC.http()),
        ("APP_TELEMETRY__LOGS__LOKI__URL".into(), format!("{}/insert", VICTORIALOGS.http())),
        ("APP_TELEMETRY__LOGS__ELASTICSEARCH__URL".into(), OPENSEARCH.http()),
        ("APP_FAULTS__FILE".into(), dir.join("faults.json").display().to_string()),
    ]
}

/// Runs `glasshouse-<service> <args>` to its end (bounded), checking all along
/// that nothing listens on `port`; returns the exit code and the output.
fn run(service: &str, args: &[&str], port: u16, env: Vec<(String, String)>) -> (i32, String) {
    let bin = bin_dir().unwrap().join(format!("glasshouse-{service}"));
    assert!(bin.exists(), "{} is missing: cargo build --workspace --bins", bin.display());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let log = dir.join(stack::unique_name(&format!("migrate-{service}")));
    let mut child = std::process::Command::new(&bin)
        .args(args)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        assert!(
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err(),
            "{service} {args:?}: something listens on its port {port}"
        );
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{service} {args:?} did not exit within {DEADLINE:?}; log {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&log).unwrap_or_default() + &std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
    (status.code().unwrap_or(-1), out)
}

fn sql_files(dir: &str) -> i64 {
    std::fs::read_dir(repo_root().join(dir)).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql")).count()
        as i64
}

#[tokio::test]
async fn order_migrate_applies_every_migration_and_exits_without_serving() {
    let db = ScratchPg::new().await.unwrap();
    let dir = tempdir("order");
    let port = free_port();
    let mut env = env(&dir, "order", port);
    env.push(("APP_DATABASE__URL".into(), db.url.clone()));
    let (code, out) = tokio::task::spawn_blocking(move || run("order", &["migrate"], port, env)).await.unwrap();
    assert_eq!(code, 0, "order migrate exit code; output:\n{out}");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&db.pool).await.unwrap();
    assert_eq!(applied, sql_files("services/platform/sql/postgres") + sql_files("services/order/migrations"));
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&db.pool).await.unwrap();
    assert_eq!(orders, 0);
    // A second run (the next upgrade's hook) finds nothing to do and exits 0 too.
    let port = free_port();
    let mut env2 = self::env(&dir, "order", port);
    env2.push(("APP_DATABASE__URL".into(), db.url.clone()));
    let (code, out) = tokio::task::spawn_blocking(move || run("order", &["migrate"], port, env2)).await.unwrap();
    assert_eq!(code, 0, "order migrate (again); output:\n{out}");
    db.drop_db().await.unwrap();
}

#[tokio::test]
async fn inventory_migrate_applies_every_migration_and_exits_without_serving() {
    let db = ScratchMySql::new().await.unwrap();
    let dir = tempdir("inventory");
    let port = free_port();
    let mut env = env(&dir, "inventory", port);
    env.push(("APP_DATABASE__URL".into(), db.url.clone()));
    let (code, out) = tokio::task::spawn_blocking(move || run("inventory", &["migrate"], port, env)).await.unwrap();
    assert_eq!(code, 0, "inventory migrate exit code; output:\n{out}");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&db.pool).await.unwrap();
    assert_eq!(applied, sql_files("services/platform/sql/mysql") + sql_files("services/inventory/migrations"));
    db.drop_db().await.unwrap();
}

#[tokio::test]
async fn notification_migrate_creates_the_indexes_and_exits_without_serving() {
    stack::require(FERRETDB).await.unwrap();
    let name = stack::unique_name("migrate");
    let dir = tempdir("notification");
    let port = free_port();
    let mut env = env(&dir, "notification", port);
    env.push(("APP_DATABASE__URL".into(), format!("mongodb://{}/", FERRETDB.addr())));
    env.push(("APP_DATABASE__NAME".into(), name.clone()));
    let (code, out) = tokio::task::spawn_blocking(move || run("notification", &["migrate"], port, env)).await.unwrap();
    assert_eq!(code, 0, "notification migrate exit code; output:\n{out}");
    let client = mongodb::Client::with_uri_str(format!("mongodb://{}/", FERRETDB.addr())).await.unwrap();
    let db = client.database(&name);
    let indexes = db.collection::<mongodb::bson::Document>("notifications").list_index_names().await.unwrap();
    for want in ["event_id_unique", "customer_newest_first", "order_newest_first"] {
        assert!(indexes.iter().any(|i| i == want), "index {want} missing: {indexes:?}");
    }
    db.drop().await.unwrap();
}

#[test]
fn a_bad_argument_exits_64_naming_it() {
    let dir = tempdir("bad-arg");
    let port = free_port();
    let (code, out) = run("order", &["migrat"], port, env(&dir, "order", port));
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("\"migrat\""), "the message names the bad argument: {out}");
}

fn tempdir(what: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(stack::unique_name(&format!("migrate-{what}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
