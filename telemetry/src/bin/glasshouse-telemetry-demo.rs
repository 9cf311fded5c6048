//! A three-role demo that emits one of each signal, for the telemetry tests
//! and for seeing the pipeline work by hand:
//!
//! - `serve`: an HTTP service (poem + the telemetry middleware) whose
//!   `POST /work` logs, then publishes a Kafka message carrying the trace;
//!   also `/metrics`, `/health/*`, and `POST /flush` (push telemetry now).
//! - `consume`: a Kafka consumer whose spans continue the producer's trace.
//! - `call`: a client that starts a trace, calls `serve`, prints the trace id.
//!
//! Telemetry settings come from `GLASSHOUSE_TELEMETRY` (JSON of
//! `TelemetryConfig`; defaults point at the local stack). The roles stand for
//! services of one deployment, so they share a trace trust key (the demo's
//! own unless the settings give one): `serve` continues `call`'s trace.

use std::sync::Arc;
use std::time::Duration;

use glasshouse_telemetry::health::{FnCheck, HealthChecks};
use glasshouse_telemetry::http::{ServerTelemetry, metrics_endpoint};
use glasshouse_telemetry::{TelemetryConfig, TelemetryGuard, kafka};
use poem::listener::TcpListener;
use poem::web::Data;
use poem::{EndpointExt, Route, handler, post};
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::Instrument;

/// The services' allocator (`glasshouse_platform::service_main!`), so the
/// `ping` benchmark measures what a service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!(
        "usage:\n  glasshouse-telemetry-demo serve   SERVICE PORT_FILE BROKERS TOPIC\n  \
         glasshouse-telemetry-demo consume SERVICE BROKERS TOPIC GROUP\n  \
         glasshouse-telemetry-demo call    SERVICE URL\n  \
         glasshouse-telemetry-demo ping    PORT on|off   (benchmark target: GET /ping)"
    );
    std::process::exit(2)
}

fn config() -> anyhow::Result<TelemetryConfig> {
    let mut config: TelemetryConfig = match std::env::var("GLASSHOUSE_TELEMETRY") {
        Ok(json) => {
            serde_json::from_str(&json).map_err(|e| anyhow::anyhow!("GLASSHOUSE_TELEMETRY is not a valid telemetry config: {e}"))?
        }
        Err(_) => TelemetryConfig::default(),
    };
    if config.traces.trust_key.is_none() {
        config.traces.trust_key = Some("telemetry-demo-trace-key".into());
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["serve", service, port_file, brokers, topic] => serve(service, port_file, brokers, topic).await,
        ["consume", service, brokers, topic, group] => consume(service, brokers, topic, group).await,
        ["call", service, url] => call(service, url).await,
        ["ping", port, mode @ ("on" | "off")] => ping(port, *mode == "on").await,
        _ => usage(),
    }
}

struct Shared {
    producer: FutureProducer,
    topic: String,
    guard: TelemetryGuard,
}

#[handler]
async fn work(Data(shared): Data<&Arc<Shared>>) -> poem::Result<String> {
    let order_id = format!("demo-{}", std::process::id());
    tracing::info!(order_id = %order_id, "work accepted");
    let span = kafka::producer_span(&shared.topic, &order_id);
    let headers = kafka::headers_for(&span, OwnedHeaders::new());
    let sent = shared
        .producer
        .send(FutureRecord::to(&shared.topic).key(&order_id).payload("{}").headers(headers), Duration::from_secs(5))
        .instrument(span)
        .await;
    if let Err((e, _)) = sent {
        tracing::error!(error = %e, "publish failed");
        return Err(poem::Error::from_string("publish failed", poem::http::StatusCode::SERVICE_UNAVAILABLE));
    }
    Ok(glasshouse_telemetry::traces::current_ids().map(|(t, _)| t).unwrap_or_default())
}

#[handler]
async fn flush(Data(shared): Data<&Arc<Shared>>) -> &'static str {
    shared.guard.flush_traces().await;
    shared.guard.flush_logs().await;
    "flushed"
}

async fn serve(service: &str, port_file: &str, brokers: &str, topic: &str) -> anyhow::Result<()> {
    let guard = glasshouse_telemetry::init(service, &config()?)?;
    let metrics = guard.metrics().clone();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers).set("message.timeout.ms", "5000").create()?;
    let shared = Arc::new(Shared { producer, topic: topic.to_owned(), guard });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    drop(listener);
    let app = Route::new()
        .at("/work", post(work))
        .at("/flush", post(flush))
        .at("/metrics", metrics_endpoint(metrics.clone()))
        .nest("/health", HealthChecks::new().with(FnCheck::new("self", || async { Ok(()) })).routes())
        .data(shared.clone())
        .with(ServerTelemetry::new(&metrics));
    // The port file appears only once the server is about to accept.
    let tmp = format!("{port_file}.tmp");
    std::fs::write(&tmp, port.to_string())?;
    std::fs::rename(&tmp, port_file)?;
    poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
        .run_with_graceful_shutdown(
            app,
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            Some(Duration::from_secs(5)),
        )
        .await?;
    Ok(())
}

async fn consume(service: &str, brokers: &str, topic: &str, group: &str) -> anyhow::Result<()> {
    let guard = glasshouse_telemetry::init(service, &config()?)?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let span = kafka::consumer_span(msg.topic(), msg.partition(), msg.offset(), msg.headers());
        async {
            let key = msg.key_view::<str>().transpose().ok().flatten().unwrap_or_default().to_owned();
            let inner = tracing::info_span!("demo.handle", order_id = %key);
            inner.in_scope(|| tracing::info!("message handled"));
        }
        .instrument(span)
        .await;
        consumer.commit_message(&msg, CommitMode::Sync)?;
        guard.flush_traces().await;
        guard.flush_logs().await;
    }
    guard.shutdown().await;
    Ok(())
}

async fn call(service: &str, url: &str) -> anyhow::Result<()> {
    let guard = glasshouse_telemetry::init(service, &config()?)?;
    let span = tracing::info_span!("demo.call", otel.kind = "client");
    let trace_id = async {
        let mut headers = poem::http::HeaderMap::new();
        glasshouse_telemetry::http::inject_current(&mut headers);
        let resp = reqwest::Client::new().post(url).headers(headers).send().await?.error_for_status()?;
        let served_trace = resp.text().await?;
        tracing::info!(served_trace = %served_trace, "called");
        anyhow::Ok(glasshouse_telemetry::traces::current_ids().map(|(t, _)| t).unwrap_or_default())
    }
    .instrument(span)
    .await?;
    guard.shutdown().await;
    // The last stdout line: what the tests read.
    println!("{}", serde_json::json!({ "demo_trace_id": trace_id }));
    Ok(())
}

#[handler]
fn pong() -> &'static str {
    "pong"
}

/// The benchmark target: a trivial endpoint, with the whole telemetry stack
/// (middleware, every exporter on, 100% sampling) or with none of it.
async fn ping(port: &str, telemetry: bool) -> anyhow::Result<()> {
    let addr = format!("127.0.0.1:{port}");
    let route = Route::new().at("/ping", poem::get(pong));
    if telemetry {
        let guard = glasshouse_telemetry::init("telemetry-bench", &config()?)?;
        let metrics = guard.metrics().clone();
        let app = route.at("/metrics", metrics_endpoint(metrics.clone())).with(ServerTelemetry::new(&metrics));
        poem::Server::new(TcpListener::bind(addr))
            .run_with_graceful_shutdown(
                app,
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
                None,
            )
            .await?;
        guard.shutdown().await;
    } else {
        poem::Server::new(TcpListener::bind(addr))
            .run_with_graceful_shutdown(
                route,
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
                None,
            )
            .await?;
    }
    Ok(())
}
