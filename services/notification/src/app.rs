//! Wiring: settings in, the Notification service's parts (HTTP API, the
//! order-event consumer, fault flags) handed to the platform's lifecycle.

use std::sync::Arc;

use glasshouse_platform::app::{App, ServiceBuilder};
use glasshouse_platform::auth::Authenticator;
use glasshouse_platform::faults::Faults;
use glasshouse_platform::service::kafka_check;
use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::health::HealthCheck;
use poem_openapi::OpenApiService;

use crate::api::NotificationApi;
use crate::events::{FLAGS, OrderEvents};
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
/// committed `services/notification/openapi.yaml`). Connects to nothing; async
/// like every service's, because the lazy MongoDB client needs a Tokio runtime.
pub async fn spec_yaml() -> anyhow::Result<String> {
    let settings =
        DatabaseSettings { url: "mongodb://127.0.0.1:1/".to_owned().into(), name: "spec".into(), server_selection_timeout_ms: 1 };
    Ok(glasshouse_platform::contract::served_spec(&api_service(Store::connect(&settings).await?)))
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

/// A built, not yet running, Notification service (the platform's [`App`]
/// and the notifications store, which tests read directly).
pub struct Application(App, Store);

impl Application {
    /// Connects to MongoDB and creates the indexes, ensures the topics,
    /// subscribes the consumer, binds the port. `metrics` is the process's
    /// registry (from `glasshouse_telemetry::init`, or a fresh one in tests).
    pub async fn build(settings: Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database).await?;
        store.ensure_indexes().await?;
        let k = &settings.kafka;
        k.ensure_topics(&[glasshouse_contracts::topics::ORDERS]).await?;

        let faults = Faults::new(FLAGS);
        let handler = OrderEvents { store: store.clone(), metrics: NotificationMetrics::register(&metrics), faults: faults.clone() };
        let app = ServiceBuilder::new(SERVICE, &metrics, &settings.http)
            .check(MongoCheck(store.clone()))
            .check(kafka_check(&k.brokers)?)
            .faults(&settings.faults, faults)?
            .consumer(k.consumer(&[glasshouse_contracts::topics::ORDERS]), Arc::new(handler))?
            .build(api_service(store.clone()), Authenticator::from_settings(&settings.auth).await?)?;
        Ok(Self(app, store))
    }

    /// The notifications store this service writes (tests read it directly).
    pub fn store(&self) -> Store {
        self.1.clone()
    }
}

glasshouse_platform::app::service_application!(Application);
