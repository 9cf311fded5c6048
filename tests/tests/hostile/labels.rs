//! Metric labels a client can choose: 100 invented methods and paths add no
//! `http_server_request_duration_seconds` series beyond the known set. Methods
//! outside RFC 9110 are `_OTHER`, unmatched paths one `unmatched` route, and a
//! route has one template spelling (`/orders/{id}`, never `/orders/{param0}`).

use std::collections::BTreeSet;

use glasshouse_platform::auth::Role;
use glasshouse_tests::services::{Saga, Service};
use reqwest::Method;

const KNOWN_METHODS: [&str; 10] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"];

/// `(method, route)` of every `http_server_request_duration_seconds` series.
async fn series(http: &reqwest::Client, svc: &Service) -> anyhow::Result<BTreeSet<(String, String, String)>> {
    let text = http.get(svc.url("/metrics")).send().await?.text().await?;
    let label = |line: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        line.split_once(&key).and_then(|(_, rest)| rest.split_once('"')).map(|(v, _)| v.to_owned()).unwrap_or_default()
    };
    Ok(text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .map(|l| (label(l, "method"), label(l, "route"), label(l, "status_class")))
        .collect())
}

/// A cheap deterministic generator (xorshift): reproducible "random" input.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn word(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len).map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_and_paths_add_no_series() -> anyhow::Result<()> {
    let saga = Saga::start().await?;
    let http = reqwest::Client::new();
    let admin = saga.token("ops", Role::Admin);
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for svc in [&saga.order, &saga.inventory, &saga.notification] {
        let templates = templates(&http, svc).await?;
        for i in 0..100 {
            let method = Method::from_bytes(format!("X{}", noise.word(6)).as_bytes())?;
            let id = noise.word(8);
            let path = match i % 5 {
                0 => format!("/{}", noise.word(5)),
                1 => format!("/orders/{id}"),
                2 => format!("/items/{id}/{}", noise.word(3)),
                3 => format!("/notifications/{id}"),
                _ => format!("/items/{id}"),
            };
            // A real method on the same path too: 404/405 by route template.
            for m in [method, Method::DELETE] {
                let status = http.request(m, svc.url(&path)).bearer_auth(&admin).send().await?.status();
                assert!(status.is_client_error(), "{} {path}: {status}", svc.name);
            }
        }
        let all = series(&http, svc).await?;
        let mut allowed: BTreeSet<String> = templates.clone();
        allowed.extend(["unmatched", "/metrics", "/health/ready", "/health/live", "/openapi.yaml"].map(str::to_owned));
        for (method, route, _) in &all {
            assert!(KNOWN_METHODS.contains(&method.as_str()), "{}: method label {method:?}", svc.name);
            assert!(allowed.contains(route), "{}: route label {route:?} is no template of {templates:?}", svc.name);
        }
        let other: Vec<_> = all.iter().filter(|(m, _, _)| m == "_OTHER").collect();
        assert!(other.len() <= allowed.len() * 2, "{}: {other:?}", svc.name);
    }
    saga.stop().await
}

/// The path templates of the service's served contract.
async fn templates(http: &reqwest::Client, svc: &Service) -> anyhow::Result<BTreeSet<String>> {
    let spec: serde_yaml::Value = serde_yaml::from_str(&http.get(svc.url("/openapi.yaml")).send().await?.text().await?)?;
    let paths = spec.get("paths").and_then(|p| p.as_mapping()).ok_or_else(|| anyhow::anyhow!("{}: no paths in its spec", svc.name))?;
    Ok(paths.keys().filter_map(|k| k.as_str()).map(str::to_owned).collect())
}
