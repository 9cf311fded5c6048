//! The API Gateway HTTP API definition (`deploy/aws/apigateway-http-api.yaml`)
//! is a fresh generation from `services/*/openapi.yaml` (compared parsed, so
//! formatting is free), and the generation follows the edge rules.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};

use glasshouse_ops::apigw::{self, AUTHORIZER, EdgeParams, OUTPUT};
use serde_yaml::Value;

const REGENERATE: &str = "cargo run -p glasshouse-ops --bin glasshouse-apigw";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_committed_definition_is_a_fresh_generation() {
    let fresh = apigw::generate(&repo(), &EdgeParams::default()).unwrap();
    let text = std::fs::read_to_string(repo().join(OUTPUT)).unwrap_or_else(|e| panic!("{OUTPUT}: {e}; generate it: {REGENERATE}"));
    let committed: Value = serde_yaml::from_str(&text).unwrap();
    assert!(committed == fresh, "{OUTPUT} differs from a fresh generation from services/*/openapi.yaml; regenerate: {REGENERATE}");
}

fn ops(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (route, item) in doc["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            out.push((method.as_str().unwrap().to_uppercase(), route.as_str().unwrap().to_owned(), op.clone()));
        }
    }
    out
}

#[test]
fn every_published_operation_is_proxied_behind_the_jwt_authorizer() {
    let doc = apigw::generate(&repo(), &EdgeParams::default()).unwrap();
    let all = ops(&doc);
    let keys: Vec<String> = all.iter().map(|(m, r, _)| format!("{m} {r}")).collect();
    // The public API: orders, notifications, inventory's admin writes; never the
    // catalog reads (only Order's identity calls them, inside the mesh).
    for want in ["POST /orders", "GET /orders", "GET /orders/{id}", "POST /orders/{id}/cancel", "GET /notifications", "PUT /items/{sku}"] {
        assert!(keys.contains(&want.to_owned()), "{want} missing from {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.starts_with("GET /items")), "catalog reads must not be at the edge: {keys:?}");
    for (m, r, op) in &all {
        let at = format!("{m} {r}");
        let i = &op["x-amazon-apigateway-integration"];
        assert_eq!(i["type"].as_str(), Some("http_proxy"), "{at}");
        assert_eq!(i["connectionType"].as_str(), Some("VPC_LINK"), "{at}");
        assert_eq!(i["connectionId"].as_str(), Some("${GH_VPC_LINK_ID}"), "{at}");
        assert_eq!(i["uri"].as_str(), Some("${GH_ALB_LISTENER_ARN}"), "{at}");
        assert_eq!(i["httpMethod"].as_str(), Some(m.as_str()), "{at}");
        assert!(op["security"][0].get(AUTHORIZER).is_some(), "{at}: no JWT authorizer");
        // Every {param} of the route is declared (else the import refuses the route).
        for seg in r.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            assert!(
                op["parameters"].as_sequence().into_iter().flatten().any(|p| p["name"].as_str() == Some(name)),
                "{at}: path parameter {name} not declared"
            );
        }
    }
    let auth = &doc["components"]["securitySchemes"][AUTHORIZER]["x-amazon-apigateway-authorizer"];
    assert_eq!(auth["type"].as_str(), Some("jwt"));
    assert_eq!(auth["identitySource"].as_str(), Some("$request.header.Authorization"));
    assert_eq!(auth["jwtConfiguration"]["issuer"].as_str(), Some("${GH_JWT_ISSUER}"));
}

#[test]
fn flags_fill_the_placeholders() {
    let params = EdgeParams {
        vpc_link_id: "abc123".into(),
        listener_arn: "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/gh/1/2".into(),
        server_name: "api.example.com".into(),
        issuer: "https://issuer.example.com/".into(),
        audience: "glasshouse".into(),
    };
    let doc = apigw::generate(&repo(), &params).unwrap();
    let text = serde_yaml::to_string(&doc).unwrap();
    assert!(!text.contains("${GH_"), "a placeholder is left: {text}");
    assert!(text.contains("abc123") && text.contains("https://issuer.example.com/"));
}

#[test]
fn a_contract_without_paths_or_a_duplicate_route_is_refused() {
    let order = apigw::read_contract(&repo(), "order").unwrap();
    let err = apigw::generate_from(&[("order", order.clone()), ("copy", order)], &EdgeParams::default()).unwrap_err();
    assert!(err.to_string().contains("is in both services/order/openapi.yaml and services/copy/openapi.yaml"), "{err}");
    let err = apigw::generate_from(&[("x", serde_yaml::from_str("openapi: 3.0.0\n").unwrap())], &EdgeParams::default()).unwrap_err();
    assert!(err.to_string().contains("no paths"), "{err}");
}

#[test]
fn check_mode_reports_drift_with_exit_1() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("apigw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("edge.yaml");
    let args = |extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> =
            vec!["glasshouse-apigw".into(), "--repo".into(), repo().into(), "--out".into(), out.clone().into()];
        a.extend(extra.iter().map(Into::into));
        a
    };
    assert_eq!(apigw::main_with(args(&[])), 0);
    assert_eq!(apigw::main_with(args(&["--check"])), 0);
    std::fs::write(&out, "openapi: 3.0.1\npaths: {}\n").unwrap();
    assert_eq!(apigw::main_with(args(&["--check"])), 1);
    assert_eq!(apigw::main_with(vec!["glasshouse-apigw".into(), "--bogus".into()]), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
