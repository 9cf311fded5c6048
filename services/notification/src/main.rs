//! `glasshouse-notification`: reads settings (exit 64 on bad ones), starts
//! telemetry, runs the service until SIGTERM/SIGINT
//! (`glasshouse_platform::app::run_main`).

glasshouse_platform::app::service_main!(glasshouse_notification);
