//! Wiring: settings in, a running service out (HTTP API and the order-event
//! consumer), and a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use glasshouse_platform::app::{Shutdown, serve};
use glasshouse_platform::auth::Authenticator;
use glasshouse_platform::consumer::ConsumerLoop;
use glasshouse_platform::service::{http_app, kafka_check};
use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::health::{HealthCheck, HealthChecks};
use poem_openapi::OpenApiService;

use crate::api::NotificationApi;
use crate::events::OrderEvents;
use crate::metrics::NotificationMetrics;
use crate::settings::{DatabaseSettings, Settings};
use crate::store::Store;

/// The service name in telemetry and metrics.
pub const SERVICE: &str = "notification";

/// The OpenAPI document title and version (the contract in `openapi.yaml`).
const TITLE: &str = "Glasshouse Notification API";

fn api_service(store: Store) -> OpenApiService<NotificationApi, ()> {
    OpenApiService::new(NotificationApi { store }, TITLE, "1.0.0")
}

/// The spec the code serves, as YAML (the drift test compares it with the
/// committed `services/notification/openapi.yaml`). Needs no database: the
/// MongoDB client connects lazily and is never used here. Async (unlike
/// Order's) because creating a MongoDB client needs a Tokio runtime.
pub async fn spec_yaml() -> anyhow::Result<String> {
    let settings =
        DatabaseSettings { url: "mongodb://127.0.0.1:1/".to_owned().into(), name: "spec".into(), server_selection_timeout_ms: 1 };
    Ok(api_service(Store::connect(&settings).await?).spec_yaml())
}

/// `/health/ready`: MongoDB answers `ping`.
struct MongoCheck(Store);

#[async_trait::async_trait]
impl HealthCheck for MongoCheck {
    fn name(&self) -> &str {
        "mongodb"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// A built, not yet running, Notification service.
pub struct Application {
    listener: std::net::TcpListener,
    port: u16,
    app: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    consumer: ConsumerLoop,
    store: Store,
    shutdown: Shutdown,
    drain: Duration,
}

impl Application {
    /// Connects to MongoDB and creates the indexes, ensures the topics,
    /// subscribes the consumer, binds the port. `metrics` is the process's
    /// registry (from `glasshouse_telemetry::init`, or a fresh one in tests).
    pub async fn build(settings: Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database).await?;
        store.ensure_indexes().await?;
        let k = &settings.kafka;
        let orders_topic = k.topic(glasshouse_contracts::topics::ORDERS);
        k.ensure_topics(&[&orders_topic]).await?;

        let notification_metrics = NotificationMetrics::register(&metrics);
        let authenticator = Authenticator::from_settings(&settings.auth).await?;
        let consumer = ConsumerLoop::new(
            k.consumer(&[&orders_topic]),
            Arc::new(OrderEvents { store: store.clone(), metrics: notification_metrics }),
            metrics.standard.clone(),
        )?;
        let checks = HealthChecks::new().with(MongoCheck(store.clone())).with(kafka_check(&k.brokers)?);
        let app = http_app(api_service(store.clone()), checks, &metrics, authenticator);

        let listener = settings.http.bind()?;
        let port = listener.local_addr()?.port();
        Ok(Self { listener, port, app, consumer, store, shutdown: Shutdown::new(), drain: Duration::from_millis(settings.http.drain_ms) })
    }

    /// The bound HTTP port (the one asked for, or the one picked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Trigger it to stop the service (main wires SIGTERM/SIGINT to it).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The notifications store this service writes (tests read it directly).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Runs until shutdown: stops accepting, drains in-flight requests, lets
    /// the consumer finish its message and commit its offset.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { listener, app, consumer, shutdown, drain, .. } = self;
        let consumer_task = tokio::spawn(consumer.run(shutdown.subscribe()));
        tracing::info!(port = listener.local_addr()?.port(), "notification service listening");
        let served = serve(listener, app, shutdown.clone(), drain).await;
        // The server returns on shutdown (or a fatal accept error): stop the consumer too.
        shutdown.trigger();
        if let Ok(Err(e)) = consumer_task.await {
            tracing::error!(error = %format!("{e:#}"), "consumer stopped with an error");
        }
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
