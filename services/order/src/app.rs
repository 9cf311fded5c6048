//! Wiring: settings in, the Order service's parts (HTTP API, outbox relay,
//! inventory-event consumer, saga timeout sweeper, pruner, fault flags) handed
//! to the platform's lifecycle.

use std::sync::Arc;
use std::time::Duration;

use glasshouse_platform::app::{App, ServiceBuilder};
use glasshouse_platform::auth::Authenticator;
use glasshouse_platform::faults::{Faults, RELAY_FLAGS};
use glasshouse_platform::http_client::ServiceClient;
use glasshouse_platform::outbox::{OutboxDb, RelayConfig};
use glasshouse_platform::prune::{IDEMPOTENCY_KEY_RETENTION, OUTBOX_SENT_RETENTION, PROCESSED_EVENTS_RETENTION, PruneTable};
use glasshouse_platform::service::{kafka_check, report_pool, sql_check};
use glasshouse_telemetry::Metrics;
use poem_openapi::OpenApiService;
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;

use crate::api::{ApiState, OrderApi};
use crate::events::InventoryEvents;
use crate::inventory::InventoryClient;
use crate::metrics::OrderMetrics;
use crate::settings::Settings;
use crate::timeout::SagaTimeouts;

/// The service name in telemetry and metrics.
pub const SERVICE: &str = "order";

/// The OpenAPI document title and version (the contract in `openapi.yaml`).
const TITLE: &str = "Glasshouse Order API";

fn api_service(state: Arc<ApiState>) -> OpenApiService<OrderApi, ()> {
    OpenApiService::new(OrderApi { state }, TITLE, "1.0.0")
}

/// The spec the code serves, as YAML (the drift test compares it with the
/// committed `services/order/openapi.yaml`). Connects to nothing; async like
/// every service's, because lazy database clients need a Tokio runtime.
pub async fn spec_yaml() -> anyhow::Result<String> {
    let metrics = Metrics::new(SERVICE);
    let pool = PgPoolOptions::new().connect_lazy("postgres://spec@127.0.0.1:1/spec")?;
    let client = ServiceClient::new("inventory", Default::default(), metrics.standard.clone())?;
    let state = Arc::new(ApiState { pool, inventory: InventoryClient::new(client), metrics: OrderMetrics::register(&metrics) });
    Ok(glasshouse_platform::contract::served_spec(&api_service(state)))
}

/// A built, not yet running, Order service (the platform's [`App`]).
pub struct Application(App);

impl Application {
    /// Connects, migrates, ensures topics, binds the port. `metrics` is the
    /// process's registry (from `glasshouse_telemetry::init`, or a fresh one in tests).
    pub async fn build(settings: Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(settings.database.url.expose_secret())
            .await
            .map_err(|e| anyhow::anyhow!("connect to the orders database: {e}"))?;
        glasshouse_platform::migrations::run_postgres(&pool, Some(sqlx::migrate!("./migrations"))).await?;
        let k = &settings.kafka;
        k.ensure_topics(&[glasshouse_contracts::topics::ORDERS, glasshouse_contracts::topics::INVENTORY]).await?;

        let order_metrics = OrderMetrics::register(&metrics);
        let client = ServiceClient::new("inventory", settings.inventory.clone(), metrics.standard.clone())?;
        let state = Arc::new(ApiState { pool: pool.clone(), inventory: InventoryClient::new(client), metrics: order_metrics.clone() });
        let handler = InventoryEvents { pool: pool.clone(), metrics: order_metrics.clone() };
        let (timeout_pool, saga) = (pool.clone(), settings.saga.clone());
        let pruned = vec![
            PruneTable::outbox_sent(OUTBOX_SENT_RETENTION)?,
            PruneTable::processed_events(PROCESSED_EVENTS_RETENTION)?,
            PruneTable::new("idempotency_keys", "created_at", IDEMPOTENCY_KEY_RETENTION)?,
        ];
        let (gauge_pool, gauge_metrics, closing) = (pool.clone(), metrics.clone(), pool.clone());
        // Order's only flags are its relay's.
        let faults = Faults::new(RELAY_FLAGS);
        let app = ServiceBuilder::new(SERVICE, &metrics, &settings.http)
            .check(sql_check("postgres", pool.clone()))
            .check(kafka_check(&k.brokers)?)
            .consumer(k.consumer(&[glasshouse_contracts::topics::INVENTORY]), Arc::new(handler))?
            .faults(&settings.faults, faults.clone())?
            .relay(OutboxDb::Postgres(pool.clone()), k.producer()?, RelayConfig { faults: Some(faults), ..k.relay() })
            .task("saga-timeouts", move |stop| SagaTimeouts::new(timeout_pool.clone(), order_metrics.clone(), saga.clone()).run(stop))
            .pruner(OutboxDb::Postgres(pool.clone()), pruned)
            .task("db-pool-gauge", move |stop| report_pool(gauge_pool.clone(), gauge_metrics.clone(), stop))
            .on_stop(async move { closing.close().await })
            .build(api_service(state), Authenticator::from_settings(&settings.auth).await?)?;
        Ok(Self(app))
    }
}

glasshouse_platform::app::service_application!(Application);
