//! Order's Inventory client (generated from `services/inventory/openapi.yaml`
//! at build time) against the real Inventory service, in-process on a scratch
//! MariaDB database: it reads what Inventory really serves, maps Inventory's
//! refusals and absence to Order's errors, and keeps the platform client's
//! retries and circuit breaker.

use std::time::Duration;

use glasshouse_inventory::Application;
use glasshouse_order::inventory::InventoryClient;
use glasshouse_platform::auth::Role;
use glasshouse_platform::auth::dev::{DevClaims, SigningKey};
use glasshouse_platform::breaker::{BreakerConfig, FailurePolicy};
use glasshouse_platform::config::SettingsLoader;
use glasshouse_platform::http_client::{ClientError, ClientSettings, ServiceClient};
use glasshouse_telemetry::Metrics;
use glasshouse_tests::db::ScratchMySql;
use glasshouse_tests::stack::{self, KAFKA};

/// The count of `http_client_request_duration_seconds` for Order's calls to
/// Inventory with `outcome`, from Order's registry.
fn attempts(metrics: &Metrics, outcome: &str) -> u64 {
    let want = format!("outcome=\"{outcome}\"");
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("http_client_request_duration_seconds_count{") && l.contains("peer=\"inventory\"") && l.contains(&want))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn the_generated_client_reads_the_real_inventory() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let db = ScratchMySql::new().await?;
    let dir = std::env::temp_dir().join(stack::unique_name("inventory-client"));
    std::fs::create_dir_all(&dir)?;
    let key = SigningKey::generate_es256()?;
    std::fs::write(dir.join("jwks.json"), serde_json::to_vec(&key.jwks())?)?;
    let vars = [
        ("APP_HTTP__PORT", "0".to_owned()),
        ("APP_DATABASE__URL", db.url.clone()),
        ("APP_KAFKA__BROKERS", KAFKA.addr()),
        ("APP_KAFKA__GROUP_ID", stack::unique_name("inventory-client")),
        ("APP_KAFKA__TOPIC_PREFIX", format!("{}.", stack::unique_name("invc"))),
        ("APP_AUTH__JWKS__FILE", dir.join("jwks.json").display().to_string()),
        ("APP_FAULTS__FILE", dir.join("faults.json").display().to_string()),
    ];
    let settings =
        SettingsLoader::with_vars(stack::repo_root().join("services/inventory/config"), vars.into_iter().map(|(k, v)| (k.to_owned(), v)))
            .load()?;
    let app = Application::build(settings, Metrics::new("inventory")).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());

    let admin = key.mint(&DevClaims::new("admin-test", vec![Role::Admin], Duration::from_secs(600)))?;
    let http = reqwest::Client::new();
    for (sku, amount, currency) in [("CLI-A", 1250, "EUR"), ("CLI-B", 99, "EUR")] {
        let body = serde_json::json!({"name": format!("{sku} item"), "price": {"amount_minor": amount, "currency": currency}, "stock": 7});
        let put = http.put(format!("{base}/items/{sku}")).bearer_auth(&admin).json(&body).send().await?;
        anyhow::ensure!(put.status() == 201, "create {sku}: {} {}", put.status(), put.text().await?);
    }

    // Three attempts per call, and a breaker that opens after five failures in a row.
    let order_metrics = Metrics::new("order");
    let client_settings = ClientSettings {
        base_url: base.clone(),
        timeout_ms: 2000,
        max_attempts: 3,
        retry_base_ms: 1,
        breaker: BreakerConfig {
            policy: FailurePolicy::Consecutive { threshold: 5 },
            open_for: Duration::from_secs(60),
            half_open_trials: 1,
        },
    };
    let client = InventoryClient::new(ServiceClient::new("inventory", client_settings, order_metrics.standard.clone())?);

    // What Inventory serves decodes into the contract's types: known SKUs priced, unknown ones absent.
    let prices = client.prices(&["CLI-A".into(), "NOPE-1".into(), "CLI-B".into()]).await?;
    assert_eq!(prices.keys().collect::<Vec<_>>(), ["CLI-A", "CLI-B"], "unknown SKUs are absent");
    assert_eq!((prices["CLI-A"].amount_minor, prices["CLI-A"].currency.as_str()), (1250, "EUR"));
    assert_eq!((prices["CLI-B"].amount_minor, prices["CLI-B"].currency.as_str()), (99, "EUR"));
    assert_eq!(attempts(&order_metrics, "success"), 1);

    // A request Inventory (or the contract, before sending) refuses: Order's 500, not a 503; no retry.
    let refused = client.prices(&["not a sku".into()]).await.expect_err("a malformed SKU is refused");
    assert!(!refused.is_unavailable(), "{refused}");
    match &refused {
        ClientError::Status { status, body, .. } => {
            assert!((400..500).contains(status), "{refused}");
            assert!(body.contains("\"type\""), "the problem+json body is kept: {body}");
        }
        ClientError::Request { .. } => {}
        other => panic!("refusal mapped to {other:?}"),
    }
    assert_eq!(attempts(&order_metrics, "error"), 1, "a refusal is not retried");

    // Inventory gone: each call is retried (3 attempts), answers "unavailable" (Order's 503),
    // and the fifth failure in a row opens the breaker: the third call is refused unsent.
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await???;
    for _ in 0..2 {
        let gone = client.prices(&["CLI-A".into()]).await.expect_err("Inventory is down");
        assert!(gone.is_unavailable(), "{gone}");
        assert!(matches!(gone, ClientError::Connect { .. } | ClientError::Open(_)), "{gone:?}");
    }
    assert_eq!(attempts(&order_metrics, "connect"), 5, "three attempts, then two until the breaker opened");
    let open = client.prices(&["CLI-A".into()]).await.expect_err("the breaker is open");
    assert!(matches!(open, ClientError::Open(_)) && open.is_unavailable(), "{open:?}");
    assert!(attempts(&order_metrics, "circuit_open") >= 2, "refused unsent, and counted");

    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await
}
