//! The committed contract `services/inventory/openapi.yaml` equals the spec
//! the code serves (compared as YAML documents, so formatting does not matter).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

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
        ("/items/{sku}/adjustments", "post", "adjustItem", true),
    ] {
        let o = op(path, method);
        assert_eq!(o["operationId"].as_str(), Some(id), "{method} {path}");
        assert_eq!(!o["security"].is_null(), admin, "{method} {path}: bearer security only on admin writes");
        assert!(o["responses"]["405"]["content"]["application/problem+json"].is_mapping(), "{method} {path}: problem+json errors");
        assert!(o["responses"].get("default").is_none(), "{method} {path}: every error status listed, no `default`");
        assert_eq!(o["responses"].get("401").is_some(), admin, "{method} {path}: 401 exactly where a token is needed");
    }
    Ok(())
}

#[tokio::test]
async fn the_contract_states_the_stock_rules() -> anyhow::Result<()> {
    let spec: serde_yaml::Value = serde_yaml::from_str(&glasshouse_inventory::app::spec_yaml().await?)?;
    let put = &spec["paths"]["/items/{sku}"]["put"];
    // Stock is not required by PUT (only to create), and the rules are written down.
    let required = spec["components"]["schemas"]["PutItemRequest"]["required"].as_sequence().cloned().unwrap_or_default();
    assert!(!required.iter().any(|f| f.as_str() == Some("stock")), "{required:?}");
    let text = serde_yaml::to_string(put)?;
    for rule in ["stock-not-writable", "precondition-failed", "If-Match", "initial"] {
        assert!(text.contains(rule), "PUT does not state {rule}");
    }
    for (code, header) in [("200", "ETag"), ("201", "ETag"), ("201", "Location"), ("412", "ETag")] {
        assert!(put["responses"][code]["headers"][header].is_mapping(), "PUT {code} lacks {header}");
    }
    assert!(spec["paths"]["/items/{sku}"]["get"]["responses"]["200"]["headers"]["ETag"].is_mapping());
    // The rules the server enforces, as the contract states them.
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["Price"]["properties"]["currency"]["pattern"], "^[A-Z]{3}$");
    assert_eq!(schemas["Price"]["properties"]["amount_minor"]["maximum"].as_f64(), Some(1e12));
    assert_eq!(schemas["PutItemRequest"]["properties"]["name"]["maxLength"], 200);
    assert_eq!(schemas["PutItemRequest"]["properties"]["stock"]["maximum"].as_f64(), Some(1e9));
    assert_eq!(schemas["RestockRequest"]["properties"]["quantity"]["minimum"].as_f64(), Some(1.0));
    for s in ["PutItemRequest", "Price", "RestockRequest", "AdjustmentRequest"] {
        assert_eq!(schemas[s]["additionalProperties"], false, "{s}: unknown members are refused");
    }
    let adjust = serde_yaml::to_string(&spec["paths"]["/items/{sku}/adjustments"]["post"])?;
    for rule in ["insufficient-stock", "idempotency-key-reused", "Idempotency-Key"] {
        assert!(adjust.contains(rule), "adjustments do not state {rule}");
    }
    let reasons: Vec<&str> = spec["components"]["schemas"]["AdjustmentReason"]["enum"]
        .as_sequence()
        .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(reasons, ["damaged", "lost", "found", "count_correction"]);
    Ok(())
}
