//! What an absent key means, in one place (loadtest/README.md documents the same values).

use std::time::Duration;

/// `flows[].weight`.
pub(super) fn weight() -> u32 {
    1
}
/// `load.max_in_flight` (open models).
pub(super) const MAX_IN_FLIGHT: u32 = 100;
/// `load.graceful_stop`.
pub(super) const GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// `load.start_rate` (ramping_rate).
pub(super) const START_RATE: f64 = 0.0;
/// `http.timeout`.
pub(super) const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// `http.connect_timeout`.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `report.trace_ui_url`: a trace's page in the local stack's trace UI (Zipkin's Lens).
pub(super) const TRACE_UI_URL: &str = "http://127.0.0.1:9411/zipkin/traces/{trace_id}";
/// `report.trace_wait`: how long the end of a run waits, in all, for the
/// slowest requests' traces to reach Jaeger.
pub(super) const TRACE_WAIT: Duration = Duration::from_secs(10);
/// `report.slowest`.
pub(super) const SLOWEST: usize = 10;
/// `metrics.listen`: loopback, any free port.
pub(super) const METRICS_LISTEN: &str = "127.0.0.1:0";
/// `metrics.prometheus_targets_dir`: register with the local stack when it runs.
pub(super) const PROMETHEUS_TARGETS_DIR: &str = "auto";
/// `list_catalog.limit`.
pub(super) const CATALOG_LIMIT: u32 = 20;
/// `place_order.lines` and `place_order.quantity`: exactly one.
pub(super) const ONE: (u32, u32) = (1, 1);
/// `poll_order.interval`.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// `poll_order.timeout`.
pub(super) const POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// `http.method`, `http.path`, `http.expect_status`.
pub(super) const HTTP_METHOD: &str = "GET";
pub(super) const HTTP_PATH: &str = "/";
pub(super) const EXPECT_STATUS: u16 = 200;
