//! Bearer tokens: which source the file names (checked with the rest of the
//! config) and reading it (only when a run starts).

use std::path::Path;

use super::raw::RawAuth;
use super::{AuthSource, ConfigError, Flow, Secret};

/// The token source of `auth:`; required when a step sends a token. A
/// relative `token_file` resolves against `base_dir` (the config's directory).
pub(super) fn source(raw: Option<&RawAuth>, base_dir: &Path, flows: &[Flow]) -> Result<Option<AuthSource>, ConfigError> {
    let auth = match raw {
        None => None,
        Some(RawAuth { token: Some(t), token_file: None, token_env: None }) => Some(AuthSource::Literal(Secret(t.clone()))),
        Some(RawAuth { token: None, token_file: Some(p), token_env: None }) => Some(AuthSource::File(base_dir.join(p))),
        Some(RawAuth { token: None, token_file: None, token_env: Some(name) }) => Some(AuthSource::Env(name.clone())),
        Some(_) => return Err(ConfigError::at("auth", "set exactly one of token, token_file, token_env")),
    };
    let needs_auth = flows.iter().flat_map(|f| &f.steps).any(|s| s.needs_auth());
    if needs_auth && auth.is_none() {
        return Err(ConfigError::at(
            "auth",
            "the flows call authenticated APIs but no token source is set (token, token_file or token_env)",
        ));
    }
    Ok(auth)
}

/// Reads the token(s) for the configured source; at least one must be found.
///
/// Kept out of [`super::Config::parse`] so that `parse` stays free of environment
/// and file reads other than the config itself; the CLI calls it before load.
pub fn load_tokens(source: &AuthSource) -> Result<Vec<String>, ConfigError> {
    let tokens: Vec<String> = match source {
        AuthSource::Literal(secret) => vec![secret.0.clone()],
        AuthSource::File(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| ConfigError::at("auth.token_file", format!("cannot read {}: {e}", p.display())))?;
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
        }
        AuthSource::Env(name) => {
            let v = std::env::var(name).map_err(|_| {
                ConfigError::at(
                    "auth.token_env",
                    format!(
                        "environment variable `{name}` is not set (minting tokens with the local dev key is not built yet; see loadtest/README.md)"
                    ),
                )
            })?;
            v.split_whitespace().map(String::from).collect()
        }
    };
    let tokens: Vec<String> = tokens.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        return Err(ConfigError::at("auth", "the token source yielded no token"));
    }
    if let Some(bad) = tokens.iter().position(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).is_err()) {
        return Err(ConfigError::at("auth", format!("token #{} contains characters not allowed in a header", bad + 1)));
    }
    Ok(tokens)
}
