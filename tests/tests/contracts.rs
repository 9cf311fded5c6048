//! The committed contracts (`services/*/openapi.yaml`) state what the
//! services enforce and answer (docs/contracts.md): one problem+json response
//! per error status with its headers, no `default`, bearer security where a
//! token is needed, closed request schemas, the rules, and Order's links.
//! That the code serves exactly these documents is each service's drift
//! test; that the live services keep to them is `schemathesis.rs`.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use glasshouse_tests::stack::repo_root;
use serde_yaml::Value;

fn contract(service: &str) -> Value {
    let path = repo_root().join(format!("services/{service}/openapi.yaml"));
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// (path, method, operation) of every operation of `spec`.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            out.push((path.as_str().unwrap().to_owned(), method.as_str().unwrap().to_owned(), op.clone()));
        }
    }
    out
}

#[test]
fn every_operation_lists_its_errors_as_problem_json_with_their_headers() {
    for service in ["order", "inventory", "notification"] {
        let spec = contract(service);
        for (path, method, op) in operations(&spec) {
            let at = format!("{service}: {method} {path}");
            let responses = op["responses"].as_mapping().unwrap();
            assert!(responses.get("default").is_none(), "{at}: a `default` response hides which errors happen");
            assert!(responses.get("405").is_some(), "{at}: every path answers other methods with 405");
            for (status, resp) in responses {
                let status: u16 = status.as_str().unwrap().parse().unwrap();
                if status < 400 {
                    assert!(resp["content"]["application/json; charset=utf-8"].is_mapping(), "{at} {status}: a JSON body");
                    continue;
                }
                assert_eq!(
                    resp["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                    "{at} {status}: problem+json"
                );
                let header = match status {
                    401 => Some("WWW-Authenticate"),
                    405 => Some("Allow"),
                    503 => Some("Retry-After"),
                    _ => None,
                };
                if let Some(h) = header {
                    assert_eq!(resp["headers"][h]["required"], true, "{at} {status}: {h}");
                }
            }
            let secured = op["security"].as_sequence().is_some_and(|s| s.iter().any(|r| r.get("BearerAuth").is_some()));
            assert_eq!(secured, responses.get("401").is_some(), "{at}: 401 exactly where a bearer token is required");
            if op.get("requestBody").is_some() {
                for s in [413, 415, 422, 400] {
                    assert!(responses.get(s.to_string().as_str()).is_some(), "{at}: a body can be answered {s}");
                }
            }
        }
        assert_eq!(spec["components"]["securitySchemes"]["BearerAuth"]["scheme"], "bearer", "{service}");
        assert_eq!(spec["components"]["securitySchemes"]["BearerAuth"]["bearerFormat"], "JWT", "{service}");
        assert!(!serde_yaml::to_string(&spec).unwrap().contains("nullable"), "{service}: absent, never null");
    }
}

#[test]
fn request_schemas_refuse_unknown_members_and_response_schemas_stay_open() {
    for (service, closed, open) in [
        ("order", &["PlaceOrderRequest", "OrderLineRequest"][..], &["OrderDto", "OrderPage", "Problem"][..]),
        ("inventory", &["PutItemRequest", "Price", "RestockRequest", "AdjustmentRequest"], &["Item", "ItemPage", "Problem"]),
        ("notification", &[], &["Notification", "NotificationPage", "Problem"]),
    ] {
        let schemas = &contract(service)["components"]["schemas"];
        for s in closed {
            assert_eq!(schemas[*s]["additionalProperties"], false, "{service}: {s}");
        }
        for s in open {
            assert!(schemas[*s].get("additionalProperties").is_none(), "{service}: {s}");
        }
    }
}

#[test]
fn the_rules_the_services_enforce_are_stated() {
    let order = contract("order");
    let s = &order["components"]["schemas"];
    // Lengths beside an unbounded pattern (docs/contracts.md: poem-openapi compiles a pattern per validation).
    assert_eq!(s["OrderLineRequest"]["properties"]["sku"]["pattern"], "^[A-Z0-9-]+$");
    assert_eq!(s["OrderLineRequest"]["properties"]["sku"]["minLength"], 1);
    assert_eq!(s["OrderLineRequest"]["properties"]["sku"]["maxLength"], 64);
    assert_eq!(s["OrderLineRequest"]["properties"]["quantity"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(s["OrderLineRequest"]["properties"]["quantity"]["maximum"].as_f64(), Some(1000.0));
    assert_eq!(s["PlaceOrderRequest"]["properties"]["lines"]["minItems"], 1);
    assert_eq!(s["PlaceOrderRequest"]["properties"]["lines"]["maxItems"], 50);
    assert!(s["PlaceOrderRequest"]["properties"]["lines"]["description"].as_str().unwrap().contains("unique by `sku`"));
    let place = &order["paths"]["/orders"]["post"];
    let key = place["parameters"].as_sequence().unwrap().iter().find(|p| p["name"] == "Idempotency-Key").unwrap();
    assert_eq!(key["schema"]["maxLength"], 255);
    assert_eq!(place["responses"]["202"]["headers"]["Location"]["required"], true);
    for service in ["order", "inventory", "notification"] {
        let spec = contract(service);
        for (path, method, op) in operations(&spec) {
            for p in op["parameters"].as_sequence().into_iter().flatten() {
                match p["name"].as_str().unwrap() {
                    "limit" => {
                        assert_eq!(
                            (p["schema"]["minimum"].as_f64(), p["schema"]["maximum"].as_f64()),
                            (Some(1.0), Some(100.0)),
                            "{method} {path}"
                        );
                    }
                    "cursor" => assert_eq!(p["schema"]["maxLength"], 512, "{method} {path}"),
                    "sku" => assert_eq!(p["schema"]["pattern"], "^[A-Z0-9-]+$", "{method} {path}"),
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn placing_an_order_links_to_reading_and_cancelling_it() {
    let order = contract("order");
    let links = &order["paths"]["/orders"]["post"]["responses"]["202"]["links"];
    assert_eq!(links["GetOrder"]["operationId"], "getOrder");
    assert_eq!(links["CancelOrder"]["operationId"], "cancelOrder");
    for l in ["GetOrder", "CancelOrder"] {
        assert_eq!(links[l]["parameters"]["id"], "$response.body#/id", "{l}");
    }
}
