//! Paths and methods a client makes up: a 405 names the route's methods in
//! `Allow` (RFC 9110 section 15.5.6), and a path parameter that is not UTF-8
//! once percent-decoded is a 404 `not-found`, as the contract says for ids
//! that do not exist; both as problem+json, on every service.

use glasshouse_platform::auth::Role;
use glasshouse_tests::services::Saga;
use reqwest::Method;

use crate::support::send;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_405_says_allow_and_non_utf8_ids_are_404() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let admin = saga.token("ops", Role::Admin);
    let id = uuid::Uuid::new_v4();

    let not_allowed = [
        (&saga.order, Method::DELETE, "/orders".to_owned(), "GET, HEAD, POST"),
        (&saga.order, Method::GET, format!("/orders/{id}/cancel"), "POST"),
        (&saga.order, Method::PUT, format!("/orders/{id}"), "GET, HEAD"),
        (&saga.inventory, Method::DELETE, "/items/A-1".to_owned(), "GET, HEAD, PUT"),
        (&saga.inventory, Method::GET, "/items/A-1/restock".to_owned(), "POST"),
        (&saga.inventory, Method::PATCH, "/items".to_owned(), "GET, HEAD"),
        (&saga.notification, Method::POST, "/notifications".to_owned(), "GET, HEAD"),
        (&saga.notification, Method::DELETE, "/notifications".to_owned(), "GET, HEAD"),
    ];
    for (svc, method, path, allow) in not_allowed {
        let a = send(http.request(method.clone(), svc.url(&path)).bearer_auth(&admin)).await?;
        a.assert_problem(405, "method-not-allowed");
        assert_eq!(a.headers.get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{} {method} {path}", svc.name);
    }

    let impossible = [
        (&saga.order, Method::GET, "/orders/%FF"),
        (&saga.order, Method::POST, "/orders/%FF/cancel"),
        (&saga.order, Method::GET, "/orders/%C3%28"),
        (&saga.inventory, Method::GET, "/items/%FF"),
        (&saga.inventory, Method::POST, "/items/%FF/restock"),
        (&saga.inventory, Method::PUT, "/items/A%80B"),
        (&saga.notification, Method::GET, "/notifications/%FF"),
    ];
    for (svc, method, path) in impossible {
        let a = send(http.request(method.clone(), svc.url(path)).bearer_auth(&admin).json(&serde_json::json!({}))).await?;
        a.assert_problem(404, "not-found");
    }
    // Percent-encoded UTF-8 is an ordinary (unknown) id.
    let a = send(http.get(saga.inventory.url("/items/%C3%A9")).bearer_auth(&admin)).await?;
    assert_ne!(a.status, 500, "{}", a.body);
    saga.stop().await
}
