//! Wiring: settings in, a running service out (HTTP API, outbox relay,
//! order-event consumer, fault-flag watcher, low-stock gauge), and a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use glasshouse_platform::app::{Shutdown, serve};
use glasshouse_platform::auth::Authenticator;
use glasshouse_platform::consumer::{ConsumerLoop, ensure_topics};
use glasshouse_platform::outbox::{OutboxDb, Relay, RelayConfig};
use glasshouse_platform::service::{http_app, kafka_check, report_pool, sql_check};
use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::health::HealthChecks;
use poem_openapi::OpenApiService;
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;

use crate::api::{ApiState, InventoryApi};
use crate::events::OrderEvents;
use crate::faults::{FaultWatcher, Faults};
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
/// committed `services/inventory/openapi.yaml`). Needs no database or network,
/// and no Tokio runtime (it makes a throwaway one when called outside one).
pub fn spec_yaml() -> anyhow::Result<String> {
    // A lazy pool never connects, but sqlx spawns its maintenance task on the
    // current runtime.
    let throwaway = match tokio::runtime::Handle::try_current() {
        Ok(_) => None,
        Err(_) => Some(tokio::runtime::Builder::new_current_thread().build()?),
    };
    let _entered = throwaway.as_ref().map(|rt| rt.enter());
    let pool = MySqlPoolOptions::new().connect_lazy("mysql://spec@127.0.0.1:1/spec")?;
    let state = Arc::new(ApiState { pool, faults: Faults::new(), low_stock: LowStock::new() });
    Ok(api_service(state).spec_yaml())
}

/// A built, not yet running, Inventory service.
pub struct Application {
    listener: std::net::TcpListener,
    port: u16,
    app: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    relay: Relay,
    consumer: ConsumerLoop,
    watcher: FaultWatcher,
    low_stock: LowStock,
    low_threshold: u32,
    low_refresh: Duration,
    inventory_metrics: InventoryMetrics,
    pool: MySqlPool,
    metrics: Metrics,
    shutdown: Shutdown,
    drain: Duration,
}

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
        let (orders_topic, inventory_topic) =
            (k.topic(glasshouse_contracts::topics::ORDERS), k.topic(glasshouse_contracts::topics::INVENTORY));
        ensure_topics(&k.brokers, &[&orders_topic, &inventory_topic], k.partitions).await?;

        let inventory_metrics = InventoryMetrics::register(&metrics);
        let faults = Faults::new();
        let watcher = FaultWatcher::from_settings(&settings.faults, faults.clone(), inventory_metrics.clone())?;
        let low_stock = LowStock::new();
        let state = Arc::new(ApiState { pool: pool.clone(), faults: faults.clone(), low_stock: low_stock.clone() });
        let authenticator = Authenticator::from_settings(&settings.auth).await?;

        let producer = k.producer()?;
        let relay = Relay::new(OutboxDb::MySql(pool.clone()), producer.clone(), metrics.standard.clone(), RelayConfig::default());
        let handler = OrderEvents {
            pool: pool.clone(),
            metrics: inventory_metrics.clone(),
            topic_prefix: k.topic_prefix.clone(),
            faults,
            low_stock: low_stock.clone(),
        };
        let consumer = ConsumerLoop::new(k.consumer(&[&orders_topic]), Arc::new(handler), metrics.standard.clone())?;

        let checks = HealthChecks::new().with(sql_check("mariadb", pool.clone())).with(kafka_check(&k.brokers)?);
        let app = http_app(api_service(state), checks, &metrics, authenticator);

        let listener = settings.http.bind()?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            port,
            app,
            relay,
            consumer,
            watcher,
            low_stock,
            low_threshold: settings.stock.low_threshold,
            low_refresh: Duration::from_secs(settings.stock.low_refresh_seconds.max(1)),
            inventory_metrics,
            pool,
            metrics,
            shutdown: Shutdown::new(),
            drain: settings.http.drain(),
        })
    }

    /// The bound HTTP port (the one chosen when settings said 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's database pool (tests and the seed use it; sessions are
    /// set up as in `store::connect`).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Trigger it to stop the service (main wires SIGTERM/SIGINT to it).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Runs until shutdown: stops accepting, drains in-flight requests, lets
    /// the consumer finish its message and the relay its batch.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            app,
            relay,
            consumer,
            watcher,
            low_stock,
            low_threshold,
            low_refresh,
            inventory_metrics,
            pool,
            metrics,
            shutdown,
            drain,
            ..
        } = self;
        let relay_task = tokio::spawn(relay.run(shutdown.subscribe()));
        let consumer_task = tokio::spawn(consumer.run(shutdown.subscribe()));
        let watcher_task = tokio::spawn(watcher.run(shutdown.subscribe()));
        let low_task = tokio::spawn(low_stock.run(pool.clone(), low_threshold, low_refresh, inventory_metrics, shutdown.subscribe()));
        let pool_task = tokio::spawn(report_pool(pool.clone(), metrics, shutdown.subscribe()));
        tracing::info!(port = listener.local_addr()?.port(), "inventory service listening");
        let served = serve(listener, app, shutdown.clone(), drain).await;
        // The server returns on shutdown (or a fatal accept error): stop the rest too.
        shutdown.trigger();
        let _ = relay_task.await;
        if let Ok(Err(e)) = consumer_task.await {
            tracing::error!(error = %format!("{e:#}"), "consumer stopped with an error");
        }
        let _ = tokio::join!(watcher_task, low_task, pool_task);
        pool.close().await;
        served.map_err(Into::into)
    }
}

impl glasshouse_platform::app::Service for Application {
    fn shutdown_handle(&self) -> Shutdown {
        Application::shutdown_handle(self)
    }

    fn run_until_stopped(self) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
        Application::run_until_stopped(self)
    }
}
