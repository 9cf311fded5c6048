//! Glasshouse telemetry: the only crate that knows about exporters.
//!
//! It will offer one `init(service_name, &config)` returning a guard that
//! flushes on drop, wiring traces (OpenTelemetry, OTLP to Jaeger), metrics
//! (Prometheus `/metrics` in OpenMetrics format with trace-id exemplars) and
//! logs (JSON with `trace_id`/`span_id` to stdout, Loki push and the
//! Elasticsearch bulk API). Services only name spans, fields and metrics.
#![forbid(unsafe_code)]
