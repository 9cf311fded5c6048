//! JWT bearer authentication: who is calling, and may they.
//!
//! - [`Authenticator`] validates `Authorization: Bearer <jwt>`: signature
//!   (RS256 or ES256 only, the algorithm pinned by the key, so a token cannot
//!   pick a weaker one), issuer, audience, `exp`/`nbf` with a small leeway,
//!   and the claims `sub` (the customer id) and `roles`. Keys come from a JWKS
//!   file or URL, are cached, and are re-read when a token names a key id the
//!   cache does not know (key rotation) — at most once per
//!   `jwks_min_refetch_seconds`, so a flood of forged key ids cannot turn the
//!   service into a JWKS-fetching machine.
//! - [`Principal`] is the result: `{customer_id, roles}`. It is a poem
//!   extractor (handlers take it as an argument), [`RequireRole`] is a
//!   middleware for whole routes, and [`BearerAuth`] is the poem-openapi
//!   security scheme (documented in the spec as HTTP bearer, JWT).
//! - Failures are problem+json: 401 `unauthenticated` for a missing, malformed,
//!   expired, wrongly addressed or unverifiable token (the `detail` says which,
//!   as RFC 6750 allows), 403 `forbidden` for a missing role.
//! - [`dev`]: key generation and token minting for the local stack and tests
//!   (used by the `glasshouse-dev-token` binary). Issuer `glasshouse-local`,
//!   audience `glasshouse`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use glasshouse_contracts::CustomerId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::HeaderMap;
use poem::http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use poem::{Endpoint, FromRequest, Middleware, Request, RequestBody};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// The roles the services know. Tokens may carry others; they are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Places and manages their own orders.
    Customer,
    /// Sees every order; operates the system.
    Admin,
}

impl Role {
    /// `customer` or `admin`, as in the token.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    /// The role named `s`, if known.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: whose orders these are.
    pub customer_id: CustomerId,
    /// Known roles from the token's `roles` claim.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Whether the caller has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }

    /// `Ok` if the caller has `role`, else the 403 `forbidden` problem.
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.has_role(role) { Ok(()) } else { Err(Problem::forbidden(format!("This requires the `{role}` role."))) }
    }

    /// Whether the caller may see a resource owned by `owner`: the owner
    /// or an admin. Callers answer 404 (not 403) when this is false, so
    /// order ids of other customers cannot be probed.
    pub fn can_access(&self, owner: &CustomerId) -> bool {
        &self.customer_id == owner || self.is_admin()
    }
}

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksSource {
    /// A JWKS JSON file (the local stack's `$(stack home)/etc/jwt/jwks.json`).
    File(PathBuf),
    /// An identity provider's JWKS endpoint (`https://idp/.well-known/jwks.json`).
    Url(String),
}

fn default_leeway() -> u64 {
    30
}
fn default_refresh() -> u64 {
    300
}
fn default_min_refetch() -> u64 {
    10
}

/// Auth settings, for a service's `Settings`:
///
/// ```yaml
/// auth:
///   issuer: glasshouse-local
///   audience: glasshouse
///   jwks:
///     file: /path/to/jwks.json     # or   url: https://idp/.well-known/jwks.json
///   leeway_seconds: 30             # optional
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (one of the token's audiences).
    pub audience: String,
    /// Where the keys are.
    pub jwks: JwksSource,
    /// Clock skew tolerated on `exp` and `nbf`, seconds (default 30).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Keys older than this are re-read on the next request, seconds (default 300).
    #[serde(default = "default_refresh")]
    pub jwks_refresh_seconds: u64,
    /// Minimum pause between two reads of the keys, seconds (default 10).
    #[serde(default = "default_min_refetch")]
    pub jwks_min_refetch_seconds: u64,
}

/// Why a request is not authenticated. Every variant is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("The request has no bearer token.")]
    Missing,
    /// The header is not `Bearer <token>` or the token is not a JWT.
    #[error("The bearer token is malformed: {0}.")]
    Malformed(String),
    /// `alg` is not RS256 or ES256.
    #[error("The token's algorithm {0} is not accepted (RS256 or ES256 only).")]
    UnsupportedAlgorithm(String),
    /// No key with the token's `kid` (after re-reading the JWKS).
    #[error("The token was signed with an unknown key ({0}).")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("The token's signature is invalid.")]
    BadSignature,
    /// `exp` (plus leeway) is past.
    #[error("The token has expired.")]
    Expired,
    /// `nbf` (minus leeway) is in the future.
    #[error("The token is not valid yet.")]
    NotYetValid,
    /// `aud` does not include this service's audience.
    #[error("The token is not meant for this service (wrong audience).")]
    WrongAudience,
    /// `iss` is not the trusted issuer.
    #[error("The token was issued by an untrusted issuer.")]
    WrongIssuer,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is absent or invalid.
    #[error("The token's claims are invalid: {0}.")]
    InvalidClaims(String),
}

impl From<AuthError> for Problem {
    fn from(err: AuthError) -> Self {
        // RFC 6750 section 3: no error code when no token was sent.
        let challenge = match err {
            AuthError::Missing => HeaderValue::from_static("Bearer realm=\"glasshouse\""),
            _ => HeaderValue::from_static("Bearer realm=\"glasshouse\", error=\"invalid_token\""),
        };
        Problem::unauthenticated(err.to_string()).with_header(WWW_AUTHENTICATE, challenge)
    }
}

impl From<AuthError> for poem::Error {
    fn from(err: AuthError) -> Self {
        Problem::from(err).into()
    }
}

/// One verification key, with the algorithm it is for.
struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// RS256 or ES256 for a JWK, from its `alg` or else its key type; `None` for
/// anything else (encryption keys, other curves, HMAC), which is skipped.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    match jwk.common.key_algorithm {
        Some(KeyAlgorithm::RS256) => return Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) => return Some(Algorithm::ES256),
        Some(_) => return None,
        None => {}
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
        _ => None,
    }
}

fn key_set(jwks: &JwkSet) -> KeySet {
    let mut keys = Vec::new();
    for jwk in &jwks.keys {
        let kid = jwk.common.key_id.clone();
        match (jwk_algorithm(jwk), DecodingKey::from_jwk(jwk)) {
            (Some(alg), Ok(key)) => keys.push(VerifyingKey { kid, alg, key }),
            (None, _) => {
                tracing::debug!(kid = ?kid, "JWKS key skipped: not an RS256/ES256 signing key")
            }
            (_, Err(e)) => tracing::warn!(kid = ?kid, error = %e, "JWKS key skipped: unusable"),
        }
    }
    KeySet { keys }
}

/// What `authenticate` needs besides the keys.
struct AuthConfig {
    issuer: String,
    audience: String,
    leeway: u64,
    source: Option<JwksSource>,
    refresh_every: Duration,
    min_refetch: Duration,
}

struct AuthInner {
    config: AuthConfig,
    http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last read (successfully or not).
    last_fetch: Mutex<Instant>,
    /// Single flight: one task re-reads the JWKS while the others wait for
    /// its result instead of fetching too.
    fetch_lock: tokio::sync::Mutex<()>,
}

/// Validates bearer tokens. Cheap to clone (an `Arc`); build one per
/// service at start-up and add it to the routes with `.data(authenticator)`.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<AuthInner>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .field("source", &self.inner.config.source)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds from settings and reads the keys once. Fails (so the service
    /// does not start) if the JWKS cannot be read or holds no usable key.
    pub async fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| anyhow::anyhow!("build JWKS HTTP client: {e}"))?;
        let jwks = fetch(&http, &settings.jwks).await?;
        let keys = key_set(&jwks);
        if keys.keys.is_empty() {
            anyhow::bail!("JWKS from {:?} has no RS256/ES256 signing key", settings.jwks);
        }
        Ok(Self::build(
            AuthConfig {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                leeway: settings.leeway_seconds,
                source: Some(settings.jwks.clone()),
                refresh_every: Duration::from_secs(settings.jwks_refresh_seconds),
                min_refetch: Duration::from_secs(settings.jwks_min_refetch_seconds),
            },
            http,
            keys,
        ))
    }

    /// Builds from keys in hand (tests, or keys baked into configuration);
    /// they are never re-read. Leeway 30 s.
    pub fn from_jwks(jwks: &JwkSet, issuer: impl Into<String>, audience: impl Into<String>) -> anyhow::Result<Self> {
        let keys = key_set(jwks);
        if keys.keys.is_empty() {
            anyhow::bail!("JWKS has no RS256/ES256 signing key");
        }
        Ok(Self::build(
            AuthConfig {
                issuer: issuer.into(),
                audience: audience.into(),
                leeway: default_leeway(),
                source: None,
                refresh_every: Duration::MAX,
                min_refetch: Duration::MAX,
            },
            reqwest::Client::new(),
            keys,
        ))
    }

    fn build(config: AuthConfig, http: reqwest::Client, keys: KeySet) -> Self {
        Self {
            inner: Arc::new(AuthInner {
                config,
                http,
                keys: RwLock::new(Arc::new(keys)),
                last_fetch: Mutex::new(Instant::now()),
                fetch_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The trusted issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// This service's audience.
    pub fn audience(&self) -> &str {
        &self.inner.config.audience
    }

    /// Authenticates a request by its `Authorization` header.
    pub async fn authenticate_headers(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let value = headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::Malformed("the Authorization header is not ASCII".into()))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(AuthError::Malformed("the Authorization header is not `Bearer <token>`".into()));
            }
        };
        self.authenticate(token).await
    }

    /// Validates one token and returns who it names.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Malformed(format!("not a JWT ({})", e.to_string().trim_end_matches('.'))))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        self.refresh_if_stale();
        let mut keys = self.current_keys();
        if !has_candidate(&keys, header.kid.as_deref(), header.alg) && self.refetch(false).await {
            keys = self.current_keys();
        }
        let candidates: Vec<&VerifyingKey> =
            keys.keys.iter().filter(|k| k.alg == header.alg).filter(|k| header.kid.is_none() || k.kid == header.kid).collect();
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey(match &header.kid {
                Some(kid) => format!("kid {kid:?}"),
                None => format!("no kid, and no {:?} key", header.alg),
            }));
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError::BadSignature;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return data.claims.into_principal(),
                // Without a kid several keys may be tried; only a signature
                // mismatch means "try the next one".
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => last = AuthError::BadSignature,
                Err(e) => return Err(map_error(&e)),
            }
        }
        Err(last)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.inner.config.issuer]);
        v.set_audience(&[&self.inner.config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = self.inner.config.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.inner.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn since_last_fetch(&self) -> Duration {
        self.inner.last_fetch.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }

    /// Periodic refresh so removed keys stop being trusted; failures keep
    /// the old keys (an IdP blip must not log everybody out). Runs in the
    /// background: the request that notices the keys are stale does not wait
    /// for the identity provider.
    fn refresh_if_stale(&self) {
        if self.inner.config.source.is_none() || self.since_last_fetch() < self.inner.config.refresh_every {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            handle.spawn(async move {
                this.refetch(true).await;
            });
        }
    }

    /// Re-reads the JWKS if the last read is at least `min_refetch` ago.
    /// Returns whether new keys were installed.
    async fn refetch(&self, periodic: bool) -> bool {
        let Some(source) = &self.inner.config.source else {
            return false;
        };
        // A periodic refresh never queues behind another fetch; a refetch
        // for an unknown key waits for the one in flight and reuses it.
        let _guard = if periodic {
            match self.inner.fetch_lock.try_lock() {
                Ok(guard) => guard,
                Err(_) => return false,
            }
        } else {
            self.inner.fetch_lock.lock().await
        };
        // Re-check under the lock: a task that waited here while another
        // fetched must not fetch again.
        let pause = if periodic { self.inner.config.refresh_every } else { self.inner.config.min_refetch };
        if self.since_last_fetch() < pause {
            return false;
        }
        *self.inner.last_fetch.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        match fetch(&self.inner.http, source).await {
            Ok(jwks) => {
                let keys = key_set(&jwks);
                if keys.keys.is_empty() {
                    tracing::warn!(source = ?source, "re-read JWKS has no usable key; keeping the old keys");
                    return false;
                }
                tracing::info!(source = ?source, keys = keys.keys.len(), "JWKS re-read");
                *self.inner.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                true
            }
            Err(e) => {
                tracing::warn!(source = ?source, error = %format_args!("{e:#}"), "JWKS re-read failed; keeping the old keys");
                false
            }
        }
    }
}

fn has_candidate(keys: &KeySet, kid: Option<&str>, alg: Algorithm) -> bool {
    keys.keys.iter().any(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
}

async fn fetch(http: &reqwest::Client, source: &JwksSource) -> anyhow::Result<JwkSet> {
    match source {
        JwksSource::File(path) => {
            let bytes = tokio::fs::read(path).await.map_err(|e| anyhow::anyhow!("read JWKS file {}: {e}", path.display()))?;
            serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("JWKS file {} is not a JWK set: {e}", path.display()))
        }
        JwksSource::Url(url) => {
            let resp = http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| anyhow::anyhow!("fetch JWKS from {url}: {e}"))?;
            resp.json::<JwkSet>().await.map_err(|e| anyhow::anyhow!("JWKS from {url} is not a JWK set: {e}"))
        }
    }
}

fn map_error(e: &jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) => AuthError::InvalidClaims(format!("`{c}` is missing")),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthError::UnsupportedAlgorithm("mismatching the key".into()),
        ErrorKind::Json(err) => AuthError::InvalidClaims(err.to_string()),
        _ => AuthError::Malformed(e.to_string().trim_end_matches('.').to_owned()),
    }
}

/// The claims this crate reads; `exp`, `iss`, `aud` are checked by
/// `jsonwebtoken` itself.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: RolesClaim,
}

/// `roles` as an array (the norm) or a single string (some IdPs).
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum RolesClaim {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Claims {
    fn into_principal(self) -> Result<Principal, AuthError> {
        let customer_id = CustomerId::parse(&self.sub).map_err(|e| AuthError::InvalidClaims(format!("`sub`: {e}")))?;
        let names = match self.roles {
            RolesClaim::None => Vec::new(),
            RolesClaim::One(r) => vec![r],
            RolesClaim::Many(rs) => rs,
        };
        let roles = names.iter().filter_map(|r| Role::parse(r)).collect();
        Ok(Principal { customer_id, roles })
    }
}

fn missing_authenticator() -> poem::Error {
    Problem::internal(anyhow::anyhow!("no Authenticator in the request data: add `.data(authenticator)` to the route")).into()
}

/// Handlers take `principal: Principal` as an argument; the request needs an
/// [`Authenticator`] in its data (`route.data(authenticator)`). Reuses the
/// principal a [`RequireRole`] middleware already put in the extensions.
impl<'a> FromRequest<'a> for Principal {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        if let Some(p) = req.extensions().get::<Principal>() {
            return Ok(p.clone());
        }
        let auth = req.data::<Authenticator>().ok_or_else(missing_authenticator)?;
        Ok(auth.authenticate_headers(req.headers()).await?)
    }
}

/// Middleware: the wrapped endpoint is reached only with a valid token
/// carrying `.0`; otherwise 401 or 403 problem+json. The [`Principal`] is put
/// in the request extensions for the handler.
#[derive(Debug, Clone, Copy)]
pub struct RequireRole(pub Role);

impl<E: Endpoint> Middleware<E> for RequireRole {
    type Output = RequireRoleEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequireRoleEndpoint { inner: ep, role: self.0 }
    }
}

/// The endpoint produced by [`RequireRole`].
#[derive(Debug)]
pub struct RequireRoleEndpoint<E> {
    inner: E,
    role: Role,
}

impl<E: Endpoint> Endpoint for RequireRoleEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let principal = Principal::from_request_without_body(&req).await?;
        principal.require(self.role)?;
        req.extensions_mut().insert(principal);
        self.inner.call(req).await
    }
}

/// The poem-openapi security scheme: an operation that takes
/// `auth: BearerAuth` is documented as requiring an HTTP bearer JWT and gets
/// the validated [`Principal`] as `auth.0`. Role checks go in the handler:
/// `auth.0.require(Role::Admin)?`.
///
/// A request without the header is refused by poem-openapi before the
/// checker runs, as a plain 401; the [`crate::problem::ProblemJson`]
/// middleware turns it into the `unauthenticated` problem.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "bearer_checker")]
pub struct BearerAuth(pub Principal);

async fn bearer_checker(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let auth = req.data::<Authenticator>().ok_or_else(missing_authenticator)?;
    Ok(auth.authenticate(&bearer.token).await?)
}

/// Local keys and tokens: what `glasshouse-dev-token` does, as a library so
/// service tests can mint their own tokens without files.
///
/// Keys are generated in-process with the pure-Rust `p256` crate (ES256, P-256)
/// and the OS random source; no `openssl` binary is involved.
pub mod dev {
    use std::io::Write as _;
    use std::path::{Path, PathBuf};

    use anyhow::{Context as _, bail};
    use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    use secrecy::{ExposeSecret as _, SecretString};
    use serde::Serialize;

    use super::Role;

    /// Issuer of local tokens.
    pub const DEV_ISSUER: &str = "glasshouse-local";
    /// Audience of local tokens (every service accepts it locally).
    pub const DEV_AUDIENCE: &str = "glasshouse";
    /// File name of the private key in the key directory (PKCS#8 PEM, mode 0600).
    pub const PRIVATE_KEY_FILE: &str = "jwt-private.pem";
    /// File name of the public keys in the key directory (JWKS).
    pub const JWKS_FILE: &str = "jwks.json";

    /// A private signing key with its public JWK.
    pub struct SigningKey {
        alg: Algorithm,
        kid: String,
        encoding: EncodingKey,
        jwk: Jwk,
        pem: SecretString,
    }

    impl std::fmt::Debug for SigningKey {
        // The key material never prints.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
        }
    }

    impl SigningKey {
        /// A fresh ES256 (P-256) key.
        pub fn generate_es256() -> anyhow::Result<Self> {
            let secret = p256::SecretKey::random(&mut rand_core::OsRng);
            let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("encode P-256 key as PKCS#8: {e}"))?;
            Self::from_pem(pem.as_str())
        }

        /// Loads a PKCS#8 PEM private key: P-256 (ES256) or RSA (RS256).
        pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
            let (alg, encoding) = match EncodingKey::from_ec_pem(pem.as_bytes()) {
                Ok(k) => (Algorithm::ES256, k),
                Err(ec_err) => match EncodingKey::from_rsa_pem(pem.as_bytes()) {
                    Ok(k) => (Algorithm::RS256, k),
                    Err(rsa_err) => {
                        bail!("not a P-256 or RSA private key in PEM ({ec_err}; {rsa_err})")
                    }
                },
            };
            let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| anyhow::anyhow!("derive the public key: {e}"))?;
            let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| anyhow::anyhow!("key thumbprint: {e}"))?;
            jwk.common.key_id = Some(kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            Ok(Self { alg, kid, encoding, jwk, pem: SecretString::from(pem.to_owned()) })
        }

        /// Overrides the key id written into tokens and the JWK (tests: a
        /// forged token that claims another key's id).
        pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
            self.kid = kid.into();
            self.jwk.common.key_id = Some(self.kid.clone());
            self
        }

        /// The key id (RFC 7638 SHA-256 thumbprint unless overridden).
        pub fn kid(&self) -> &str {
            &self.kid
        }

        /// ES256 or RS256.
        pub fn algorithm(&self) -> Algorithm {
            self.alg
        }

        /// The public key as a JWK.
        pub fn jwk(&self) -> &Jwk {
            &self.jwk
        }

        /// A JWK set holding just this key.
        pub fn jwks(&self) -> JwkSet {
            JwkSet { keys: vec![self.jwk.clone()] }
        }

        /// The private key, PKCS#8 PEM.
        pub fn private_pem(&self) -> &SecretString {
            &self.pem
        }

        /// Signs `claims` into a compact JWT with this key's `kid`.
        pub fn mint<C: Serialize>(&self, claims: &C) -> anyhow::Result<String> {
            let mut header = Header::new(self.alg);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &self.encoding).context("sign token")
        }
    }

    /// The claims of a dev token. Fields are public so tests can build wrong
    /// ones (expired, other audience) on purpose.
    #[derive(Debug, Clone, Serialize)]
    pub struct DevClaims {
        /// Customer id.
        pub sub: String,
        /// Roles.
        pub roles: Vec<Role>,
        /// Issuer.
        pub iss: String,
        /// Audience.
        pub aud: String,
        /// Issued at, seconds since the epoch.
        pub iat: i64,
        /// Expiry, seconds since the epoch.
        pub exp: i64,
    }

    impl DevClaims {
        /// Claims for `sub` with `roles`, issued now by `glasshouse-local`
        /// for `glasshouse`, valid for `ttl`.
        pub fn new(sub: impl Into<String>, roles: Vec<Role>, ttl: std::time::Duration) -> Self {
            let now = now_secs();
            Self {
                sub: sub.into(),
                roles,
                iss: DEV_ISSUER.into(),
                aud: DEV_AUDIENCE.into(),
                iat: now,
                exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            }
        }
    }

    fn now_secs() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// What [`init_dir`] did.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum InitOutcome {
        /// A new key pair was written.
        Created {
            /// Its key id.
            kid: String,
        },
        /// Both files were there and agree; nothing was written.
        Unchanged {
            /// The key id.
            kid: String,
        },
        /// The private key was there but `jwks.json` was missing or did not
        /// hold its public key; `jwks.json` was rewritten from it.
        JwksRewritten {
            /// The key id.
            kid: String,
        },
    }

    /// Creates `dir/jwt-private.pem` and `dir/jwks.json` if missing.
    ///
    /// Idempotent: an existing private key is kept (so tokens minted earlier
    /// stay valid) and `jwks.json` is only rewritten when it does not match
    /// it. The private key is created atomically (written aside, then
    /// hard-linked into place, which fails if another `init` won the race)
    /// with mode 0600.
    pub fn init_dir(dir: &Path) -> anyhow::Result<InitOutcome> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let pem_path = dir.join(PRIVATE_KEY_FILE);
        let mut created = false;
        if !pem_path.exists() {
            let key = SigningKey::generate_es256()?;
            created = write_new_private_key(&pem_path, key.private_pem().expose_secret())?;
        }
        let key = load_key(dir)?;
        let jwks_path = dir.join(JWKS_FILE);
        let current = std::fs::read(&jwks_path).ok().and_then(|b| serde_json::from_slice::<JwkSet>(&b).ok());
        let matches = current.as_ref().is_some_and(|set| set.find(key.kid()).is_some_and(|jwk| jwk == key.jwk()));
        let kid = key.kid().to_owned();
        if matches && !created {
            return Ok(InitOutcome::Unchanged { kid });
        }
        if !matches {
            let text = serde_json::to_string_pretty(&key.jwks()).context("serialize JWKS")?;
            replace_file(&jwks_path, format!("{text}\n").as_bytes(), 0o644)?;
        }
        Ok(if created { InitOutcome::Created { kid } } else { InitOutcome::JwksRewritten { kid } })
    }

    /// Loads the private key of a directory made by [`init_dir`].
    pub fn load_key(dir: &Path) -> anyhow::Result<SigningKey> {
        let path = dir.join(PRIVATE_KEY_FILE);
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("read {} (run `glasshouse-dev-token init --dir {}` first)", path.display(), dir.display()))?;
        SigningKey::from_pem(&pem).with_context(|| format!("load {}", path.display()))
    }

    /// Mints a token with the key in `dir` (the `mint` subcommand).
    pub fn mint_from_dir(dir: &Path, sub: &str, roles: Vec<Role>, ttl: std::time::Duration) -> anyhow::Result<String> {
        glasshouse_contracts::CustomerId::parse(sub).context("--sub")?;
        load_key(dir)?.mint(&DevClaims::new(sub, roles, ttl))
    }

    fn temp_path(path: &Path) -> PathBuf {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), uuid::Uuid::new_v4().simple()))
    }

    fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let tmp = temp_path(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("write {}", tmp.display()))?;
        Ok(tmp)
    }

    /// Returns `false` if another process created the file first.
    fn write_new_private_key(path: &Path, pem: &str) -> anyhow::Result<bool> {
        let tmp = write_temp(path, pem.as_bytes(), 0o600)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(anyhow::anyhow!("create {}: {e}", path.display())),
        }
    }

    fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
        let tmp = write_temp(path, bytes, mode)?;
        std::fs::rename(&tmp, path).with_context(|| format!("replace {}", path.display()))
    }
}
