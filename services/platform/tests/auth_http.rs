//! Bearer authentication over a real poem server on 127.0.0.1:0 with reqwest:
//! poem-openapi operations (`BearerAuth`) and plain poem handlers
//! (`Principal` extractor, `RequireRole` middleware), keys from a JWKS file.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use glasshouse_platform::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevClaims, SigningKey};
use glasshouse_platform::auth::{AuthSettings, Authenticator, BearerAuth, JwksSource, Principal, RequireRole, Role};
use glasshouse_platform::problem::{Problem, ProblemJson};
use jsonwebtoken::jwk::JwkSet;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Json as PoemJson;
use poem::{EndpointExt, Route, Server, get, handler};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const RSA_PEM: &str = include_str!("auth_fixtures/rsa-test-key.pem");

#[derive(Object)]
struct Me {
    customer_id: String,
    roles: Vec<String>,
}

#[derive(ApiResponse)]
enum MeResponse {
    #[oai(status = 200)]
    Ok(Json<Me>),
}

fn me(p: &Principal) -> Me {
    Me { customer_id: p.customer_id.to_string(), roles: p.roles.iter().map(|r| r.to_string()).collect() }
}

struct Api;

#[OpenApi]
impl Api {
    #[oai(path = "/me", method = "get")]
    async fn me(&self, auth: BearerAuth) -> Result<MeResponse, Problem> {
        Ok(MeResponse::Ok(Json(me(&auth.0))))
    }

    #[oai(path = "/admin/report", method = "get")]
    async fn report(&self, auth: BearerAuth) -> Result<MeResponse, Problem> {
        auth.0.require(Role::Admin)?;
        Ok(MeResponse::Ok(Json(me(&auth.0))))
    }
}

#[handler]
fn plain_me(principal: Principal) -> PoemJson<Value> {
    PoemJson(json!({"customer_id": principal.customer_id.to_string()}))
}

#[handler]
fn plain_admin(principal: Principal) -> PoemJson<Value> {
    PoemJson(json!({"admin": principal.customer_id.to_string()}))
}

struct Keys {
    es: SigningKey,
    rsa: SigningKey,
    dir: PathBuf,
}

impl Keys {
    fn new() -> Self {
        let es = SigningKey::generate_es256().unwrap();
        let rsa = SigningKey::from_pem(RSA_PEM).unwrap();
        assert_eq!(rsa.algorithm(), jsonwebtoken::Algorithm::RS256);
        let dir = std::env::temp_dir().join(format!("glasshouse-auth-http-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwks = JwkSet { keys: vec![es.jwk().clone(), rsa.jwk().clone()] };
        std::fs::write(dir.join("jwks.json"), serde_json::to_vec(&jwks).unwrap()).unwrap();
        Self { es, rsa, dir }
    }

    fn settings(&self) -> AuthSettings {
        AuthSettings {
            issuer: DEV_ISSUER.into(),
            audience: DEV_AUDIENCE.into(),
            jwks: JwksSource::File(self.dir.join("jwks.json")),
            leeway_seconds: 30,
            jwks_refresh_seconds: 300,
            jwks_min_refetch_seconds: 10,
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(auth: Authenticator) -> (SocketAddr, oneshot::Sender<()>) {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].0.as_socket_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let app = Route::new()
        .nest("/", OpenApiService::new(Api, "auth test", "1.0"))
        .at("/plain/me", get(plain_me))
        .at("/plain/admin", get(plain_admin).with(RequireRole(Role::Admin)))
        .data(auth)
        .with(ProblemJson);
    tokio::spawn(async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async {
                    rx.await.ok();
                },
                Some(Duration::from_secs(5)),
            )
            .await
    });
    (addr, tx)
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn call(addr: SocketAddr, path: &str, authorization: Option<String>) -> Answer {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (status, www_authenticate, content_type) = (resp.status().as_u16(), header("www-authenticate"), header("content-type"));
    Answer { status, www_authenticate, content_type, body: resp.json().await.unwrap_or(Value::Null) }
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

fn claims(sub: &str, roles: Vec<Role>) -> DevClaims {
    DevClaims::new(sub, roles, Duration::from_secs(600))
}

fn assert_unauthenticated(a: &Answer, detail_has: &str) {
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(a.body["type"], "https://glasshouse.dev/problems/unauthenticated", "{}", a.body);
    assert_eq!(a.body["status"], 401);
    let detail = a.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(detail_has), "detail {detail:?} should mention {detail_has:?}");
    assert!(a.www_authenticate.as_deref().is_some_and(|w| w.starts_with("Bearer")), "{:?}", a.www_authenticate);
}

const PROTECTED: [&str; 2] = ["/me", "/plain/me"];

#[tokio::test]
async fn valid_es256_and_rs256_tokens_are_accepted() {
    let keys = Keys::new();
    let (addr, _stop) = serve(Authenticator::from_settings(&keys.settings()).await.unwrap()).await;
    for key in [&keys.es, &keys.rsa] {
        let token = key.mint(&claims("cust-42", vec![Role::Customer])).unwrap();
        for path in PROTECTED {
            let a = call(addr, path, bearer(&token)).await;
            assert_eq!(a.status, 200, "{path} {:?}: {}", key.algorithm(), a.body);
            assert_eq!(a.body["customer_id"], "cust-42");
        }
        let a = call(addr, "/me", bearer(&token)).await;
        assert_eq!(a.body["roles"], json!(["customer"]));
    }
}

#[tokio::test]
async fn missing_malformed_and_forged_tokens_get_401_problems() {
    let keys = Keys::new();
    let (addr, _stop) = serve(Authenticator::from_settings(&keys.settings()).await.unwrap()).await;
    let good = claims("cust-1", vec![Role::Customer]);

    // Signed by a different key that claims the trusted key's id.
    let impostor = SigningKey::generate_es256().unwrap().with_kid(keys.es.kid());
    let forged = impostor.mint(&good).unwrap();
    // A valid token with one character in the middle of the signature changed
    // (the last one may carry padding bits and fail base64 decoding instead).
    let mut tampered: Vec<char> = keys.es.mint(&good).unwrap().chars().collect();
    let i = tampered.len() - 20;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    // Same claims, HMAC-signed with the public key as secret (algorithm confusion).
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(keys.es.kid().to_owned());
    let hs = jsonwebtoken::encode(&hs_header, &good, &jsonwebtoken::EncodingKey::from_secret(b"x")).unwrap();
    let unknown_kid = SigningKey::generate_es256().unwrap().mint(&good).unwrap();

    for path in PROTECTED {
        assert_unauthenticated(&call(addr, path, None).await, "no bearer token");
        assert_unauthenticated(&call(addr, path, bearer(&forged)).await, "signature");
        assert_unauthenticated(&call(addr, path, bearer(&tampered)).await, "signature");
        assert_unauthenticated(&call(addr, path, bearer(&hs)).await, "algorithm");
        assert_unauthenticated(&call(addr, path, bearer(&unknown_kid)).await, "unknown key");
        assert_unauthenticated(&call(addr, path, bearer("not-a-jwt")).await, "malformed");
        assert_unauthenticated(&call(addr, path, Some("Basic dXNlcjpwdw==".into())).await, "");
    }
    // With a token present the challenge says why (RFC 6750).
    let a = call(addr, "/plain/me", bearer(&forged)).await;
    assert!(a.www_authenticate.unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn expiry_audience_and_issuer_are_enforced() {
    let keys = Keys::new();
    let (addr, _stop) = serve(Authenticator::from_settings(&keys.settings()).await.unwrap()).await;
    let now = chrono::Utc::now().timestamp();

    let mut expired = claims("cust-1", vec![Role::Customer]);
    expired.iat = now - 7200;
    expired.exp = now - 3600;
    let mut within_leeway = claims("cust-1", vec![Role::Customer]);
    within_leeway.exp = now - 5; // leeway is 30 s
    let mut other_audience = claims("cust-1", vec![Role::Customer]);
    other_audience.aud = "some-other-service".into();
    let mut other_issuer = claims("cust-1", vec![Role::Customer]);
    other_issuer.iss = "https://evil.example".into();
    let mut bad_sub = claims("cust 1 with spaces", vec![Role::Customer]);
    bad_sub.sub = "has spaces".into();

    for path in PROTECTED {
        let mint = |c: &DevClaims| bearer(&keys.es.mint(c).unwrap());
        assert_unauthenticated(&call(addr, path, mint(&expired)).await, "expired");
        assert_unauthenticated(&call(addr, path, mint(&other_audience)).await, "audience");
        assert_unauthenticated(&call(addr, path, mint(&other_issuer)).await, "issuer");
        assert_unauthenticated(&call(addr, path, mint(&bad_sub)).await, "sub");
        assert_eq!(call(addr, path, mint(&within_leeway)).await.status, 200);
    }
}

#[tokio::test]
async fn roles_gate_admin_routes_with_403() {
    let keys = Keys::new();
    let (addr, _stop) = serve(Authenticator::from_settings(&keys.settings()).await.unwrap()).await;
    let customer = keys.es.mint(&claims("cust-1", vec![Role::Customer])).unwrap();
    let admin = keys.rsa.mint(&claims("ops-1", vec![Role::Admin])).unwrap();

    for path in ["/admin/report", "/plain/admin"] {
        let a = call(addr, path, bearer(&customer)).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert_eq!(a.content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(a.body["type"], "https://glasshouse.dev/problems/forbidden");
        assert!(a.body["detail"].as_str().unwrap().contains("admin"));

        let a = call(addr, path, bearer(&admin)).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);

        // No token at all is still 401, not 403.
        assert_unauthenticated(&call(addr, path, None).await, "no bearer token");
    }
}

#[tokio::test]
async fn roles_claim_unknown_roles_are_ignored_and_a_single_string_is_read() {
    let keys = Keys::new();
    let auth = Authenticator::from_jwks(&keys.es.jwks(), DEV_ISSUER, DEV_AUDIENCE).unwrap();
    let now = chrono::Utc::now().timestamp();
    let base = json!({"sub": "c-9", "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "iat": now, "exp": now + 60});
    let with = |roles: Value| {
        let mut c = base.clone();
        c["roles"] = roles;
        keys.es.mint(&c).unwrap()
    };
    let p = auth.authenticate(&with(json!(["customer", "superuser"]))).await.unwrap();
    assert_eq!(p.roles.iter().copied().collect::<Vec<_>>(), vec![Role::Customer]);
    let p = auth.authenticate(&with(json!("admin"))).await.unwrap();
    assert!(p.is_admin());
    let p = auth.authenticate(&keys.es.mint(&base).unwrap()).await.unwrap();
    assert!(p.roles.is_empty());
    assert!(p.require(Role::Customer).is_err());
    // Owner-or-admin check used by "GET /orders/{id}".
    assert!(p.can_access(&"c-9".parse().unwrap()));
    assert!(!p.can_access(&"c-10".parse().unwrap()));
}

#[test]
fn the_spec_documents_a_bearer_jwt_scheme() {
    let spec: Value = serde_json::from_str(&OpenApiService::new(Api, "auth test", "1.0").spec()).unwrap();
    let scheme = &spec["components"]["securitySchemes"]["BearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    assert_eq!(spec["paths"]["/me"]["get"]["security"], json!([{"BearerAuth": []}]));
}

#[tokio::test]
async fn start_up_fails_without_usable_keys() {
    let dir = std::env::temp_dir().join(format!("glasshouse-auth-nokeys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut settings = Keys::new().settings();
    settings.jwks = JwksSource::File(dir.join("missing.json"));
    let err = Authenticator::from_settings(&settings).await.unwrap_err();
    assert!(err.to_string().contains("missing.json"), "{err}");

    std::fs::write(dir.join("empty.json"), r#"{"keys": []}"#).unwrap();
    settings.jwks = JwksSource::File(dir.join("empty.json"));
    let err = Authenticator::from_settings(&settings).await.unwrap_err();
    assert!(err.to_string().contains("no RS256/ES256 signing key"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
