//! Authorization as a table: every route of the three services against every
//! kind of caller (the owner, another customer, an admin, no token, and tokens
//! that must not pass: expired, wrong audience, wrong issuer, `alg: none`,
//! HS256 keyed with the public key, a tampered payload, another key using the
//! trusted key's id). Each cell is the status the contract promises.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use glasshouse_platform::auth::Role;
use glasshouse_platform::auth::dev::{DevClaims, SigningKey};
use glasshouse_tests::services::Saga;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{place, seed_item, send};

/// The callers, in the order of the table's columns.
const CALLERS: [&str; 11] =
    ["self", "other", "admin", "none", "expired", "wrong-aud", "wrong-iss", "alg-none", "hs256-pubkey", "tampered", "same-kid"];

/// A column per caller: the owner, another customer, an admin, then eight that must be refused.
fn tokens(saga: &Saga) -> Vec<Option<String>> {
    let now = chrono::Utc::now().timestamp();
    let claims = || DevClaims::new("ann", vec![Role::Customer], Duration::from_secs(600));
    let mint = |c: &DevClaims| Some(saga.key.mint(c).unwrap());
    let mut expired = claims();
    (expired.iat, expired.exp) = (now - 7200, now - 3600);
    let mut wrong_aud = claims();
    wrong_aud.aud = "some-other-api".into();
    let mut wrong_iss = claims();
    wrong_iss.iss = "https://evil.example".into();
    let good = saga.key.mint(&claims()).unwrap();
    let (_, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let payload = serde_json::to_value(claims()).unwrap();
    let alg_none = format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT", "kid": saga.key.kid() })), b64(&payload));
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(saga.key.kid().to_owned());
    let public = serde_json::to_vec(saga.key.jwk()).unwrap();
    let hs256 = jsonwebtoken::encode(&hs_header, &claims(), &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
    // Ann's valid signature on a payload that says "admin".
    let mut elevated = payload;
    elevated["roles"] = json!(["admin"]);
    let head = good.split('.').next().unwrap();
    let tampered = format!("{head}.{}.{sig}", b64(&elevated));
    let impostor = SigningKey::generate_es256().unwrap().with_kid(saga.key.kid());
    let mut admin_claims = claims();
    admin_claims.roles = vec![Role::Admin];
    vec![
        Some(good),
        mint(&DevClaims::new("bob", vec![Role::Customer], Duration::from_secs(600))),
        mint(&DevClaims::new("ops", vec![Role::Admin], Duration::from_secs(600))),
        None,
        mint(&expired),
        mint(&wrong_aud),
        mint(&wrong_iss),
        Some(alg_none),
        Some(hs256),
        Some(tampered),
        Some(impostor.mint(&admin_claims).unwrap()),
    ]
}

/// One route: service, method, path, body, and the expected status per caller.
type Row<'a> = (&'a glasshouse_tests::services::Service, Method, String, Option<Value>, [u16; 11]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_every_caller() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    seed_item(&http, &saga, "AUZ-1", 1000).await?;
    let tokens = tokens(&saga);
    let ann = tokens[0].clone().unwrap();
    let id = place(&http, &saga, &ann, "auz-0", "AUZ-1").await?;

    // 401 for every refused token: the columns after "none" never differ.
    const X: u16 = 401;
    let order = json!({ "lines": [{ "sku": "AUZ-1", "quantity": 1 }] });
    let item = json!({ "name": "auz", "price": { "amount_minor": 100, "currency": "EUR" } });
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        //                                                                          self  other admin none  expired..same-kid
        (&saga.order, Method::POST, "/orders".into(), Some(order),                   [202, 202, 403, X, X, X, X, X, X, X, X]),
        (&saga.order, Method::GET, "/orders".into(), None,                           [200, 200, 200, X, X, X, X, X, X, X, X]),
        (&saga.order, Method::GET, format!("/orders/{id}"), None,                    [200, 404, 200, X, X, X, X, X, X, X, X]),
        (&saga.order, Method::POST, format!("/orders/{id}/cancel"), None,            [200, 404, 403, X, X, X, X, X, X, X, X]),
        (&saga.inventory, Method::GET, "/items".into(), None,                        [200; 11]),
        (&saga.inventory, Method::GET, "/items/AUZ-1".into(), None,                  [200; 11]),
        (&saga.inventory, Method::PUT, "/items/AUZ-1".into(), Some(item),            [403, 403, 200, X, X, X, X, X, X, X, X]),
        (&saga.inventory, Method::POST, "/items/AUZ-1/restock".into(), Some(json!({ "quantity": 1 })),
                                                                                     [403, 403, 200, X, X, X, X, X, X, X, X]),
        (&saga.notification, Method::GET, format!("/notifications?order_id={id}"), None,
                                                                                     [200, 200, 200, X, X, X, X, X, X, X, X]),
        (&saga.notification, Method::GET, "/notifications?customer_id=ann".into(), None,
                                                                                     [200, 403, 200, X, X, X, X, X, X, X, X]),
    ];
    let mut wrong = Vec::new();
    let mut key = 0;
    for (svc, method, path, body, expected) in &table {
        for (c, token) in tokens.iter().enumerate() {
            let mut req = http.request(method.clone(), svc.url(path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                key += 1;
                req = req.header("Idempotency-Key", format!("auz-{key}")).json(b);
            }
            let a = send(req).await?;
            if a.status != expected[c] {
                wrong.push(format!("{} {method} {path} as {}: {} (expected {}) {}", svc.name, CALLERS[c], a.status, expected[c], a.body));
            } else if a.status == 401 {
                a.assert_problem(401, "unauthenticated");
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells differ:\n{}", wrong.len(), wrong.join("\n"));
    saga.stop().await
}
