//! Layered settings: base.yaml < <env>.yaml < APP_* variables, errors that name
//! the key, secrets that never print, and the exit code 64.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};
use std::process::Command;

use glasshouse_platform::config::{ConfigError, EX_USAGE, SettingsLoader, error_message};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    server: Server,
    database: Database,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    host: String,
    port: u16,
    #[serde(default)]
    debug: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Database {
    url: String,
    password: SecretString,
    max_connections: u32,
    #[serde(default)]
    password_rotation_days: Option<u32>,
}

const BASE: &str = "
server:
  host: 0.0.0.0
  port: 8000
database:
  url: postgres://db.internal/orders
  password: base-password-S3cr3t
  max_connections: 5
";

/// A fresh config directory with base.yaml, local.yaml and production.yaml.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("glasshouse-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("base.yaml"), BASE).unwrap();
        std::fs::write(d.join("local.yaml"), "server:\n  port: 8001\n").unwrap();
        std::fs::write(d.join("production.yaml"), "database:\n  max_connections: 50\n").unwrap();
        Self(d)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }

    fn load(&self, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        SettingsLoader::with_vars(&self.0, vars).load()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn environment_file_overrides_base_key_by_key() {
    let d = Dir::new();
    let s = d.load(&[]).unwrap();
    assert_eq!(s.server.port, 8001, "local.yaml wins over base.yaml");
    assert_eq!(s.server.host, "0.0.0.0", "keys local.yaml does not set come from base.yaml");
    assert_eq!(s.database.max_connections, 5);
    assert_eq!(s.database.url, "postgres://db.internal/orders");

    let s = d.load(&[("APP_ENVIRONMENT", "production")]).unwrap();
    assert_eq!(s.server.port, 8000, "production.yaml does not set the port");
    assert_eq!(s.database.max_connections, 50);
    assert_eq!(s.database.password.expose_secret(), "base-password-S3cr3t");
}

#[test]
fn environment_variables_override_both_files() {
    let d = Dir::new();
    let s = d
        .load(&[
            ("APP_SERVER__PORT", "9000"),
            ("APP_SERVER__DEBUG", "true"),
            ("APP_DATABASE__PASSWORD", "007"),
            ("APP_DATABASE__PASSWORD_ROTATION_DAYS", "30"),
            ("APP_ENVIRONMENT", "production"),
            ("OTHER_SERVER__PORT", "1"), // not our prefix: ignored
        ])
        .unwrap();
    assert_eq!(s.server.port, 9000);
    assert!(s.server.debug);
    assert_eq!(s.database.max_connections, 50);
    assert_eq!(s.database.password_rotation_days, Some(30));
    assert_eq!(s.database.password.expose_secret(), "007", "values stay text: no number parsing eats the zeros");
}

fn invalid_key(err: &ConfigError) -> &str {
    err.key().unwrap_or_else(|| panic!("error names no key: {err}"))
}

#[test]
fn a_bad_value_names_the_key_and_its_variable() {
    let d = Dir::new();
    let err = d.load(&[("APP_SERVER__PORT", "eighty")]).unwrap_err();
    assert_eq!(invalid_key(&err), "server.port");
    let msg = error_message(&err, &d.0);
    assert!(msg.contains("`server.port`"), "{msg}");
    assert!(msg.contains("APP_SERVER__PORT"), "{msg}");
    assert!(msg.contains("eighty"), "a non-secret value is quoted: {msg}");

    d.write("local.yaml", "server:\n  port: 70000\n");
    let err = d.load(&[]).unwrap_err();
    // Out of range for u16 in a file: the key is named, whatever the layer.
    assert_eq!(invalid_key(&err), "server.port");
    assert!(err.to_string().contains("70000"), "{err}");
}

#[test]
fn missing_and_unknown_keys_are_named() {
    let d = Dir::new();
    d.write("base.yaml", &BASE.replace("  url: postgres://db.internal/orders\n", ""));
    let err = d.load(&[]).unwrap_err();
    assert!(invalid_key(&err).ends_with("url"), "{err}");
    assert!(err.to_string().contains("required but not set"), "{err}");

    let d = Dir::new();
    let err = d.load(&[("APP_SERVER__PROT", "1")]).unwrap_err();
    assert_eq!(invalid_key(&err), "server.prot", "{err}");
    assert!(err.to_string().contains("APP_SERVER__PROT"), "{err}");
}

#[test]
fn missing_files_and_syntax_errors_are_named() {
    let d = Dir::new();
    let err = d.load(&[("APP_ENVIRONMENT", "staging")]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("staging.yaml") && msg.contains("APP_ENVIRONMENT=staging"), "{msg}");

    let err = d.load(&[("APP_ENVIRONMENT", "../../etc/x")]).unwrap_err();
    assert!(matches!(err, ConfigError::BadEnvironment { .. }), "{err}");

    d.write("local.yaml", "server: [unclosed\n");
    let err = d.load(&[]).unwrap_err();
    assert!(matches!(&err, ConfigError::Syntax { path, .. } if path.contains("local.yaml")), "{err}");

    std::fs::remove_file(d.0.join("base.yaml")).unwrap();
    let err = d.load(&[]).unwrap_err();
    assert!(err.to_string().contains("base.yaml"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let d = Dir::new();
    let s = d.load(&[]).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("base-password-S3cr3t"), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
    assert!(debug.contains("postgres://db.internal/orders"), "other fields still print: {debug}");

    // A bad value under a secret-looking key is not quoted back.
    let err = d.load(&[("APP_DATABASE__PASSWORD_ROTATION_DAYS", "hunter2")]).unwrap_err();
    let msg = error_message(&err, &d.0);
    assert!(msg.contains("database.password_rotation_days"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

const CHILD_ENV: &str = "GLASSHOUSE_CONFIG_EXIT_CHILD";

#[test]
#[ignore = "helper: run in a child process by load_or_exit_exits_64_naming_the_key"]
fn child_load_or_exit() {
    assert!(std::env::var_os(CHILD_ENV).is_some(), "only meaningful as a child process");
    let _: Settings = glasshouse_platform::config::load_or_exit("/nonexistent-default");
    // Reaching this line means load_or_exit returned; the parent sees exit 0.
}

#[test]
fn load_or_exit_exits_64_naming_the_key() {
    let d = Dir::new();
    let run = |port: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["child_load_or_exit", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env("APP_CONFIG_DIR", &d.0)
            .env("APP_SERVER__PORT", port)
            .env_remove("APP_ENVIRONMENT")
            .output()
            .unwrap()
    };
    let bad = run("not-a-port");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(EX_USAGE), "{stderr}");
    assert!(stderr.contains("invalid configuration: setting `server.port`"), "{stderr}");
    assert!(stderr.contains("APP_SERVER__PORT"), "{stderr}");
    assert!(stderr.contains(&Path::new(&d.0).join("base.yaml").display().to_string()), "{stderr}");

    let good = run("8123");
    assert_eq!(good.status.code(), Some(0), "{}", String::from_utf8_lossy(&good.stderr));
}
