//! The committed contract `services/inventory/openapi.yaml` equals the spec
//! the code serves (compared as YAML documents, so formatting does not matter).

const REGENERATE: &str = "cargo run -q -p glasshouse-inventory --bin glasshouse-inventory-spec > services/inventory/openapi.yaml";

#[tokio::test]
async fn committed_openapi_matches_the_served_spec() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let committed: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
    let served: serde_yaml::Value = serde_yaml::from_str(&glasshouse_inventory::app::spec_yaml().await?)?;
    assert!(
        committed == served,
        "services/inventory/openapi.yaml differs from the spec the code serves.\n\
         If the API change is intended, regenerate the contract from the repository root:\n  {REGENERATE}\n\
         and review the diff; otherwise fix the code."
    );
    Ok(())
}

#[tokio::test]
async fn the_contract_names_every_operation_and_the_admin_security() -> anyhow::Result<()> {
    let spec: serde_yaml::Value = serde_yaml::from_str(&glasshouse_inventory::app::spec_yaml().await?)?;
    let op = |path: &str, method: &str| spec["paths"][path][method].clone();
    for (path, method, id, admin) in [
        ("/items/{sku}", "get", "getItem", false),
        ("/items", "get", "listItems", false),
        ("/items/{sku}", "put", "putItem", true),
        ("/items/{sku}/restock", "post", "restockItem", true),
    ] {
        let o = op(path, method);
        assert_eq!(o["operationId"].as_str(), Some(id), "{method} {path}");
        assert_eq!(!o["security"].is_null(), admin, "{method} {path}: bearer security only on admin writes");
        assert!(o["responses"]["default"]["content"]["application/problem+json"].is_mapping(), "{method} {path}: problem+json errors");
    }
    Ok(())
}
