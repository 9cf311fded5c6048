//! Wiring: settings in, a running service out (HTTP API, outbox relay,
//! inventory-event consumer, saga timeout sweeper), and a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use glasshouse_platform::app::{Shutdown, serve};
use glasshouse_platform::auth::Authenticator;
use glasshouse_platform::consumer::{ConsumerLoop, ensure_topics};
use glasshouse_platform::http_client::ServiceClient;
use glasshouse_platform::outbox::{OutboxDb, Relay, RelayConfig};
use glasshouse_platform::service::{http_app, kafka_check, report_pool, sql_check};
use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::health::HealthChecks;
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
/// committed `services/order/openapi.yaml`). Needs no database or network.
pub fn spec_yaml() -> anyhow::Result<String> {
    let metrics = Metrics::new(SERVICE);
    let pool = PgPoolOptions::new().connect_lazy("postgres://spec@127.0.0.1:1/spec")?;
    let client = ServiceClient::new("inventory", Default::default(), metrics.standard.clone())?;
    let state = Arc::new(ApiState {
        pool,
        inventory: InventoryClient::new(client),
        metrics: OrderMetrics::register(&metrics),
        topic_prefix: String::new(),
    });
    Ok(api_service(state).spec_yaml())
}

/// A built, not yet running, Order service.
pub struct Application {
    listener: std::net::TcpListener,
    port: u16,
    app: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    relay: Relay,
    consumer: ConsumerLoop,
    timeouts: SagaTimeouts,
    pool: sqlx::PgPool,
    metrics: Metrics,
    shutdown: Shutdown,
    drain: Duration,
}

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
        let (orders_topic, inventory_topic) =
            (k.topic(glasshouse_contracts::topics::ORDERS), k.topic(glasshouse_contracts::topics::INVENTORY));
        ensure_topics(&k.brokers, &[&orders_topic, &inventory_topic], k.partitions).await?;

        let order_metrics = OrderMetrics::register(&metrics);
        let client = ServiceClient::new("inventory", settings.inventory.clone(), metrics.standard.clone())?;
        let state = Arc::new(ApiState {
            pool: pool.clone(),
            inventory: InventoryClient::new(client),
            metrics: order_metrics.clone(),
            topic_prefix: k.topic_prefix.clone(),
        });
        let authenticator = Authenticator::from_settings(&settings.auth).await?;

        let producer = k.producer()?;
        let relay = Relay::new(OutboxDb::Postgres(pool.clone()), producer.clone(), metrics.standard.clone(), RelayConfig::default());
        let consumer = ConsumerLoop::new(
            k.consumer(&[&inventory_topic]),
            Arc::new(InventoryEvents { pool: pool.clone(), metrics: order_metrics.clone(), topic_prefix: k.topic_prefix.clone() }),
            metrics.standard.clone(),
        )?;
        let timeouts = SagaTimeouts::new(pool.clone(), order_metrics, k.topic_prefix.clone(), settings.saga.clone());
        let checks = HealthChecks::new().with(sql_check("postgres", pool.clone())).with(kafka_check(&k.brokers)?);
        let app = http_app(api_service(state), checks, &metrics, authenticator);

        let listener = settings.http.bind()?;
        let port = listener.local_addr()?.port();
        Ok(Self { listener, port, app, relay, consumer, timeouts, pool, metrics, shutdown: Shutdown::new(), drain: settings.http.drain() })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Trigger it to stop the service (main wires SIGTERM/SIGINT to it).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Runs until shutdown: stops accepting, drains in-flight requests, lets
    /// the consumer finish its message and the relay its batch.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { listener, app, relay, consumer, timeouts, pool, metrics, shutdown, drain, .. } = self;
        let relay_task = tokio::spawn(relay.run(shutdown.subscribe()));
        let consumer_task = tokio::spawn(consumer.run(shutdown.subscribe()));
        let timeouts_task = tokio::spawn(timeouts.run(shutdown.subscribe()));
        let pool_task = tokio::spawn(report_pool(pool.clone(), metrics, shutdown.subscribe()));
        tracing::info!(port = listener.local_addr()?.port(), "order service listening");
        let served = serve(listener, app, shutdown.clone(), drain).await;
        // The server returns on shutdown (or a fatal accept error): stop the rest too.
        shutdown.trigger();
        let _ = relay_task.await;
        if let Ok(Err(e)) = consumer_task.await {
            tracing::error!(error = %format!("{e:#}"), "consumer stopped with an error");
        }
        if let Ok(Err(e)) = timeouts_task.await {
            tracing::error!(error = %format!("{e:#}"), "saga timeout sweeper stopped with an error");
        }
        let _ = pool_task.await;
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
