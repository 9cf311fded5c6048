//! `glasshouse-order-spec`: prints the OpenAPI document the service serves,
//! to regenerate the committed contract:
//! `cargo run -q -p glasshouse-order --bin glasshouse-order-spec > services/order/openapi.yaml`

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    print!("{}", glasshouse_order::app::spec_yaml().await?);
    Ok(())
}
