//! `deploy/compose/compose.yaml` (laptops with Docker; not run here: no Docker
//! engine on the build machine), checked offline:
//! - the expected services are there, every image pinned by a version tag;
//! - every backend has a healthcheck (but Loki, whose distroless image cannot run
//!   one) and every `depends_on` a condition, and
//!   `service_healthy` only names services that have a healthcheck;
//! - each Glasshouse service's environment loads into that service's real
//!   `Settings` type from the config directory its image has (base.yaml + the
//!   empty `kubernetes.yaml`, `APP_ENVIRONMENT=kubernetes`), so a name that is not
//!   a setting fails, and every setting that only works on a laptop is set;
//! - every host the services are pointed at is a compose service;
//! - host ports are the local stack's (`deploy/local/ports.env`, same variables
//!   and defaults), and the files it mounts exist.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};

use glasshouse_tests::stack::repo_root;
use serde_yaml::Value;

#[path = "support/settings.rs"]
mod settings;

const GLASSHOUSE: [&str; 3] = ["order", "inventory", "notification"];
const BACKENDS: [&str; 10] =
    ["kafka", "postgres", "mariadb", "mongodb", "jaeger", "prometheus", "alertmanager", "loki", "opensearch", "grafana"];

/// Backends whose image has nothing to run a healthcheck with (Loki 3 is
/// distroless: no shell, no HTTP client); their dependants wait for `service_started`.
const NO_PROBE: [&str; 1] = ["loki"];

/// Which ports.env variables each service publishes (host side).
const PORTS: [(&str, &[&str]); 11] = [
    ("order", &["GH_ORDER_PORT"]),
    ("inventory", &["GH_INVENTORY_PORT"]),
    ("notification", &["GH_NOTIFICATION_PORT"]),
    ("kafka", &["GH_KAFKA_PORT"]),
    ("postgres", &["GH_POSTGRES_PORT"]),
    ("mariadb", &["GH_MARIADB_PORT"]),
    ("mongodb", &["GH_FERRETDB_PORT"]),
    ("jaeger", &["GH_JAEGER_QUERY_PORT", "GH_JAEGER_OTLP_GRPC_PORT", "GH_JAEGER_OTLP_HTTP_PORT"]),
    ("prometheus", &["GH_PROMETHEUS_PORT"]),
    ("alertmanager", &["GH_ALERTMANAGER_PORT"]),
    ("opensearch", &["GH_OPENSEARCH_PORT"]),
];
/// Published ports the native stack does not have (its UIs are not part of it).
const EXTRA_PORTS: [(&str, u16); 2] = [("grafana", 3000), ("loki", 3100)];

fn compose() -> Value {
    let path = repo_root().join("deploy/compose/compose.yaml");
    let mut doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc.apply_merge().unwrap();
    doc
}

fn services(doc: &Value) -> BTreeMap<String, Value> {
    doc["services"].as_mapping().unwrap().iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone())).collect()
}

fn env_of(svc: &Value) -> BTreeMap<String, String> {
    let Some(env) = svc.get("environment") else { return BTreeMap::new() };
    if let Some(list) = env.as_sequence() {
        return list.iter().filter_map(|e| e.as_str()?.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    }
    env.as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => panic!("environment {k:?}: quote {other:?} (compose wants strings)"),
            };
            (k.as_str().unwrap().to_owned(), v)
        })
        .collect()
}

/// `GH_X_PORT` -> its default, from deploy/local/ports.env.
fn ports_env() -> BTreeMap<String, u16> {
    let text = std::fs::read_to_string(repo_root().join("deploy/local/ports.env")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, rest) = l.split_once('=')?;
            let default = rest.rsplit_once(":-")?.1.trim_end_matches('}');
            Some((name.to_owned(), default.parse().unwrap()))
        })
        .collect()
}

/// A published port: (`Some(variable)` or `None` for a literal, host default, container port).
fn published(svc: &Value) -> Vec<(Option<String>, u16, u16)> {
    let mut out = Vec::new();
    for p in svc.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
        let p = p.as_str().unwrap();
        let (host, container) = p.rsplit_once(':').unwrap();
        let container: u16 = container.parse().unwrap();
        match host.strip_prefix("${").and_then(|h| h.strip_suffix('}')) {
            Some(var) => {
                let (name, default) = var.split_once(":-").unwrap();
                out.push((Some(name.to_owned()), default.parse().unwrap(), container));
            }
            None => out.push((None, host.parse().unwrap(), container)),
        }
    }
    out
}

fn image_tag(image: &str) -> &str {
    let last = image.rsplit_once('/').map_or(image, |(_, l)| l);
    last.split_once(':').map_or("", |(_, t)| t)
}

#[test]
fn every_service_is_there_pinned_and_health_gated() {
    let doc = compose();
    let all = services(&doc);
    let names: BTreeSet<&str> = all.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = GLASSHOUSE.iter().chain(BACKENDS.iter()).copied().collect();
    assert_eq!(names, expected, "compose services");
    for (name, svc) in &all {
        let image = svc["image"].as_str().unwrap_or_else(|| panic!("{name}: no image"));
        let tag = image_tag(image);
        assert!(!tag.is_empty() && tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()), "{name}: image {image} is not pinned");
        if GLASSHOUSE.contains(&name.as_str()) {
            assert_eq!(svc["build"]["dockerfile"].as_str(), Some("deploy/docker/Dockerfile"), "{name}");
            assert_eq!(svc["build"]["args"]["SERVICE"].as_str(), Some(name.as_str()), "{name}: build arg SERVICE");
            assert_eq!(svc["user"].as_str(), Some("65532:65532"), "{name}: the image's non-root uid");
            assert_eq!(svc["read_only"].as_bool(), Some(true), "{name}: read-only root filesystem");
        } else if !NO_PROBE.contains(&name.as_str()) {
            let test = &svc["healthcheck"]["test"];
            assert!(test.as_sequence().is_some_and(|t| t.len() >= 2), "{name}: no healthcheck");
        }
        for (dep, cond) in svc.get("depends_on").and_then(Value::as_mapping).into_iter().flatten() {
            let dep = dep.as_str().unwrap();
            assert!(names.contains(dep), "{name}: depends on unknown service {dep}");
            let cond = cond["condition"].as_str().unwrap_or_else(|| panic!("{name} -> {dep}: no condition"));
            if all[dep].get("healthcheck").is_some() {
                assert_eq!(cond, "service_healthy", "{name} -> {dep}: wait for its healthcheck");
            } else {
                assert_ne!(cond, "service_healthy", "{name} -> {dep}: {dep} has no healthcheck");
            }
        }
    }
    // Each Glasshouse service waits for its database, Kafka and the trace collector.
    for (svc, db) in [("order", "postgres"), ("inventory", "mariadb"), ("notification", "mongodb")] {
        for dep in [db, "kafka", "jaeger"] {
            assert_eq!(all[svc]["depends_on"][dep]["condition"].as_str(), Some("service_healthy"), "{svc} -> {dep}");
        }
    }
}

/// The image's config directory (deploy/docker/Dockerfile): base.yaml and an empty
/// kubernetes.yaml, with `APP_ENVIRONMENT=kubernetes` and `APP_CONFIG_DIR` set by the image.
fn image_config(service: &str) -> BTreeMap<String, String> {
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/docker/Dockerfile")).unwrap();
    assert!(dockerfile.contains("APP_ENVIRONMENT=kubernetes"), "the image's environment layer changed: update this test");
    BTreeMap::from([("base.yaml".to_owned(), settings::base_yaml(service)), ("kubernetes.yaml".to_owned(), "# empty\n".to_owned())])
}

#[test]
fn the_services_environment_is_real_settings_and_complete() {
    let doc = compose();
    let all = services(&doc);
    for service in GLASSHOUSE {
        let at = format!("compose {service}");
        let env = env_of(&all[service]);
        for k in env.keys() {
            assert!(k.starts_with("APP_"), "{at}: {k} is not a setting variable");
        }
        settings::assert_required_set(&at, service, &env);
        let mut vars = env.clone();
        vars.entry("APP_ENVIRONMENT".into()).or_insert_with(|| "kubernetes".into());
        if let Err(e) = settings::load(&at, service, &image_config(service), vars) {
            panic!("{e}");
        }
        // The port the service listens on is the one compose publishes and the one
        // the other services and Prometheus use.
        let port: u16 = env["APP_HTTP__PORT"].parse().unwrap();
        assert!(published(&all[service]).iter().any(|(_, _, c)| *c == port), "{at}: APP_HTTP__PORT {port} is not published");
        // Every host named in a URL or broker list is a compose service.
        for (k, v) in &env {
            for part in v.split(',') {
                let rest = part.split_once("://").map_or(part, |(_, r)| r);
                let hostport = rest.split(['/', '?']).next().unwrap_or("");
                let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
                if let Some((host, p)) = hostport.split_once(':')
                    && p.parse::<u16>().is_ok()
                {
                    assert!(all.contains_key(host), "{at}: {k}={v} names host {host}, not a compose service");
                }
            }
        }
    }
    // One trust key for all three (else one order is no longer one trace).
    let keys: BTreeSet<String> = GLASSHOUSE.iter().map(|s| env_of(&all[*s])["APP_TELEMETRY__TRACES__TRUST_KEY"].clone()).collect();
    assert_eq!(keys.len(), 1, "the services' trace trust keys differ: {keys:?}");
}

#[test]
fn host_ports_are_the_local_stacks() {
    let doc = compose();
    let all = services(&doc);
    let defaults = ports_env();
    let expected: BTreeMap<&str, &[&str]> = PORTS.into_iter().collect();
    let extras: BTreeMap<&str, u16> = EXTRA_PORTS.into_iter().collect();
    for (name, svc) in &all {
        let ports = published(svc);
        let vars: BTreeSet<&str> = ports.iter().filter_map(|(v, _, _)| v.as_deref()).collect();
        let want: BTreeSet<&str> = expected.get(name.as_str()).map(|v| v.iter().copied().collect()).unwrap_or_default();
        assert_eq!(vars, want, "{name}: published port variables");
        for (var, default, _) in &ports {
            match var {
                Some(var) => assert_eq!(Some(default), defaults.get(var), "{name}: ${{{var}:-{default}}} disagrees with ports.env"),
                None => {
                    assert_eq!(extras.get(name.as_str()), Some(default), "{name}: literal host port {default} (use a ports.env variable)");
                    assert!(!defaults.values().any(|d| d == default), "{name}: port {default} collides with the local stack's");
                }
            }
        }
    }
    // The services' host port is their container port, as on the native stack.
    for s in GLASSHOUSE {
        let (_, host, container) = published(&all[s])[0].clone();
        assert_eq!(host, container, "{s}");
    }
}

#[test]
fn mounted_repository_files_exist() {
    let doc = compose();
    let dir = repo_root().join("deploy/compose");
    for (name, svc) in services(&doc) {
        for v in svc.get("volumes").and_then(Value::as_sequence).into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(dir.join(source).exists(), "{name}: mounts {source}, which does not exist");
            }
        }
    }
    // Prometheus scrapes the three services as the native stack does (job glasshouse, label service).
    let prom: Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join("prometheus.yml")).unwrap()).unwrap();
    let job = prom["scrape_configs"].as_sequence().unwrap().iter().find(|j| j["job_name"].as_str() == Some("glasshouse")).unwrap();
    let scraped: BTreeSet<String> =
        job["static_configs"].as_sequence().unwrap().iter().map(|c| c["labels"]["service"].as_str().unwrap().to_owned()).collect();
    assert_eq!(scraped, GLASSHOUSE.iter().map(|s| (*s).to_owned()).collect());
}
