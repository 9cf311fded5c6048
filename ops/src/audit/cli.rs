//! `glasshouse-audit`: check the cross-service invariants and say what is broken.
//!
//! Exit codes (also in docs/operations.md):
//! - 0: no violation (warnings and skipped checks allowed);
//! - 1: at least one violation, each listed with its ids;
//! - 2: bad arguments (the message names the bad value); nothing was read;
//! - 3: a database or the brokers could not be read; nothing was judged.

use std::ffi::OsString;
use std::time::Duration;

use clap::Parser;

use super::{AuditConfig, KafkaTarget, run_audit};
use crate::args::{
    DEFAULT_BROKERS, ENV_BROKERS, ENV_TOPIC_PREFIX, EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, flag_env_or, redact_url,
    validate_brokers, validate_topic_prefix,
};

/// Order's `database.url`, under a section of its own (every service reads
/// `APP_DATABASE__URL`, so the audit cannot share that one name).
pub const ENV_ORDER_DB: &str = "APP_ORDER__DATABASE__URL";
/// Inventory's `database.url`.
pub const ENV_INVENTORY_DB: &str = "APP_INVENTORY__DATABASE__URL";
/// Notification's `database.url`.
pub const ENV_NOTIFICATION_DB: &str = "APP_NOTIFICATION__DATABASE__URL";
/// Notification's `database.name`.
pub const ENV_NOTIFICATION_DB_NAME: &str = "APP_NOTIFICATION__DATABASE__NAME";

/// The defaults of each service's `config/base.yaml`.
pub const DEFAULT_ORDER_DB: &str = "postgres://glasshouse:glasshouse@127.0.0.1:5432/orders";
pub const DEFAULT_INVENTORY_DB: &str = "mysql://glasshouse:glasshouse@127.0.0.1:3306/inventory";
pub const DEFAULT_NOTIFICATION_DB: &str = "mongodb://127.0.0.1:27017/";
pub const DEFAULT_NOTIFICATION_DB_NAME: &str = "notifications";

#[derive(Debug, Parser)]
#[command(
    name = "glasshouse-audit",
    version,
    about = "Check the invariants that span Order, Inventory, Notification and the dead-letter topics",
    after_help = "Exit codes: 0 clean, 1 violations, 2 bad arguments, 3 a database or Kafka could not be read."
)]
struct Cli {
    /// Order's PostgreSQL [default: $APP_ORDER__DATABASE__URL, else the local stack's]
    #[arg(long, value_name = "URL")]
    order_db: Option<String>,
    /// Inventory's MariaDB/MySQL [default: $APP_INVENTORY__DATABASE__URL, else the local stack's]
    #[arg(long, value_name = "URL")]
    inventory_db: Option<String>,
    /// Notification's MongoDB/FerretDB [default: $APP_NOTIFICATION__DATABASE__URL, else mongodb://127.0.0.1:27017/]
    #[arg(long, value_name = "URL")]
    notification_db: Option<String>,
    /// The database of the notifications collection [default: $APP_NOTIFICATION__DATABASE__NAME, else notifications]
    #[arg(long, value_name = "NAME")]
    notification_db_name: Option<String>,
    /// Kafka bootstrap servers [default: $APP_KAFKA__BROKERS, else 127.0.0.1:9092]
    #[arg(long, value_name = "LIST")]
    brokers: Option<String>,
    /// Prefix of every topic name [default: $APP_KAFKA__TOPIC_PREFIX, else none]
    #[arg(long, value_name = "PREFIX")]
    topic_prefix: Option<String>,
    /// Do not look at the dead-letter topics.
    #[arg(long)]
    no_dlq: bool,
    /// Seconds an order may stay PENDING, an outbox row unsent, and a change
    /// take to reach every service, before it counts as a violation.
    #[arg(long, value_name = "N", default_value_t = 60)]
    settle_seconds: u64,
    /// Dead letters not redriven are violations, not warnings.
    #[arg(long)]
    strict: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Checks that `url` uses one of `schemes`; the message names the flag and
/// the value (password masked).
fn check_scheme(flag: &str, url: &str, schemes: &[&str]) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if scheme.as_deref().is_some_and(|s| schemes.contains(&s)) {
        return Ok(());
    }
    let want: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
    Err(format!("{flag} `{}` is not a {} URL", redact_url(url), want.join(" or ")))
}

/// The configuration the arguments (and environment) describe.
fn config(cli: Cli) -> Result<(AuditConfig, bool), String> {
    let order_db = flag_env_or(cli.order_db, ENV_ORDER_DB, DEFAULT_ORDER_DB);
    let inventory_db = flag_env_or(cli.inventory_db, ENV_INVENTORY_DB, DEFAULT_INVENTORY_DB);
    let notification_db = flag_env_or(cli.notification_db, ENV_NOTIFICATION_DB, DEFAULT_NOTIFICATION_DB);
    let notification_db_name = flag_env_or(cli.notification_db_name, ENV_NOTIFICATION_DB_NAME, DEFAULT_NOTIFICATION_DB_NAME);
    check_scheme("--order-db", &order_db, &["postgres", "postgresql"])?;
    check_scheme("--inventory-db", &inventory_db, &["mysql", "mariadb"])?;
    check_scheme("--notification-db", &notification_db, &["mongodb", "mongodb+srv"])?;
    if notification_db_name.is_empty() || notification_db_name.contains(['/', '\\', '.', ' ', '"', '$']) {
        return Err(format!("--notification-db-name `{notification_db_name}` is not a MongoDB database name"));
    }
    let kafka = if cli.no_dlq {
        None
    } else {
        let brokers = flag_env_or(cli.brokers, ENV_BROKERS, DEFAULT_BROKERS);
        let topic_prefix = flag_env_or(cli.topic_prefix, ENV_TOPIC_PREFIX, "");
        validate_brokers(&brokers)?;
        validate_topic_prefix(&topic_prefix)?;
        Some(KafkaTarget { brokers, topic_prefix })
    };
    let config = AuditConfig {
        // sqlx spells MariaDB `mysql://`.
        inventory_db_url: inventory_db.replacen("mariadb://", "mysql://", 1),
        order_db_url: order_db,
        notification_db_url: notification_db,
        notification_db_name,
        kafka,
        settle: Duration::from_secs(cli.settle_seconds),
        strict: cli.strict,
    };
    Ok((config, cli.json))
}

/// Runs the command line `args` (program name first); returns the exit code.
pub fn main_with(args: Vec<OsString>) -> i32 {
    let cli: Cli = match crate::args::parse_or_exit(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (config, json) = match config(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    match runtime.block_on(run_audit(&config)) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json()).unwrap_or_default());
            } else {
                println!("{report}");
            }
            if report.is_clean() { EXIT_OK } else { EXIT_FAILED }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!("the audit could not read every source, so it judged nothing");
            EXIT_UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(AuditConfig, bool), String> {
        let mut all = vec!["glasshouse-audit"];
        all.extend_from_slice(args);
        config(Cli::try_parse_from(all).map_err(|e| e.to_string())?)
    }

    #[test]
    fn flags_win_and_the_local_stack_is_the_default() {
        let (c, json) = parse(&["--order-db", "postgres://a@h/o", "--settle-seconds", "5", "--json", "--brokers", "k:9092"]).unwrap();
        assert_eq!(c.order_db_url, "postgres://a@h/o");
        assert_eq!(c.settle, Duration::from_secs(5));
        assert!(json);
        assert_eq!(c.kafka.as_ref().map(|k| k.brokers.as_str()), Some("k:9092"));
        let (c, _) = parse(&["--no-dlq", "--inventory-db", "mariadb://u:p@h/i"]).unwrap();
        assert!(c.kafka.is_none());
        assert_eq!(c.inventory_db_url, "mysql://u:p@h/i");
    }

    #[test]
    fn bad_values_are_named_without_passwords() {
        let e = parse(&["--order-db", "mysql://u:secret@h/o"]).unwrap_err();
        assert_eq!(e, "--order-db `mysql://u:***@h/o` is not a postgres:// or postgresql:// URL");
        assert!(parse(&["--notification-db-name", "a.b"]).unwrap_err().contains("`a.b`"));
        assert!(parse(&["--brokers", "nope"]).unwrap_err().contains("`nope`"));
        assert!(parse(&["--settle-seconds", "-1"]).unwrap_err().contains("-1"));
    }
}
