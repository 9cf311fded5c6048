//! Local keys and tokens: what `glasshouse-dev-token` does, as a library so
//! service tests can mint their own tokens without files.
//!
//! Keys are generated in-process with the pure-Rust `p256` crate (ES256, P-256)
//! and the OS random source; no `openssl` binary is involved.

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
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
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
