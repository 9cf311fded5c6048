//! `glasshouse-order`: reads settings (exit 64 on bad ones), starts telemetry,
//! runs the service until SIGTERM/SIGINT.

use glasshouse_order::{Application, SERVICE, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    glasshouse_platform::app::run_main(
        SERVICE,
        concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        |s: &Settings| &s.telemetry,
        Application::build,
    )
    .await
}
