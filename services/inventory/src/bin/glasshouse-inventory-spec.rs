//! `glasshouse-inventory-spec`: prints the OpenAPI document the service
//! serves, to regenerate the committed contract:
//! `cargo run -q -p glasshouse-inventory --bin glasshouse-inventory-spec > services/inventory/openapi.yaml`

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    print!("{}", glasshouse_inventory::app::spec_yaml().await?);
    Ok(())
}
