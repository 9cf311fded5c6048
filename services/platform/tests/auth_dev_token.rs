//! The `glasshouse-dev-token` binary, run as a process: init is idempotent and
//! writes what the services read; minted tokens validate; bad usage exits 64
//! naming the bad argument.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use glasshouse_platform::auth::{AuthSettings, Authenticator, JwksSource, Role};
use jsonwebtoken::jwk::JwkSet;

const BIN: &str = env!("CARGO_BIN_EXE_glasshouse-dev-token");

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("glasshouse-dev-token-{}", uuid::Uuid::new_v4()));
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run glasshouse-dev-token")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn dir_str(d: &Path) -> &str {
    d.to_str().unwrap()
}

async fn authenticator(dir: &Path) -> Authenticator {
    Authenticator::from_settings(&AuthSettings {
        issuer: "glasshouse-local".into(),
        audience: "glasshouse".into(),
        jwks: JwksSource::File(dir.join("jwks.json")),
        leeway_seconds: 30,
        jwks_refresh_seconds: 300,
        jwks_min_refetch_seconds: 10,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn init_creates_keys_once_and_minted_tokens_validate() {
    let tmp = TempDir::new();
    // A nested, not yet existing directory, like $(stack home)/etc/jwt.
    let dir = tmp.0.join("etc/jwt");
    let out = run(&["init", "--dir", dir_str(&dir)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("created:"), "{}", stdout(&out));

    let pem = std::fs::read(dir.join("jwt-private.pem")).unwrap();
    let jwks_bytes = std::fs::read(dir.join("jwks.json")).unwrap();
    let mode = std::fs::metadata(dir.join("jwt-private.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "private key readable by its owner only");
    let jwks: JwkSet = serde_json::from_slice(&jwks_bytes).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let kid = jwks.keys[0].common.key_id.clone().unwrap();
    assert!(stdout(&out).contains(&kid));
    assert!(String::from_utf8_lossy(&pem).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!String::from_utf8_lossy(&jwks_bytes).contains("\"d\""), "no private part in the JWKS");

    // Second run: nothing changes.
    let again = run(&["init", "--dir", dir_str(&dir)]);
    assert!(again.status.success());
    assert!(stdout(&again).starts_with("unchanged:"), "{}", stdout(&again));
    assert_eq!(std::fs::read(dir.join("jwt-private.pem")).unwrap(), pem);
    assert_eq!(std::fs::read(dir.join("jwks.json")).unwrap(), jwks_bytes);

    // Lost JWKS: rebuilt from the kept private key, same kid.
    std::fs::remove_file(dir.join("jwks.json")).unwrap();
    let rebuilt = run(&["init", "--dir", dir_str(&dir)]);
    assert!(stdout(&rebuilt).starts_with("jwks rewritten:"), "{}", stdout(&rebuilt));
    assert_eq!(std::fs::read(dir.join("jwks.json")).unwrap(), jwks_bytes);

    // Minting.
    let out = run(&["mint", "--dir", dir_str(&dir), "--sub", "cust-42", "--role", "customer", "--ttl", "120"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out);
    assert_eq!(token.matches('.').count(), 2, "only the token on stdout: {token:?}");
    let auth = authenticator(&dir).await;
    let p = auth.authenticate(&token).await.unwrap();
    assert_eq!(p.customer_id.as_str(), "cust-42");
    assert_eq!(p.roles.iter().copied().collect::<Vec<_>>(), vec![Role::Customer]);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
    let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 120);

    let out = run(&["mint", "--dir", dir_str(&dir), "--sub", "ops", "--role", "admin", "--role", "customer"]);
    let p = auth.authenticate(&stdout(&out)).await.unwrap();
    assert!(p.is_admin() && p.has_role(Role::Customer));
    let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(stdout(&out)).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600, "default TTL");
}

#[test]
fn bad_usage_exits_64_naming_the_bad_argument() {
    let tmp = TempDir::new();
    let d = dir_str(&tmp.0);
    for (args, says) in [
        (vec![], "missing subcommand"),
        (vec!["frobnicate", "--dir", d], "\"frobnicate\""),
        (vec!["init"], "--dir DIR is required"),
        (vec!["init", "--dir"], "--dir needs a value"),
        (vec!["mint", "--dir", d, "--role", "customer"], "--sub CUSTOMER is required"),
        (vec!["mint", "--dir", d, "--sub", "c-1"], "--role customer|admin is required"),
        (vec!["mint", "--dir", d, "--sub", "c-1", "--role", "superuser"], "\"superuser\""),
        (vec!["mint", "--dir", d, "--sub", "c-1", "--role", "admin", "--ttl", "soon"], "\"soon\""),
        (vec!["mint", "--dir", d, "--sub", "c-1", "--role", "admin", "--ttl", "0"], "--ttl \"0\""),
        (vec!["mint", "--dir", d, "--sub", "has space", "--role", "admin"], "--sub"),
        (vec!["init", "--dir", d, "--sub", "x"], "\"--sub\""),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: stderr should mention {says:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    assert!(!tmp.0.exists(), "bad usage changes nothing on disk");
}

#[test]
fn minting_without_init_says_what_to_run() {
    let tmp = TempDir::new();
    let out = run(&["mint", "--dir", dir_str(&tmp.0), "--sub", "c-1", "--role", "customer"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("glasshouse-dev-token init --dir"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}
