//! The parts every service assembles the same way: its HTTP surface around
//! the poem-openapi API, the readiness checks of its dependencies, and the
//! database pool gauge. A service's `app.rs` keeps only what is its own.

use std::time::Duration;

use glasshouse_telemetry::Metrics;
use glasshouse_telemetry::health::{HealthCheck, HealthChecks};
use glasshouse_telemetry::http::{ServerTelemetry, metrics_endpoint};
use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Response, Route};
use poem_openapi::{OpenApi, OpenApiService};
use std::sync::Arc;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::contract::{ApiContract, served_spec};
use crate::cursor::Cursors;
use crate::edge::{AllowHeader, BodyLimit, PathGuard, RouteMethods, StrictJson};
use crate::problem::ProblemJson;
use crate::settings::HttpSettings;

/// The whole HTTP surface: the API at `/`, its spec at `/openapi.yaml`
/// ([`served_spec`]: the committed contract), a
/// docs page at `/docs`, `/metrics`, `/health/live` and `/health/ready`;
/// errors as problem+json, and telemetry outermost (routes named by the spec).
///
/// From the outside in: telemetry; the edge refusals of [`crate::edge`]
/// (bodies over `http.max_body_bytes`, non-UTF-8 paths, duplicate JSON
/// members); `Allow` on 405s;
/// problem+json for every error; the request data handlers take
/// ([`Authenticator`], [`Cursors`] keyed by `http.cursor_key`).
pub fn http_app<T: OpenApi + ApiContract + 'static>(
    api: OpenApiService<T, ()>,
    checks: HealthChecks,
    metrics: &Metrics,
    authenticator: Authenticator,
    http: &HttpSettings,
) -> BoxEndpoint<'static, Response> {
    let spec = served_spec(&api);
    let telemetry = ServerTelemetry::new(metrics).with_openapi(&spec);
    let allow = AllowHeader::new(RouteMethods::from_openapi(&spec));
    let cursors = Cursors::new(metrics.standard.service(), &http.cursor_key);
    let docs = api.swagger_ui();
    Route::new()
        .nest("/", api)
        .at("/openapi.yaml", poem::endpoint::make_sync(move |_| Response::builder().content_type("application/yaml").body(spec.clone())))
        .nest("/docs", docs)
        .at("/metrics", metrics_endpoint(metrics.clone()))
        .nest("/health", checks.routes())
        .data(authenticator)
        .data(cursors)
        .with(ProblemJson)
        .with(allow)
        .with(StrictJson)
        .with(PathGuard)
        .with(BodyLimit::new(http.max_body_bytes))
        .with(telemetry)
        .boxed()
}

/// Ready when the Kafka cluster at `brokers` answers a metadata request within 2 s.
pub fn kafka_check(brokers: &str) -> anyhow::Result<impl HealthCheck + use<>> {
    let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create()?);
    Ok(glasshouse_telemetry::health::FnCheck::new("kafka", move || {
        let admin = admin.clone();
        async move {
            // librdkafka's metadata call blocks its thread.
            tokio::task::spawn_blocking(move || {
                admin.inner().fetch_metadata(None, Duration::from_secs(2)).map(drop).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        }
    }))
}

/// Ready when a pooled connection answers a ping.
pub fn sql_check<DB: sqlx::Database>(name: &str, pool: sqlx::Pool<DB>) -> impl HealthCheck + use<DB> {
    glasshouse_telemetry::health::FnCheck::new(name, move || {
        let pool = pool.clone();
        async move {
            use sqlx::Connection;
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            conn.ping().await.map_err(|e| e.to_string())
        }
    })
}

/// Sets `db_pool_connections{state}` every 5 s until `stop` turns true
/// (a supervised task: see [`crate::app::ServiceBuilder::task`]).
pub async fn report_pool<DB: sqlx::Database>(
    pool: sqlx::Pool<DB>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let idle = pool.num_idle() as i64;
        metrics.standard.set_db_pool(idle, i64::from(pool.size()) - idle);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}
