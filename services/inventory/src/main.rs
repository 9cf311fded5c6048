//! `glasshouse-inventory`: reads settings (exit 64 on bad ones), starts
//! telemetry, runs the service until SIGTERM/SIGINT.

use glasshouse_inventory::{Application, SERVICE, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = glasshouse_platform::config::load_or_exit(concat!(env!("CARGO_MANIFEST_DIR"), "/config"));
    let telemetry = glasshouse_telemetry::init(SERVICE, &settings.telemetry)?;
    let app = match Application::build(settings, telemetry.metrics().clone()).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "inventory service failed to start");
            telemetry.shutdown().await;
            return Err(e);
        }
    };
    app.shutdown_handle().on_signals();
    let result = app.run_until_stopped().await;
    telemetry.shutdown().await;
    result
}
