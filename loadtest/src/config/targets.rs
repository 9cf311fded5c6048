//! Targets: named base URLs, parsed once, and the rule that only loopback or
//! explicitly allowed hosts are ever loaded.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{ConfigError, Overrides, Target};

/// Applies `--target NAME=URL` to the file's targets, then parses each one and
/// refuses hosts that are neither loopback nor in `allow_hosts` (lower-case).
pub(super) fn build(
    mut urls: BTreeMap<String, String>,
    allow_hosts: &[String],
    ov: &Overrides,
) -> Result<BTreeMap<String, Target>, ConfigError> {
    for (name, url) in &ov.targets {
        if !urls.contains_key(name) {
            let msg = format!("no target named `{name}` in the config (known: {})", join_keys(&urls));
            return Err(ConfigError::at("--target", msg));
        }
        urls.insert(name.clone(), url.clone());
    }
    if urls.is_empty() {
        return Err(ConfigError::at("targets", "at least one target is required"));
    }
    let mut targets = BTreeMap::new();
    for (name, url) in urls {
        let key = format!("targets.{name}");
        let t = parse_target(&url).map_err(|m| ConfigError::at(&key, m))?;
        if !host_allowed(&t.host, allow_hosts) {
            let msg = format!(
                "host `{}` is neither loopback nor listed in allow_hosts; the runner only loads hosts it was explicitly allowed to",
                t.host
            );
            return Err(ConfigError::at(&key, msg));
        }
        targets.insert(name, t);
    }
    Ok(targets)
}

/// The map's keys, comma-separated (for "known: ..." in messages).
pub(super) fn join_keys<V>(m: &BTreeMap<String, V>) -> String {
    m.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Parses a plain-HTTP base URL (no query, no credentials).
pub fn parse_target(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(format!("`{url}`: https is not supported yet (the runner speaks plain HTTP/1.1)")),
        _ => return Err(format!("`{url}` must start with http://")),
    }
    let auth = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
    if auth.as_str().contains('@') {
        return Err(format!("`{url}`: credentials in URLs are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: a base URL cannot have a query"));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(Target {
        url: url.to_string(),
        host,
        port: auth.port_u16().unwrap_or(80),
        authority: auth.as_str().to_string(),
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

/// Loopback literals and `localhost` are always allowed; anything else must be
/// named in `allow_hosts` (exact, case-insensitive).
pub fn host_allowed(host: &str, allow: &[String]) -> bool {
    let loopback = host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback || allow.iter().any(|a| a == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_must_be_loopback_or_allowed() {
        assert!(host_allowed("127.0.0.1", &[]));
        assert!(host_allowed("127.9.9.9", &[]));
        assert!(host_allowed("::1", &[]));
        assert!(host_allowed("localhost", &[]));
        assert!(!host_allowed("10.0.0.1", &[]));
        assert!(!host_allowed("example.com", &[]));
        assert!(host_allowed("staging.example.com", &["staging.example.com".into()]));
    }

    #[test]
    fn targets_parse() {
        let t = parse_target("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.base_path.as_str()), ("127.0.0.1", 8080, "/api"));
        let t = parse_target("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.authority.as_str()), ("::1", "[::1]:9000"));
        assert!(parse_target("https://127.0.0.1").unwrap_err().contains("https"));
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("not a url").is_err());
    }
}
