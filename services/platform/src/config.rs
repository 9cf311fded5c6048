//! Typed, layered settings.
//!
//! Each service reads its own `Settings` type (any `serde::de::DeserializeOwned`)
//! from three layers, later ones overriding earlier ones key by key:
//!
//! 1. `<dir>/base.yaml`: defaults shared by every environment (required);
//! 2. `<dir>/<env>.yaml`, where `<env>` is `APP_ENVIRONMENT` (default `local`):
//!    required too, so a typo such as `APP_ENVIRONMENT=prodution` fails loudly
//!    instead of silently running with base settings;
//! 3. environment variables `APP_<SECTION>__<KEY>`: `APP_DATABASE__URL` sets
//!    `database.url` (one `_` after the prefix, `__` between levels, names
//!    lower-cased). Values stay strings until the target type asks, so
//!    `APP_DATABASE__PASSWORD=007` stays `"007"` and `APP_SERVER__PORT=8080`
//!    still becomes a number.
//!
//! Secrets are `secrecy::SecretString` fields in the service's `Settings`: their
//! `Debug` prints `[REDACTED]`, so logging the settings never leaks them, and
//! the error messages here never quote a value whose key looks secret.
//!
//! Invalid configuration is a usage error: [`load_or_exit`] prints one message
//! naming the bad key (and the environment variable that sets it) and exits
//! with 64 (`EX_USAGE`). [`error_message`] builds that message without
//! exiting, for tests.
//!
//! Tip: put `#[serde(deny_unknown_fields)]` on the settings structs, so a
//! misspelt key (`APP_DATABSE__URL`) is an error rather than ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::de::DeserializeOwned;

/// Prefix of overriding environment variables.
pub const ENV_PREFIX: &str = "APP";
/// Chooses the environment file (`local` -> `local.yaml`).
pub const ENVIRONMENT_VAR: &str = "APP_ENVIRONMENT";
/// Overrides the directory the YAML files are read from.
pub const CONFIG_DIR_VAR: &str = "APP_CONFIG_DIR";
/// Environment used when `APP_ENVIRONMENT` is not set.
pub const DEFAULT_ENVIRONMENT: &str = "local";
/// Exit code for invalid configuration (`EX_USAGE` of sysexits.h).
pub const EX_USAGE: i32 = 64;

/// Why settings could not be loaded. Every variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required YAML file is missing.
    #[error("configuration file {path} not found{hint}")]
    MissingFile {
        /// The file looked for.
        path: PathBuf,
        /// Extra help (e.g. which variable chose the file).
        hint: String,
    },
    /// `APP_ENVIRONMENT` is not a plain name (it becomes a file name).
    #[error("{ENVIRONMENT_VAR}={value:?} is not a valid environment name (use letters, digits, '-' or '_')")]
    BadEnvironment {
        /// The value found.
        value: String,
    },
    /// A YAML file does not parse.
    #[error("cannot parse {path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A setting is missing or has a wrong value.
    #[error("{}", describe_invalid(key.as_deref(), env_var.as_deref(), origin.as_deref(), message))]
    Invalid {
        /// Dotted key, e.g. `server.port`, when known.
        key: Option<String>,
        /// The environment variable that sets this key, e.g. `APP_SERVER__PORT`.
        env_var: Option<String>,
        /// Where the bad value came from (file path or "environment"), when known.
        origin: Option<String>,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key at fault, if the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => key.as_deref(),
            ConfigError::BadEnvironment { .. } => Some("environment"),
            _ => None,
        }
    }
}

fn describe_invalid(key: Option<&str>, env_var: Option<&str>, origin: Option<&str>, message: &str) -> String {
    let mut out = match key {
        Some(k) => format!("setting `{k}`: {message}"),
        None => format!("settings: {message}"),
    };
    if let Some(origin) = origin {
        out.push_str(&format!(" (value from {origin})"));
    }
    if let Some(var) = env_var {
        out.push_str(&format!("; set it in the YAML files or with {var}"));
    }
    out
}

/// The environment variable that overrides dotted `key`:
/// `database.url` -> `APP_DATABASE__URL`.
pub fn env_var_for(key: &str) -> String {
    format!("{ENV_PREFIX}_{}", key.replace('.', "__").to_uppercase())
}

/// Words that mark a key as secret: its value is never quoted in messages.
const SECRET_WORDS: [&str; 6] = ["password", "secret", "token", "private", "credential", "key"];

fn looks_secret(key: &str) -> bool {
    let key = key.to_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// Loads settings from a directory and a set of environment variables.
#[derive(Debug, Clone)]
pub struct SettingsLoader {
    dir: PathBuf,
    // Only `APP_*` variables are kept; the Debug output of the loader can
    // therefore show them, which is why secrets must not be printed with it.
    vars: BTreeMap<String, String>,
}

impl SettingsLoader {
    /// Reads from `dir` with the process environment.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        // vars_os + to_str: a variable that is not UTF-8 is skipped instead of
        // panicking as `std::env::vars` would.
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::with_vars(dir, vars)
    }

    /// Reads from `APP_CONFIG_DIR` if set, else `default_dir`, with the
    /// process environment: what a service's `main` calls.
    pub fn from_env(default_dir: impl Into<PathBuf>) -> Self {
        let dir = std::env::var_os(CONFIG_DIR_VAR).map(PathBuf::from).unwrap_or_else(|| default_dir.into());
        Self::new(dir)
    }

    /// Reads from `dir` with exactly `vars` as the environment (tests: no
    /// process-global state, so they can run in parallel).
    pub fn with_vars(dir: impl Into<PathBuf>, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let prefix = format!("{ENV_PREFIX}_");
        Self { dir: dir.into(), vars: vars.into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect() }
    }

    /// The directory the YAML files are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The environment name: `APP_ENVIRONMENT`, or `local`.
    pub fn environment(&self) -> Result<String, ConfigError> {
        let env = self.vars.get(ENVIRONMENT_VAR).map(String::as_str).unwrap_or(DEFAULT_ENVIRONMENT);
        let plain = !env.is_empty() && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if plain { Ok(env.to_owned()) } else { Err(ConfigError::BadEnvironment { value: env.to_owned() }) }
    }

    /// Loads and deserializes the three layers into `S`.
    pub fn load<S: DeserializeOwned>(&self) -> Result<S, ConfigError> {
        let environment = self.environment()?;
        let base = self.dir.join("base.yaml");
        let env_file = self.dir.join(format!("{environment}.yaml"));
        for (path, hint) in [
            (&base, String::new()),
            (&env_file, format!(" (chosen by {ENVIRONMENT_VAR}={environment}; every environment needs its file, even if empty)")),
        ] {
            if !path.is_file() {
                return Err(ConfigError::MissingFile { path: path.clone(), hint });
            }
        }
        // Overrides: everything with the prefix except the two variables that
        // steer loading itself (they are not settings).
        let overrides: config::Map<String, String> = self
            .vars
            .iter()
            .filter(|(k, _)| k.as_str() != ENVIRONMENT_VAR && k.as_str() != CONFIG_DIR_VAR)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let built = Config::builder()
            .add_source(File::from(base.as_path()).format(FileFormat::Yaml).required(true))
            .add_source(File::from(env_file.as_path()).format(FileFormat::Yaml).required(true))
            .add_source(
                Environment::with_prefix(ENV_PREFIX).prefix_separator("_").separator("__").try_parsing(false).source(Some(overrides)),
            )
            .build()
            .map_err(convert)?;
        built.try_deserialize::<S>().map_err(convert)
    }
}

/// Turns the `config` crate's error into ours, keeping the key.
fn convert(err: config::ConfigError) -> ConfigError {
    match err {
        config::ConfigError::FileParse { uri, cause } => {
            ConfigError::Syntax { path: uri.unwrap_or_else(|| "a configuration file".into()), message: cause.to_string() }
        }
        config::ConfigError::NotFound(key) => invalid(Some(key), None, "is required but not set".into()),
        config::ConfigError::Type { origin, unexpected, expected, key } => {
            let found = match &key {
                Some(k) if looks_secret(k) => "a value (not shown: the key looks secret)".to_owned(),
                _ => unexpected.to_string(),
            };
            invalid(key, origin, format!("expected {expected}, found {found}"))
        }
        config::ConfigError::At { error, origin, key } => {
            // serde's "unknown field `prot`" arrives wrapped in the parent's
            // key (`server`): join them so the message names `server.prot`.
            if let config::ConfigError::Message(message) = *error {
                let field = field_in_message(&message);
                let key = match (key, field) {
                    (Some(parent), Some(field)) => Some(format!("{parent}.{field}")),
                    (parent, field) => parent.or(field),
                };
                return invalid(key, origin, message);
            }
            let inner = convert(*error);
            match inner {
                ConfigError::Invalid { key: inner_key, origin: inner_origin, message, .. } => {
                    invalid(key.or(inner_key), origin.or(inner_origin), message)
                }
                other => other,
            }
        }
        config::ConfigError::Message(message) => message_to_invalid(message),
        other => invalid(None, None, other.to_string()),
    }
}

/// serde's own messages ("missing field `port`") carry the field but not the
/// path; keep the field as the key so the message still names it.
fn message_to_invalid(message: String) -> ConfigError {
    invalid(field_in_message(&message), None, message)
}

fn field_in_message(message: &str) -> Option<String> {
    ["missing field `", "unknown field `"].iter().find_map(|p| {
        let rest = message.split_once(p)?.1;
        Some(rest.split('`').next()?.to_owned())
    })
}

fn invalid(key: Option<String>, origin: Option<String>, message: String) -> ConfigError {
    let env_var = key.as_deref().map(env_var_for);
    ConfigError::Invalid {
        key,
        env_var,
        origin: origin.map(|o| if o.to_lowercase().contains("environment") { "the environment".to_owned() } else { o }),
        message,
    }
}

/// The message [`load_or_exit`] prints for `err`, rooted at `dir`.
pub fn error_message(err: &ConfigError, dir: &Path) -> String {
    format!(
        "invalid configuration: {err}\n\
         (settings are read from {base}, then {dir}/<{ENVIRONMENT_VAR}>.yaml, then {ENV_PREFIX}_<SECTION>__<KEY> environment variables)",
        base = dir.join("base.yaml").display(),
        dir = dir.display(),
    )
}

/// Loads settings with [`SettingsLoader::from_env`]; on error prints
/// [`error_message`] to stderr and exits with [`EX_USAGE`] (64).
///
/// Exiting here, before any connection is opened, is deliberate: a service
/// with bad settings must not half-start and then fail health checks.
pub fn load_or_exit<S: DeserializeOwned>(default_dir: impl Into<PathBuf>) -> S {
    let loader = SettingsLoader::from_env(default_dir);
    match loader.load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{}", error_message(&err, loader.dir()));
            std::process::exit(EX_USAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_follow_the_convention() {
        assert_eq!(env_var_for("database.url"), "APP_DATABASE__URL");
        assert_eq!(env_var_for("port"), "APP_PORT");
        assert_eq!(env_var_for("kafka.consumer.group_id"), "APP_KAFKA__CONSUMER__GROUP_ID");
    }

    #[test]
    fn environment_names_are_plain() {
        let l = |v: &str| SettingsLoader::with_vars("/nowhere", [(ENVIRONMENT_VAR.to_owned(), v.to_owned())]);
        assert_eq!(l("production").environment().unwrap(), "production");
        assert!(matches!(l("../etc/passwd").environment(), Err(ConfigError::BadEnvironment { .. })));
        assert!(l("").environment().is_err());
        assert_eq!(SettingsLoader::with_vars("/nowhere", []).environment().unwrap(), "local");
    }

    #[test]
    fn secret_looking_keys_are_detected() {
        assert!(looks_secret("database.password"));
        assert!(looks_secret("auth.private_key_path"));
        assert!(!looks_secret("server.port"));
    }
}
