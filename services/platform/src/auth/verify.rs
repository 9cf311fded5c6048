//! Token verification: the settings, the JWKS key cache with rotation and
//! single-flight re-reads, and the checks of signature, issuer, audience,
//! times and claims that turn a bearer token into a [`Principal`].

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use glasshouse_contracts::CustomerId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::HeaderMap;
use poem::http::header::AUTHORIZATION;
use serde::Deserialize;

use super::{Principal, Role};

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
                tracing::debug!(kid = ?kid, "JWKS key skipped: not an RS256/ES256 signing key");
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
