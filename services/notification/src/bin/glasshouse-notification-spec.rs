//! Prints the OpenAPI document the service serves, as YAML. Regenerate the
//! committed contract with
//! `cargo run -p glasshouse-notification --bin glasshouse-notification-spec > services/notification/openapi.yaml`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    print!("{}", glasshouse_notification::app::spec_yaml().await?);
    Ok(())
}
