//! Wiring: settings in, the Inventory service's parts (HTTP API, outbox relay, pruner,
//! order-event consumer, fault-flag watcher, low-stock gauge) handed to the
//! platform's lifecycle.

use std::sync::Arc;
use std::time::Duration;

use glasshouse_platform::app::{App, ServiceBuilder};
use glasshouse_platform::auth::Authenticator;
use glasshouse_platform::outbox::{OutboxDb, RelayConfig};
use glasshouse_platform::prune::{OUTBOX_SENT_RETENTION, PROCESSED_EVENTS_RETENTION, PruneTable};
use glasshouse_platform::service::{kafka_check, report_pool, sql_check};
use glasshouse_telemetry::Metrics;
use poem_openapi::OpenApiService;
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;

use crate::api::{ApiState, InventoryApi};
use crate::events::OrderEvents;
use crate::faults::Faults;
use crate::metrics::InventoryMetrics;
use crate::settings::Settings;
use crate::stock_low::LowStock;

/// The service name in telemetry and metrics.
pub const SERVICE: &str = "inventory";

/// The OpenAPI document title (the contract in `openapi.yaml`).
const TITLE: &str = "Glasshouse Inventory API";

fn api_service(state: Arc<ApiState>) -> OpenApiService<InventoryApi, ()> {
    OpenApiService::new(InventoryApi { state }, TITLE, "1.0.0")
}

/// The spec the code serves, as YAML (the drift test compares it with the
/// committed `services/inventory/openapi.yaml`). Connects to nothing; async
/// like every service's, because the lazy pool needs a Tokio runtime.
pub async fn spec_yaml() -> anyhow::Result<String> {
    let pool = MySqlPoolOptions::new().connect_lazy("mysql://spec@127.0.0.1:1/spec")?;
    let state = Arc::new(ApiState { pool, faults: Faults::new(), low_stock: LowStock::new() });
    Ok(glasshouse_platform::contract::served_spec(&api_service(state)))
}

/// A built, not yet running, Inventory service (the platform's [`App`] and
/// the database pool, which tests and the seed use).
pub struct Application(App, MySqlPool);

impl Application {
    /// Connects, migrates, ensures topics, loads the fault flags, binds the
    /// port. `metrics` is the process's registry (from
    /// `glasshouse_telemetry::init`, or a fresh `Metrics::new("inventory")` in tests).
    pub async fn build(settings: Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let pool = crate::store::connect(&settings.database).await?;
        glasshouse_platform::migrations::run_mysql(&pool, Some(sqlx::migrate!("./migrations")))
            .await
            .map_err(|e| anyhow::anyhow!("migrate the inventory database: {e}"))?;
        let k = &settings.kafka;
        k.ensure_topics(&[glasshouse_contracts::topics::ORDERS, glasshouse_contracts::topics::INVENTORY]).await?;

        let inventory_metrics = InventoryMetrics::register(&metrics);
        let faults = Faults::new();
        let low_stock = LowStock::new();
        let state = Arc::new(ApiState { pool: pool.clone(), faults: faults.clone(), low_stock: low_stock.clone() });
        let handler =
            OrderEvents { pool: pool.clone(), metrics: inventory_metrics.clone(), faults: faults.clone(), low_stock: low_stock.clone() };
        let app = ServiceBuilder::new(SERVICE, &metrics, &settings.http)
            .check(sql_check("mariadb", pool.clone()))
            .check(kafka_check(&k.brokers)?)
            .consumer(k.consumer(&[glasshouse_contracts::topics::ORDERS]), Arc::new(handler))?
            // The watcher loads the flags once now, so they hold from the first request.
            .faults(&settings.faults, faults.handle())?
            .relay(OutboxDb::MySql(pool.clone()), k.producer()?, RelayConfig { faults: Some(faults.handle()), ..k.relay() })
            // `restocks` holds idempotency keys too, but it is part of the stock
            // ledger (see the stock_ledger migration): never pruned.
            .pruner(
                OutboxDb::MySql(pool.clone()),
                vec![PruneTable::outbox_sent(OUTBOX_SENT_RETENTION)?, PruneTable::processed_events(PROCESSED_EVENTS_RETENTION)?],
            );
        let (threshold, every) = (settings.stock.low_threshold, Duration::from_secs(settings.stock.low_refresh_seconds.max(1)));
        let (low_pool, gauge_pool, gauge_metrics, closing) = (pool.clone(), pool.clone(), metrics.clone(), pool.clone());
        let app = app
            .task("low-stock-gauge", move |stop| {
                let run = low_stock.clone().run(low_pool.clone(), threshold, every, inventory_metrics.clone(), stop);
                async move {
                    run.await;
                    Ok(())
                }
            })
            .task("db-pool-gauge", move |stop| report_pool(gauge_pool.clone(), gauge_metrics.clone(), stop))
            .on_stop(async move { closing.close().await })
            .build(api_service(state), Authenticator::from_settings(&settings.auth).await?)?;
        Ok(Self(app, pool))
    }

    /// The service's database pool (tests and the seed use it; sessions are
    /// set up as in `store::connect`).
    pub fn pool(&self) -> &MySqlPool {
        &self.1
    }
}

glasshouse_platform::app::service_application!(Application);
