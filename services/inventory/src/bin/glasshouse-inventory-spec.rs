//! `glasshouse-inventory-spec`: prints the OpenAPI document the service
//! serves, to regenerate the committed contract:
//! `cargo run -q -p glasshouse-inventory --bin glasshouse-inventory-spec > services/inventory/openapi.yaml`

fn main() -> anyhow::Result<()> {
    print!("{}", glasshouse_inventory::app::spec_yaml()?);
    Ok(())
}
