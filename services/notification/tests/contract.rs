//! Contract drift: the spec the code serves must equal the committed
//! `services/notification/openapi.yaml` (compared as YAML documents).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

#[tokio::test]
async fn served_spec_matches_the_committed_contract() -> anyhow::Result<()> {
    let served: serde_yaml::Value = serde_yaml::from_str(&glasshouse_notification::app::spec_yaml().await?)?;
    let committed: serde_yaml::Value = serde_yaml::from_str(include_str!("../openapi.yaml"))?;
    assert!(
        served == committed,
        "services/notification/openapi.yaml is out of date with the code. Regenerate it with\n  \
         cargo run -p glasshouse-notification --bin glasshouse-notification-spec > services/notification/openapi.yaml\n\
         and review the diff (it is the published contract)."
    );
    Ok(())
}
