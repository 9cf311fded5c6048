//! Shared by the deployment tests (`helm.rs`, `compose.rs`): does an environment
//! a deployment gives a service load into that service's real `Settings` type,
//! and does it set every setting that only works on a laptop?
//!
//! Included with `#[path = "support/settings.rs"] mod settings;` (a directory
//! without `main.rs` is not a test target of its own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use glasshouse_platform::config::SettingsLoader;
use glasshouse_tests::stack::repo_root;
use serde_yaml::Value;

/// Dotted leaves of a YAML mapping.
pub fn leaves(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v.as_mapping() {
        Some(m) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default();
                let key = if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
                leaves(v, &key, out);
            }
        }
        None => {
            out.insert(prefix.to_owned(), v.clone());
        }
    }
}

pub fn env_var(key: &str) -> String {
    glasshouse_platform::config::env_var_for(key)
}

/// The service's base.yaml, as the images and the chart ship it.
pub fn base_yaml(service: &str) -> String {
    std::fs::read_to_string(repo_root().join(format!("services/{service}/config/base.yaml"))).unwrap()
}

/// The settings that must be set off the laptop, derived from the service's
/// base.yaml: every value bound to the laptop (loopback addresses, the `local`
/// environment and issuer, paths relative to the stack home), plus the code
/// defaults of the telemetry crate that point at loopback and are not in base.yaml.
pub fn required_keys(service: &str) -> BTreeSet<String> {
    let base: Value = serde_yaml::from_str(&base_yaml(service)).unwrap();
    let mut all = BTreeMap::new();
    leaves(&base, "", &mut all);
    let mut keys: BTreeSet<String> = all
        .iter()
        .filter(|(k, v)| {
            let text = v.as_str().unwrap_or("");
            text.contains("127.0.0.1")
                || text.contains("localhost")
                || text.split(|c: char| !c.is_alphanumeric()).any(|w| w == "local")
                || (k.ends_with(".file") && !text.starts_with('/'))
        })
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(["telemetry.traces.endpoint", "telemetry.logs.loki.enabled", "telemetry.logs.elasticsearch.enabled"].map(String::from));
    keys
}

/// Every required setting is in `env`, none points at loopback, files are absolute.
pub fn assert_required_set(at: &str, service: &str, env: &BTreeMap<String, String>) {
    for key in required_keys(service) {
        let var = env_var(&key);
        let value = env.get(&var).unwrap_or_else(|| panic!("{at}: required setting {key} ({var}) is not set"));
        assert!(!value.contains("127.0.0.1") && !value.contains("localhost"), "{at}: {var}={value} points at loopback");
        if key.ends_with(".file") {
            assert!(value.starts_with('/'), "{at}: {var}={value} must be absolute off the stack");
        }
    }
}

/// Writes `files` (a config directory) out and loads `service`'s `Settings`
/// from it with `env` as the process environment; `Err` names the bad key.
pub fn load(at: &str, service: &str, files: &BTreeMap<String, String>, env: BTreeMap<String, String>) -> Result<(), String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(glasshouse_tests::stack::unique_name(&format!("settings-{service}")));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let loader = SettingsLoader::with_vars(&dir, env);
    let result = match service {
        "order" => loader.load::<glasshouse_order::Settings>().map(|_| ()),
        "inventory" => loader.load::<glasshouse_inventory::Settings>().map(|_| ()),
        "notification" => loader.load::<glasshouse_notification::Settings>().map(|_| ()),
        other => panic!("{at}: unknown service {other}"),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    result.map_err(|e| format!("{at}: the settings do not load into {service}'s Settings: {e}"))
}
