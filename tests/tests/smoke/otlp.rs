//! opentelemetry-otlp (gRPC) into Jaeger, found again through Jaeger's query API.

use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::stack::{self, JAEGER_OTLP_GRPC, JAEGER_QUERY};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_span_is_found_in_jaeger() -> anyhow::Result<()> {
    stack::require(JAEGER_OTLP_GRPC).await?;
    stack::require(JAEGER_QUERY).await?;
    // A service name of its own, so the query finds exactly this test's trace.
    let service = stack::unique_name("smoke-otlp");
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(JAEGER_OTLP_GRPC.http()).build()?;
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service.clone()).build())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("glasshouse-smoke");
    let mut span = tracer.start("smoke.operation");
    span.set_attribute(KeyValue::new("glasshouse.smoke", true));
    let trace_id = span.span_context().trace_id().to_string();
    span.end();
    // Flushing blocks on the batch processor's thread; keep it off the async workers.
    let provider = tokio::task::spawn_blocking(move || provider.force_flush().map(|()| provider)).await??;

    let http = reqwest::Client::new();
    let url = format!("{}/api/traces/{trace_id}", JAEGER_QUERY.http());
    let trace: serde_json::Value = poll::until("the span in Jaeger", Duration::from_secs(30), Duration::from_millis(250), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let resp = http.get(&url).send().await?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            Ok(Some(resp.error_for_status()?.json::<serde_json::Value>().await?))
        }
    })
    .await?;

    let data = &trace["data"][0];
    assert_eq!(data["traceID"], trace_id);
    let spans = data["spans"].as_array().expect("spans array");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["operationName"], "smoke.operation");
    let process = &data["processes"][spans[0]["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], service);
    tokio::task::spawn_blocking(move || provider.shutdown()).await??;
    Ok(())
}
