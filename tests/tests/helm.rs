//! The Helm chart (`deploy/helm/glasshouse`), proven offline with the real `helm`
//! (built from the Go module proxy by `deploy/local/stack install helm`; `make test`
//! installs it through `deploy/local/test-tools.sh`).
//!
//! For the default values and each of `values-local.yaml` and `values-eks.yaml`:
//! - `helm lint --strict` and `helm template` succeed;
//! - every workload passes the policy (probes, requests and limits, non-root,
//!   read-only root filesystem, no privilege escalation, capabilities dropped,
//!   seccomp, no `latest` image, its own ServiceAccount);
//! - every Service has a NetworkPolicy selecting its pods, behind a default deny;
//! - Istio: every host a VirtualService routes to has a DestinationRule, every
//!   Service an AuthorizationPolicy, mTLS is STRICT, and no route retries unless
//!   it is idempotent (GET, or POST /orders with its Idempotency-Key);
//! - the `APP_*` settings the chart gives each service load into that service's
//!   real `Settings` type (every struct denies unknown fields, so a key that is
//!   not a setting fails), from the config directory the chart mounts, and every
//!   setting whose base.yaml default only works on a laptop is set;
//! - the PrometheusRules, dashboard ConfigMaps and config files equal the
//!   repository's files (the chart reads them through symlinks; a copy that
//!   drifted would fail here).
//! - migration Jobs (`migrations.mode: job`): pre-install/pre-upgrade hooks whose
//!   dependencies are hooks of a lower weight, the same pod policy and settings
//!   as the Deployments, never selected by a Service; none with `at-start`;
//! - the references `istioctl analyze` would check resolve (istioctl is not
//!   built here; deploy/README.md, "Istio rules without istioctl");
//! - `deploy/aws/eksctl-cluster.yaml` fits values-eks.yaml (IRSA roles per
//!   ServiceAccount, add-ons, zones, VPC, version).
//!
//! No helm: the tests print a loud SKIPPED message and pass, unless `CI` is set,
//! where a missing tool is a failure.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use glasshouse_tests::stack::{home, repo_root};
use serde::Deserialize;
use serde_yaml::Value;

#[path = "support/settings.rs"]
mod settings;
use settings::required_keys;

const SERVICES: [&str; 3] = ["order", "inventory", "notification"];
/// The values files the chart ships; `None` is the chart's defaults alone.
const VALUES: [Option<&str>; 3] = [None, Some("values-local.yaml"), Some("values-eks.yaml")];
/// `helm template` needs a target version (a module build of helm has no default);
/// the chart's `kubeVersion` says >= 1.27.
const KUBE_VERSION: &str = "1.31.0";
const RELEASE: &str = "glasshouse";
const NAMESPACE: &str = "glasshouse";

fn chart_dir() -> PathBuf {
    repo_root().join("deploy/helm/glasshouse")
}

/// The helm binary, or `None` (with a loud message) when it is not built and
/// this is not CI. `GH_HELM` wins; otherwise the stack's cached build.
fn helm() -> Option<PathBuf> {
    static HELM: OnceLock<Option<PathBuf>> = OnceLock::new();
    HELM.get_or_init(|| {
        let found =
            std::env::var_os("GH_HELM").map(PathBuf::from).or_else(|| home().ok().map(|h| h.join("bin/helm"))).filter(|p| p.is_file());
        if found.is_none() {
            let how = "build it with `deploy/local/stack install helm` (make test does)";
            assert!(std::env::var_os("CI").is_none(), "helm is missing under CI: {how}");
            eprintln!("\n!!!!!!!! SKIPPED: helm chart tests: helm is not built; {how} !!!!!!!!\n");
        }
        found
    })
    .clone()
}

fn helm_cmd(helm: &Path, args: &[&str], values: Option<&str>) -> std::process::Output {
    let chart = chart_dir();
    let mut cmd = Command::new(helm);
    cmd.args(args).arg(&chart).args(["--kube-version", KUBE_VERSION]);
    if let Some(v) = values {
        cmd.arg("-f").arg(chart.join(v));
    }
    // helm keeps caches and config under these; the tests never share them.
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    cmd.env("HELM_CACHE_HOME", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_DATA_HOME", scratch.join("data"));
    cmd.output().unwrap()
}

/// The rendered objects for one values file (rendered once per test binary).
fn rendered(values: Option<&str>) -> Option<&'static [Value]> {
    static CACHE: OnceLock<BTreeMap<Option<&'static str>, Vec<Value>>> = OnceLock::new();
    let helm = helm()?;
    let all = CACHE.get_or_init(|| {
        VALUES
            .iter()
            .map(|v| {
                let out = helm_cmd(&helm, &["template", RELEASE, "--namespace", NAMESPACE], *v);
                assert!(out.status.success(), "helm template ({v:?}) failed:\n{}", String::from_utf8_lossy(&out.stderr));
                let text = String::from_utf8(out.stdout).unwrap();
                let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
                    .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("rendered YAML ({v:?}) does not parse: {e}")))
                    .filter(|d| !d.is_null())
                    .collect();
                (*v, docs)
            })
            .collect()
    });
    all.iter().find(|(k, _)| **k == values).map(|(_, docs)| docs.as_slice())
}

fn s<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    s(v, path).and_then(Value::as_str).unwrap_or("")
}

fn kind(v: &Value) -> &str {
    str_at(v, "kind")
}

fn name(v: &Value) -> &str {
    str_at(v, "metadata.name")
}

fn of_kind<'a>(docs: &'a [Value], k: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| kind(d) == k)
}

fn label_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| m.iter().map(|(k, v)| (k.as_str().unwrap_or("").to_owned(), v.as_str().unwrap_or("").to_owned())).collect())
        .unwrap_or_default()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    !small.is_empty() && small.iter().all(|(k, v)| big.get(k) == Some(v))
}

fn label(values: Option<&str>) -> &str {
    values.unwrap_or("values.yaml (defaults)")
}

#[test]
fn helm_lint_is_clean_for_every_values_file() {
    let Some(helm) = helm() else { return };
    for v in VALUES {
        let out = helm_cmd(&helm, &["lint", "--strict"], v);
        assert!(
            out.status.success(),
            "helm lint --strict with {}:\n{}{}",
            label(v),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_values_file_renders_and_counts_its_objects() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for d in docs {
            *count.entry(kind(d)).or_default() += 1;
        }
        eprintln!("{}: {} objects {count:?}", label(v), docs.len());
        for k in ["Deployment", "Service", "ServiceAccount", "NetworkPolicy", "ConfigMap"] {
            assert!(count.contains_key(k), "{}: no {k} rendered", label(v));
        }
        // migrations.mode=job (the default): one migration Job per service.
        assert_eq!(count.get("Job"), Some(&SERVICES.len()), "{}: one migration Job per service", label(v));
    }
}

fn annotation<'a>(v: &'a Value, key: &str) -> &'a str {
    s(v, "metadata.annotations").and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or("")
}

fn weight(v: &Value) -> i64 {
    annotation(v, "helm.sh/hook-weight").parse().unwrap_or(0)
}

/// Each migration Job is a pre-install/pre-upgrade hook whose every dependency
/// (ServiceAccount, ConfigMaps, Secret) is a hook of a lower weight, or an
/// existing Secret: hooks run before the release's own objects exist.
#[test]
fn migration_jobs_are_hooks_with_their_own_dependencies() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        for job in of_kind(docs, "Job") {
            let at = format!("{} Job {}", label(v), name(job));
            assert_eq!(annotation(job, "helm.sh/hook"), "pre-install,pre-upgrade", "{at}");
            assert!(annotation(job, "helm.sh/hook-delete-policy").contains("before-hook-creation"), "{at}");
            let pod = s(job, "spec.template.spec").unwrap();
            assert_eq!(str_at(pod, "restartPolicy"), "Never", "{at}");
            let labels = label_map(s(job, "spec.template.metadata.labels"));
            assert_eq!(
                labels.get("sidecar.istio.io/inject").map(String::as_str),
                Some("false"),
                "{at}: a sidecar would keep the Job running"
            );
            let c = &s(pod, "containers").unwrap()[0];
            assert_eq!(c["args"], serde_yaml::from_str::<Value>("[migrate]").unwrap(), "{at}");
            // Never selected by a Service (it would get traffic while it migrates).
            for svc in of_kind(docs, "Service") {
                assert!(!is_subset(&label_map(s(svc, "spec.selector")), &labels), "{at}: Service {} selects the Job's pod", name(svc));
            }
            let mut deps: Vec<(&str, String)> = vec![("ServiceAccount", str_at(pod, "serviceAccountName").to_owned())];
            for from in s(c, "envFrom").and_then(Value::as_sequence).unwrap() {
                if let Some(n) = s(from, "configMapRef.name").and_then(Value::as_str) {
                    deps.push(("ConfigMap", n.to_owned()));
                }
                if let Some(n) = s(from, "secretRef.name").and_then(Value::as_str) {
                    deps.push(("Secret", n.to_owned()));
                }
            }
            for vol in s(pod, "volumes").and_then(Value::as_sequence).unwrap() {
                if let Some(n) = s(vol, "configMap.name").and_then(Value::as_str) {
                    deps.push(("ConfigMap", n.to_owned()));
                }
            }
            for (k, n) in deps {
                match of_kind(docs, k).find(|o| name(o) == n) {
                    Some(obj) => {
                        assert!(
                            annotation(obj, "helm.sh/hook").contains("pre-install"),
                            "{at}: its {k} {n} is not a hook (absent at install)"
                        );
                        assert!(weight(obj) < weight(job), "{at}: its {k} {n} must be created before it (lower hook weight)");
                    }
                    None => assert_eq!(k, "Secret", "{at}: its {k} {n} is not rendered"),
                }
            }
        }
    }
}

/// `migrations.mode: at-start` renders no Job; an unknown mode fails the render.
#[test]
fn migrations_at_start_render_no_job_and_a_bad_mode_fails() {
    let Some(helm) = helm() else { return };
    let out = helm_cmd(&helm, &["template", RELEASE, "--namespace", NAMESPACE, "--set", "migrations.mode=at-start"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("\nkind: Job\n"), "at-start renders a Job");
    assert!(!text.contains("-migrate"), "at-start renders migration objects");
    let out = helm_cmd(&helm, &["template", RELEASE, "--set", "migrations.mode=sometimes"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"sometimes\" is not one of job, at-start"));
}

#[test]
fn every_workload_follows_the_pod_policy() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let deployments: Vec<_> = of_kind(docs, "Deployment").collect();
        assert_eq!(deployments.len(), SERVICES.len(), "{}", label(v));
        let accounts: BTreeSet<&str> = of_kind(docs, "ServiceAccount").map(name).collect();
        // The migration Jobs run the same image under the same policy (no probes: they never serve).
        for d in deployments.into_iter().chain(of_kind(docs, "Job")) {
            let serves = kind(d) == "Deployment";
            let at = format!("{} {} {}", label(v), kind(d), name(d));
            let pod = s(d, "spec.template.spec").unwrap();
            let sa = str_at(pod, "serviceAccountName");
            assert!(accounts.contains(sa) && sa != "default", "{at}: own ServiceAccount expected, found {sa:?}");
            assert_eq!(s(pod, "securityContext.runAsNonRoot").and_then(Value::as_bool), Some(true), "{at}: pod runAsNonRoot");
            assert_eq!(str_at(pod, "securityContext.seccompProfile.type"), "RuntimeDefault", "{at}: pod seccomp");
            for c in s(pod, "containers").and_then(Value::as_sequence).unwrap() {
                let at = format!("{at} container {}", str_at(c, "name"));
                if serves {
                    for p in ["startupProbe", "livenessProbe", "readinessProbe"] {
                        assert!(s(c, &format!("{p}.httpGet.path")).is_some(), "{at}: no HTTP {p}");
                    }
                    assert_eq!(str_at(c, "readinessProbe.httpGet.path"), "/health/ready", "{at}");
                    assert_eq!(str_at(c, "livenessProbe.httpGet.path"), "/health/live", "{at}");
                }
                for r in ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"] {
                    assert!(s(c, &format!("resources.{r}")).is_some(), "{at}: no resources.{r}");
                }
                let sc = s(c, "securityContext").unwrap();
                assert_eq!(s(sc, "runAsNonRoot").and_then(Value::as_bool), Some(true), "{at}: runAsNonRoot");
                assert_eq!(s(sc, "readOnlyRootFilesystem").and_then(Value::as_bool), Some(true), "{at}: readOnlyRootFilesystem");
                assert_eq!(s(sc, "allowPrivilegeEscalation").and_then(Value::as_bool), Some(false), "{at}: allowPrivilegeEscalation");
                let dropped = s(sc, "capabilities.drop").and_then(Value::as_sequence).cloned().unwrap_or_default();
                assert!(dropped.iter().any(|c| c.as_str() == Some("ALL")), "{at}: capabilities must drop ALL");
                assert_eq!(str_at(sc, "seccompProfile.type"), "RuntimeDefault", "{at}: seccomp");
                let image = str_at(c, "image");
                let tag = image.rsplit_once('/').map_or(image, |(_, t)| t);
                assert!(
                    tag.contains('@') || tag.split_once(':').is_some_and(|(_, t)| !t.is_empty() && t != "latest"),
                    "{at}: image {image:?} must be pinned (a tag other than latest, or a digest)"
                );
            }
        }
    }
}

#[test]
fn every_service_has_a_network_policy_behind_a_default_deny() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let policies: Vec<_> = of_kind(docs, "NetworkPolicy").collect();
        assert!(
            policies.iter().any(|p| s(p, "spec.ingress").is_none()
                && s(p, "spec.egress").is_none()
                && s(p, "spec.policyTypes").and_then(Value::as_sequence).is_some_and(|t| t.len() == 2)),
            "{}: no default-deny NetworkPolicy (both directions, no rules)",
            label(v)
        );
        for svc in of_kind(docs, "Service") {
            let selector = label_map(s(svc, "spec.selector"));
            let covering: Vec<_> = policies
                .iter()
                .filter(|p| is_subset(&label_map(s(p, "spec.podSelector.matchLabels")), &selector))
                .filter(|p| s(p, "spec.ingress").is_some())
                .collect();
            assert!(!covering.is_empty(), "{}: Service {} has no NetworkPolicy with ingress rules for its pods", label(v), name(svc));
            // An empty `from`/`to` means "everyone": never rendered.
            for p in &covering {
                for dir in ["ingress", "egress"] {
                    for rule in s(p, &format!("spec.{dir}")).and_then(Value::as_sequence).into_iter().flatten() {
                        let peers = if dir == "ingress" { "from" } else { "to" };
                        assert!(
                            s(rule, peers).and_then(Value::as_sequence).is_some_and(|x| !x.is_empty()),
                            "{}: NetworkPolicy {} has an {dir} rule open to everyone",
                            label(v),
                            name(p)
                        );
                    }
                }
            }
        }
        // Each migration Job's pods have their own egress (the default deny covers them too).
        for job in of_kind(docs, "Job") {
            let labels = label_map(s(job, "spec.template.metadata.labels"));
            assert!(
                policies.iter().any(|p| is_subset(&label_map(s(p, "spec.podSelector.matchLabels")), &labels)
                    && s(p, "spec.egress").and_then(Value::as_sequence).is_some_and(|e| e.len() >= 2)),
                "{}: Job {} has no NetworkPolicy with egress to DNS and its backends",
                label(v),
                name(job)
            );
        }
    }
}

/// True when a VirtualService route may be retried: every match is a GET, or
/// exactly `POST /orders` (idempotent through its Idempotency-Key).
fn idempotent(route: &Value) -> bool {
    let matches = s(route, "match").and_then(Value::as_sequence).cloned().unwrap_or_default();
    !matches.is_empty()
        && matches.iter().all(|m| {
            let method = str_at(m, "method.exact");
            method == "GET" || (method == "POST" && str_at(m, "uri.exact") == "/orders")
        })
}

#[test]
fn istio_objects_follow_the_mesh_rules() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let at = label(v);
        let dr_hosts: BTreeSet<&str> = of_kind(docs, "DestinationRule").map(|d| str_at(d, "spec.host")).collect();
        let mut routes_seen = 0;
        for vs in of_kind(docs, "VirtualService") {
            for route in s(vs, "spec.http").and_then(Value::as_sequence).unwrap() {
                routes_seen += 1;
                let rname = format!("{at}: VirtualService {} route {}", name(vs), str_at(route, "name"));
                for dest in s(route, "route").and_then(Value::as_sequence).unwrap() {
                    let host = str_at(dest, "destination.host");
                    assert!(dr_hosts.contains(host), "{rname}: host {host} has no DestinationRule");
                }
                assert!(s(route, "timeout").is_some(), "{rname}: no timeout");
                // Istio retries by default, so every route states its policy.
                let attempts = s(route, "retries.attempts").and_then(Value::as_u64);
                assert!(attempts.is_some(), "{rname}: no explicit retry policy (Istio's default would retry)");
                if attempts.unwrap_or(0) > 0 {
                    assert!(idempotent(route), "{rname}: retries a non-idempotent route");
                    assert_eq!(str_at(route, "retries.retryOn"), "connect-failure,refused-stream,503", "{rname}");
                }
                if str_at(route, "name").contains("cancel") {
                    assert_eq!(attempts, Some(0), "{rname}: cancel must never be retried");
                }
            }
        }
        assert!(routes_seen > 0, "{at}: no VirtualService routes");
        // The public API's cancel route exists and is matched before the generic ones.
        let public = of_kind(docs, "VirtualService").find(|vs| name(vs).ends_with("-public")).unwrap();
        assert_eq!(str_at(&s(public, "spec.http").unwrap()[0], "name"), "cancel-order", "{at}");

        let pa: Vec<_> = of_kind(docs, "PeerAuthentication").collect();
        assert!(pa.iter().any(|p| str_at(p, "spec.mtls.mode") == "STRICT"), "{at}: no STRICT PeerAuthentication");
        let policies: Vec<_> = of_kind(docs, "AuthorizationPolicy").collect();
        for svc in of_kind(docs, "Service") {
            let selector = label_map(s(svc, "spec.selector"));
            assert!(
                policies.iter().any(|p| is_subset(&label_map(s(p, "spec.selector.matchLabels")), &selector)),
                "{at}: Service {} has no AuthorizationPolicy",
                name(svc)
            );
        }
        // Only order's identity reaches inventory's catalog; admin writes need the claim.
        let inv = policies.iter().find(|p| name(p).ends_with("-inventory")).unwrap();
        let text = serde_yaml::to_string(inv).unwrap();
        let order_sa = format!("/ns/{NAMESPACE}/sa/{RELEASE}-order");
        for rule in s(inv, "spec.rules").and_then(Value::as_sequence).unwrap() {
            let ops = serde_yaml::to_string(s(rule, "to").unwrap()).unwrap();
            if ops.contains("GET") && ops.contains("/items") {
                let from = serde_yaml::to_string(s(rule, "from").unwrap()).unwrap();
                assert!(from.contains(&order_sa), "{at}: the catalog is open to more than order: {from}");
            }
            if ops.contains("PUT") {
                assert!(
                    serde_yaml::to_string(rule).unwrap().contains("request.auth.claims[roles]"),
                    "{at}: admin writes without the admin claim"
                );
            }
        }
        assert!(text.contains("admin"), "{at}");
        // JWT: the services' issuer and audience, the original token forwarded.
        let ra = of_kind(docs, "RequestAuthentication").next().unwrap();
        let rule = &s(ra, "spec.jwtRules").unwrap()[0];
        assert_eq!(s(rule, "forwardOriginalToken").and_then(Value::as_bool), Some(true), "{at}");
        let env = env_of(docs, "order");
        assert_eq!(str_at(rule, "issuer"), env["APP_AUTH__ISSUER"], "{at}: the mesh and the services must agree on the issuer");
        assert_eq!(rule["audiences"][0].as_str(), Some(env["APP_AUTH__AUDIENCE"].as_str()), "{at}: audience");
    }
}

/// What `istioctl analyze` would check on the rendered objects (istioctl is not
/// built here: the istio.io/istio module is very large; deploy/README.md): every
/// reference resolves. Gateways a VirtualService names exist (or `mesh`), its hosts
/// are Services (mesh) or served by its Gateway, every destination is a Service
/// port, every Service host has a DestinationRule and every DestinationRule a
/// Service, no two VirtualServices claim the same host on the same gateway, every
/// selector of a security/telemetry object matches a workload, and the routes that
/// must never be retried (cancel, inventory's admin writes) say so.
#[test]
fn istio_references_resolve_as_istioctl_analyze_would_check() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let at = label(v);
        let fqdn = |svc: &Value| format!("{}.{NAMESPACE}.svc.cluster.local", name(svc));
        let services: BTreeMap<String, BTreeSet<u64>> = of_kind(docs, "Service")
            .map(|svc| {
                let ports = s(svc, "spec.ports").and_then(Value::as_sequence).unwrap().iter().filter_map(|p| p["port"].as_u64()).collect();
                (fqdn(svc), ports)
            })
            .collect();
        let dr_hosts: BTreeSet<&str> = of_kind(docs, "DestinationRule").map(|d| str_at(d, "spec.host")).collect();
        for host in services.keys() {
            assert!(dr_hosts.contains(host.as_str()), "{at}: Service host {host} has no DestinationRule");
        }
        for host in &dr_hosts {
            assert!(services.contains_key(*host), "{at}: DestinationRule for {host}, which is no Service");
        }
        let gateways: BTreeMap<String, &Value> = of_kind(docs, "Gateway").map(|g| (format!("{NAMESPACE}/{}", name(g)), g)).collect();
        let mut claimed: BTreeSet<(String, String)> = BTreeSet::new();
        for vs in of_kind(docs, "VirtualService") {
            let vat = format!("{at}: VirtualService {}", name(vs));
            let gws: Vec<String> = s(vs, "spec.gateways")
                .and_then(Value::as_sequence)
                .map(|g| g.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                .unwrap_or_else(|| vec!["mesh".to_owned()]);
            let hosts: Vec<&str> = s(vs, "spec.hosts").and_then(Value::as_sequence).unwrap().iter().map(|h| h.as_str().unwrap()).collect();
            for gw in &gws {
                for host in &hosts {
                    assert!(claimed.insert((gw.clone(), (*host).to_owned())), "{vat}: host {host} on {gw} is claimed twice");
                }
                if gw == "mesh" {
                    for host in &hosts {
                        assert!(services.contains_key(*host), "{vat}: mesh host {host} is no Service");
                    }
                    continue;
                }
                let key = if gw.contains('/') { gw.clone() } else { format!("{NAMESPACE}/{gw}") };
                let gateway = gateways.get(&key).unwrap_or_else(|| panic!("{vat}: gateway {gw} is not rendered"));
                let served: Vec<&str> = s(gateway, "spec.servers")
                    .and_then(Value::as_sequence)
                    .unwrap()
                    .iter()
                    .flat_map(|srv| srv["hosts"].as_sequence().unwrap().iter().map(|h| h.as_str().unwrap()))
                    .map(|h| h.rsplit_once('/').map_or(h, |(_, h)| h))
                    .collect();
                for host in &hosts {
                    let ok = served.iter().any(|g| {
                        *g == "*" || g == host || g.strip_prefix('*').is_some_and(|suffix| host.ends_with(suffix)) || *host == "*"
                    });
                    assert!(ok, "{vat}: host {host} is not served by gateway {gw} ({served:?})");
                }
            }
            for route in s(vs, "spec.http").and_then(Value::as_sequence).unwrap() {
                for dest in s(route, "route").and_then(Value::as_sequence).unwrap() {
                    let host = str_at(dest, "destination.host");
                    let ports = services.get(host).unwrap_or_else(|| panic!("{vat}: destination {host} is no Service"));
                    let port = s(dest, "destination.port.number").and_then(Value::as_u64);
                    assert!(port.is_some_and(|p| ports.contains(&p)), "{vat}: destination {host} port {port:?} is not one of {ports:?}");
                }
                // Non-idempotent operations: cancel, and every write but POST /orders (Idempotency-Key).
                for m in s(route, "match").and_then(Value::as_sequence).into_iter().flatten() {
                    let method = str_at(m, "method.exact");
                    if !method.is_empty() && method != "GET" && !(method == "POST" && str_at(m, "uri.exact") == "/orders") {
                        assert_eq!(
                            s(route, "retries.attempts").and_then(Value::as_u64),
                            Some(0),
                            "{vat} route {}: {method} is not idempotent and must say attempts: 0",
                            str_at(route, "name")
                        );
                    }
                }
            }
        }
        // Every selector matches a workload: the chart's pods, or the ingress gateway.
        let pods: Vec<BTreeMap<String, String>> =
            of_kind(docs, "Deployment").map(|d| label_map(s(d, "spec.template.metadata.labels"))).collect();
        let gateway_selectors: Vec<BTreeMap<String, String>> = gateways.values().map(|g| label_map(s(g, "spec.selector"))).collect();
        for k in ["RequestAuthentication", "AuthorizationPolicy", "PeerAuthentication", "Telemetry"] {
            for obj in of_kind(docs, k) {
                let sel = label_map(s(obj, "spec.selector.matchLabels"));
                assert!(
                    pods.iter().any(|p| is_subset(&sel, p)) || gateway_selectors.contains(&sel),
                    "{at}: {k} {} selects no workload ({sel:?})",
                    name(obj)
                );
            }
        }
    }
}

/// One token of the anchored regexes the public VirtualService uses.
enum Tok {
    Lit(char),
    /// `[^/]+`
    Segment,
    /// `(a|b|...)` of literals
    Alt(Vec<String>),
}

/// Parses `^...$` made of literals, `[^/]+` and `(a|b)`; anything else is refused
/// (extend this when the chart uses more).
fn parse_re(re: &str) -> Vec<Tok> {
    let body = re.strip_prefix('^').and_then(|r| r.strip_suffix('$')).unwrap_or_else(|| panic!("regex {re:?} is not anchored"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("[^/]+") {
            out.push(Tok::Segment);
            rest = r;
        } else if c == '(' {
            let end = rest.find(')').unwrap_or_else(|| panic!("regex {re:?}: unclosed group"));
            out.push(Tok::Alt(rest[1..end].split('|').map(String::from).collect()));
            rest = &rest[end + 1..];
        } else {
            assert!(c.is_alphanumeric() || "/-_".contains(c), "regex {re:?}: unsupported {c:?}");
            out.push(Tok::Lit(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn re_match(toks: &[Tok], text: &str) -> bool {
    match toks.split_first() {
        None => text.is_empty(),
        Some((Tok::Lit(c), rest)) => text.strip_prefix(*c).is_some_and(|t| re_match(rest, t)),
        Some((Tok::Alt(alts), rest)) => alts.iter().any(|a| text.strip_prefix(a.as_str()).is_some_and(|t| re_match(rest, t))),
        Some((Tok::Segment, rest)) => {
            let seg = text.find('/').unwrap_or(text.len());
            (1..=seg).any(|n| re_match(rest, &text[n..]))
        }
    }
}

fn uri_matches(m: &Value, path: &str) -> bool {
    if let Some(e) = s(m, "uri.exact").and_then(Value::as_str) {
        return e == path;
    }
    if let Some(p) = s(m, "uri.prefix").and_then(Value::as_str) {
        return path.starts_with(p);
    }
    s(m, "uri.regex").and_then(Value::as_str).is_some_and(|r| re_match(&parse_re(r), path))
}

/// The two edges agree: every operation of the API Gateway definition
/// (deploy/aws, generated from the contracts) is routed by the public
/// VirtualService, and every public route is an operation there.
#[test]
fn the_api_gateway_and_the_public_virtual_service_publish_the_same_routes() {
    assert!(re_match(&parse_re("^/items/[^/]+/(restock|adjustments)$"), "/items/a1/restock"));
    assert!(!re_match(&parse_re("^/items/[^/]+$"), "/items/a/b"));
    let text = std::fs::read_to_string(repo_root().join("deploy/aws/apigateway-http-api.yaml")).unwrap();
    let api: Value = serde_yaml::from_str(&text).unwrap();
    let mut ops: Vec<(String, String)> = Vec::new();
    for (route, item) in api["paths"].as_mapping().unwrap() {
        // A concrete path: each {param} becomes a segment value.
        let sample: String =
            route.as_str().unwrap().split('/').map(|seg| if seg.starts_with('{') { "p1" } else { seg }).collect::<Vec<_>>().join("/");
        for method in item.as_mapping().unwrap().keys() {
            ops.push((method.as_str().unwrap().to_uppercase(), sample.clone()));
        }
    }
    assert!(!ops.is_empty());
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let public = of_kind(docs, "VirtualService").find(|vs| name(vs).ends_with("-public")).unwrap();
        let matches: Vec<&Value> = s(public, "spec.http")
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .flat_map(|r| s(r, "match").and_then(Value::as_sequence).unwrap().iter())
            .collect();
        for (method, path) in &ops {
            assert!(
                matches.iter().any(|m| str_at(m, "method.exact") == method && uri_matches(m, path)),
                "{}: {method} {path} is at the API Gateway but not routed by the public VirtualService",
                label(v)
            );
        }
        for m in &matches {
            let method = str_at(m, "method.exact");
            assert!(
                ops.iter().any(|(om, path)| om == method && uri_matches(m, path)),
                "{}: the public VirtualService routes {method} {:?}, which the API Gateway does not publish",
                label(v),
                s(m, "uri")
            );
        }
    }
}

/// `deploy/aws/eksctl-cluster.yaml` fits the chart's EKS values: OIDC for IRSA, the
/// add-ons, managed node groups in the cluster's zones, a Kubernetes version the chart
/// accepts, the VPC the NetworkPolicies admit, and one IRSA role per service whose
/// ServiceAccount is the one the chart renders and whose name is the role ARN in
/// values-eks.yaml; the LBC's ServiceAccount is the one the README's install uses.
#[test]
fn eksctl_cluster_config_matches_the_chart() {
    let text = std::fs::read_to_string(repo_root().join("deploy/aws/eksctl-cluster.yaml")).unwrap();
    let cfg: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(str_at(&cfg, "apiVersion"), "eksctl.io/v1alpha5");
    assert_eq!(str_at(&cfg, "kind"), "ClusterConfig");
    assert_eq!(s(&cfg, "iam.withOIDC").and_then(Value::as_bool), Some(true), "IRSA needs the OIDC provider");
    let version = str_at(&cfg, "metadata.version");
    let minor: u32 = version.strip_prefix("1.").and_then(|m| m.parse().ok()).unwrap_or_else(|| panic!("metadata.version {version:?}"));
    let chart: Value = serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap()).unwrap();
    let min_minor: u32 =
        str_at(&chart, "kubeVersion").trim_start_matches(">=").trim_start_matches("1.").split('.').next().unwrap().parse().unwrap();
    assert!(minor >= min_minor, "EKS {version} is older than the chart's kubeVersion");
    let addons: BTreeSet<&str> = s(&cfg, "addons").and_then(Value::as_sequence).unwrap().iter().map(|a| str_at(a, "name")).collect();
    for a in ["vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver", "eks-pod-identity-agent"] {
        assert!(addons.contains(a), "add-on {a} missing: {addons:?}");
    }
    let zones: BTreeSet<&str> =
        s(&cfg, "availabilityZones").and_then(Value::as_sequence).unwrap().iter().map(|z| z.as_str().unwrap()).collect();
    let groups = s(&cfg, "managedNodeGroups").and_then(Value::as_sequence).unwrap();
    assert!(!groups.is_empty());
    for g in groups {
        assert!(g["minSize"].as_u64().unwrap() >= 2, "node group {}: the PDBs and zone spread need >= 2 nodes", str_at(g, "name"));
        for z in g["availabilityZones"].as_sequence().into_iter().flatten() {
            assert!(zones.contains(z.as_str().unwrap()), "node group zone {z:?} is not a cluster zone");
        }
    }
    let eks: Value = serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values-eks.yaml")).unwrap()).unwrap();
    let region = str_at(&cfg, "metadata.region");
    assert!(str_at(&eks, "image.registry").contains(&format!(".{region}.")), "values-eks.yaml's ECR is not in {region}");
    let cidr = str_at(&cfg, "vpc.cidr");
    for key in ["networkPolicy.backendCidrs", "networkPolicy.nodeCidrs"] {
        let list = s(&eks, key).and_then(Value::as_sequence).unwrap();
        assert!(list.iter().any(|c| c.as_str() == Some(cidr)), "values-eks.yaml {key} does not admit the VPC {cidr}");
    }
    let accounts = s(&cfg, "iam.serviceAccounts").and_then(Value::as_sequence).unwrap();
    let lbc = accounts.iter().find(|a| str_at(a, "metadata.name") == "aws-load-balancer-controller").expect("the LBC's IRSA account");
    assert_eq!(str_at(lbc, "metadata.namespace"), "kube-system");
    assert_eq!(s(lbc, "wellKnownPolicies.awsLoadBalancerController").and_then(Value::as_bool), Some(true));
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains("serviceAccount.create=false") && readme.contains("serviceAccount.name=aws-load-balancer-controller"),
        "README's LBC install must use the account eksctl creates"
    );
    let Some(docs) = rendered(Some("values-eks.yaml")) else { return };
    let rendered_accounts: BTreeMap<&str, &Value> = of_kind(docs, "ServiceAccount").map(|a| (name(a), a)).collect();
    let mut roles = 0;
    for a in accounts.iter().filter(|a| str_at(a, "metadata.namespace") == NAMESPACE) {
        let sa = str_at(a, "metadata.name");
        let obj =
            rendered_accounts.get(sa).unwrap_or_else(|| panic!("eksctl role for ServiceAccount {sa}, which the chart does not render"));
        assert_eq!(s(a, "roleOnly").and_then(Value::as_bool), Some(true), "{sa}: the chart creates the ServiceAccount (roleOnly)");
        let arn = s(obj, "metadata.annotations").and_then(|m| m.get("eks.amazonaws.com/role-arn")).and_then(Value::as_str).unwrap_or("");
        assert!(
            arn.ends_with(&format!(":role/{}", str_at(a, "roleName"))),
            "{sa}: annotated role {arn:?} is not eksctl's {}",
            str_at(a, "roleName")
        );
        roles += 1;
    }
    let annotated = rendered_accounts
        .values()
        .filter(|a| s(a, "metadata.annotations").and_then(|m| m.get("eks.amazonaws.com/role-arn")).is_some())
        .count();
    assert_eq!(roles, annotated, "every ServiceAccount values-eks.yaml gives a role has its eksctl role, and no more");
    assert_eq!(roles, SERVICES.len());
}

/// The environment the chart gives one service: its -env ConfigMap and, when the
/// chart renders it, its Secret. An existing (external) Secret is documented to
/// hold APP_DATABASE__URL, APP_HTTP__CURSOR_KEY and APP_TELEMETRY__TRACES__TRUST_KEY;
/// placeholders stand for them.
fn env_of(docs: &[Value], service: &str) -> BTreeMap<String, String> {
    let deployment = of_kind(docs, "Deployment").find(|d| name(d).ends_with(&format!("-{service}"))).unwrap();
    env_of_pod(docs, s(deployment, "spec.template.spec").unwrap())
}

/// The environment of a pod spec's first container (its ConfigMaps and Secret).
fn env_of_pod(docs: &[Value], pod: &Value) -> BTreeMap<String, String> {
    let container = &s(pod, "containers").unwrap()[0];
    let mut env = BTreeMap::new();
    for from in s(container, "envFrom").and_then(Value::as_sequence).unwrap() {
        if let Some(cm) = s(from, "configMapRef.name").and_then(Value::as_str) {
            let obj = of_kind(docs, "ConfigMap").find(|c| name(c) == cm).unwrap_or_else(|| panic!("ConfigMap {cm} not rendered"));
            env.extend(label_map(s(obj, "data")));
        }
        if let Some(sec) = s(from, "secretRef.name").and_then(Value::as_str) {
            match of_kind(docs, "Secret").find(|c| name(c) == sec) {
                Some(obj) => env.extend(label_map(s(obj, "stringData"))),
                None => {
                    for key in ["APP_DATABASE__URL", "APP_HTTP__CURSOR_KEY", TRUST_KEY] {
                        env.insert(key.into(), format!("(from the existing Secret {sec})"));
                    }
                }
            }
        }
    }
    env
}

#[test]
fn required_keys_are_derived_from_base_yaml() {
    // The derivation itself: what a cluster must override in order's base.yaml.
    let order = required_keys("order");
    for k in ["http.host", "database.url", "kafka.brokers", "inventory.base_url", "auth.issuer", "auth.jwks.file", "telemetry.environment"]
    {
        assert!(order.contains(k), "{k} missing from {order:?}");
    }
    assert!(required_keys("inventory").contains("faults.file"));
    assert!(!order.contains("http.port") && !order.contains("saga.timeout_seconds"));
}

#[test]
fn the_chart_sets_only_real_settings_and_every_required_one() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        for service in SERVICES {
            let at = format!("{} {service}", label(v));
            let env = env_of(docs, service);
            settings::assert_required_set(&at, service, &env);
            // The config directory the chart mounts, written out, then the service's
            // own Settings type loaded from it with the chart's environment.
            let deployment = of_kind(docs, "Deployment").find(|d| name(d).ends_with(&format!("-{service}"))).unwrap();
            let cm_name = s(deployment, "spec.template.spec.volumes")
                .and_then(Value::as_sequence)
                .unwrap()
                .iter()
                .find(|vol| str_at(vol, "name") == "config")
                .map(|vol| str_at(vol, "configMap.name").to_owned())
                .unwrap();
            let cm = of_kind(docs, "ConfigMap").find(|c| name(c) == cm_name).unwrap();
            assert_eq!(env.get("APP_CONFIG_DIR").map(String::as_str), Some("/etc/glasshouse/config"), "{at}");
            let mut vars = env.clone();
            if vars["APP_DATABASE__URL"].starts_with("(from") {
                vars.insert("APP_DATABASE__URL".into(), "postgres://placeholder@db:5432/x".into());
            }
            if let Err(e) = settings::load(&at, service, &label_map(s(cm, "data")), vars.clone()) {
                panic!("{e}");
            }
            // The migration Job: the same settings from its own hook copies.
            if let Some(job) = of_kind(docs, "Job").find(|j| name(j).ends_with(&format!("-{service}-migrate"))) {
                let at = format!("{at} migration Job");
                let job_env = env_of_pod(docs, s(job, "spec.template.spec").unwrap());
                assert_eq!(job_env, env, "{at}: its settings differ from the Deployment's");
                let pod = s(job, "spec.template.spec").unwrap();
                let files_cm = s(pod, "volumes")
                    .and_then(Value::as_sequence)
                    .unwrap()
                    .iter()
                    .find(|vol| str_at(vol, "name") == "config")
                    .map(|vol| str_at(vol, "configMap.name").to_owned())
                    .unwrap();
                let files = label_map(s(of_kind(docs, "ConfigMap").find(|c| name(c) == files_cm).unwrap(), "data"));
                let config: BTreeMap<String, String> =
                    files.into_iter().filter(|(k, _)| k == "base.yaml" || k == "kubernetes.yaml").collect();
                if let Err(e) = settings::load(&at, service, &config, vars) {
                    panic!("{e}");
                }
            }
        }
    }
}

/// The key that signs service-to-service `traceparent`s (telemetry/README.md).
const TRUST_KEY: &str = "APP_TELEMETRY__TRACES__TRUST_KEY";

/// Without one shared trust key, Inventory would start a new (linked) trace for
/// each call from Order: one order would no longer be one trace.
#[test]
fn every_service_gets_the_same_trace_trust_key() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let keys: BTreeMap<&str, String> = SERVICES
            .iter()
            .map(|svc| {
                let env = env_of(docs, svc);
                let key = env.get(TRUST_KEY).unwrap_or_else(|| panic!("{} {svc}: {TRUST_KEY} is not set", label(v))).clone();
                (*svc, key)
            })
            .collect();
        let distinct: BTreeSet<&String> = keys.values().filter(|k| !k.starts_with("(from")).collect();
        assert!(distinct.len() <= 1, "{}: the services' trust keys differ: {keys:?}", label(v));
    }
}

/// The chart's files/ entries resolve to the repository's files, byte for byte.
#[test]
fn the_charts_files_are_the_repositorys_files() {
    let chart = chart_dir().join("files");
    let pairs = [("alerts", "alerts/rules"), ("dashboards", "dashboards/grafana")];
    for (inside, repo) in pairs {
        let repo_dir = repo_root().join(repo);
        let mut names: Vec<_> = std::fs::read_dir(&repo_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        let mut chart_names: Vec<_> = std::fs::read_dir(chart.join(inside)).unwrap().map(|e| e.unwrap().file_name()).collect();
        chart_names.sort();
        assert_eq!(names, chart_names, "files/{inside} and {repo} list different files");
        for n in names {
            assert_eq!(
                std::fs::read(chart.join(inside).join(&n)).unwrap(),
                std::fs::read(repo_dir.join(&n)).unwrap(),
                "files/{inside}/{n:?} differs from {repo}"
            );
        }
    }
    for service in SERVICES {
        assert_eq!(
            std::fs::read(chart.join(format!("config/{service}/base.yaml"))).unwrap(),
            std::fs::read(repo_root().join(format!("services/{service}/config/base.yaml"))).unwrap(),
            "the chart's base.yaml of {service} differs"
        );
    }
    assert_eq!(
        std::fs::read(chart.join("alertmanager.yml")).unwrap(),
        std::fs::read(repo_root().join("deploy/local/config/alertmanager.yml")).unwrap()
    );
}

/// The rendered objects carry exactly the repository's rules and dashboards.
#[test]
fn rendered_rules_and_dashboards_equal_the_repositorys_files() {
    for v in VALUES {
        let Some(docs) = rendered(v) else { return };
        let at = label(v);
        let rule_files: BTreeSet<String> = std::fs::read_dir(repo_root().join("alerts/rules"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        let mut seen = BTreeSet::new();
        for rule in of_kind(docs, "PrometheusRule") {
            let source = s(rule, "metadata.annotations").and_then(|a| a.get("glasshouse.io/source")).and_then(Value::as_str).unwrap();
            let file: Value = serde_yaml::from_str(&std::fs::read_to_string(repo_root().join(source)).unwrap()).unwrap();
            assert_eq!(s(rule, "spec").unwrap(), &file, "{at}: PrometheusRule {} differs from {source}", name(rule));
            seen.insert(source.trim_start_matches("alerts/rules/").to_owned());
        }
        assert_eq!(seen, rule_files, "{at}: one PrometheusRule per alerts/rules/*.yaml");

        let dash_files: BTreeSet<String> = std::fs::read_dir(repo_root().join("dashboards/grafana"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".json"))
            .collect();
        let mut seen = BTreeSet::new();
        for cm in of_kind(docs, "ConfigMap").filter(|c| s(c, "metadata.labels.grafana_dashboard").is_some()) {
            assert_eq!(str_at(cm, "metadata.labels.grafana_dashboard"), "1", "{at}");
            for (file, text) in label_map(s(cm, "data")) {
                let repo = std::fs::read_to_string(repo_root().join("dashboards/grafana").join(&file)).unwrap();
                assert_eq!(
                    text.trim_end(),
                    repo.trim_end(),
                    "{at}: dashboard ConfigMap {} differs from dashboards/grafana/{file}",
                    name(cm)
                );
                seen.insert(file);
            }
        }
        assert_eq!(seen, dash_files, "{at}: one dashboard ConfigMap per dashboards/grafana/*.json");

        for service in SERVICES {
            let cm = of_kind(docs, "ConfigMap").find(|c| name(c).ends_with(&format!("-{service}-config"))).unwrap();
            let repo = std::fs::read_to_string(repo_root().join(format!("services/{service}/config/base.yaml"))).unwrap();
            let data = label_map(s(cm, "data"));
            assert_eq!(data["base.yaml"].trim_end(), repo.trim_end(), "{at}: the mounted base.yaml of {service} differs");
        }
    }
}

/// The images' Dockerfile (not built here: no Docker engine): multi-stage, a
/// distroless runtime with no shell or package step after it, the chart's uid,
/// an exec-form entrypoint, every base image pinned to a version.
#[test]
fn the_dockerfile_follows_the_image_policy() {
    let text = std::fs::read_to_string(repo_root().join("deploy/docker/Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let froms: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.starts_with("FROM ")).map(|(i, _)| i).collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    let runtime = &lines[*froms.last().unwrap()..];
    assert!(!runtime.iter().any(|l| l.starts_with("RUN ")), "the runtime stage must not run anything (no shell there)");
    assert!(runtime.contains(&"USER 65532:65532"), "the runtime runs as uid 65532 (the chart's runAsUser)");
    assert!(runtime.iter().any(|l| l.starts_with("ENTRYPOINT [\"")), "exec-form ENTRYPOINT expected");
    let args: BTreeMap<&str, &str> = lines.iter().filter_map(|l| l.strip_prefix("ARG ")?.split_once('=')).collect();
    assert!(args["DISTROLESS"].starts_with("gcr.io/distroless/"), "distroless runtime expected");
    assert!(!args["DISTROLESS"].contains("debug"), "the :debug distroless images have a shell");
    for (name, image) in &args {
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest", "ARG {name}={image}: pin a version");
    }
}

// --- The load runner as an indexed Job (templates/loadtest-job.yaml, `loadtest.enabled`,
// off by default, so the tests above see no Job): the same pod policy as the services.

fn render_with(helm: &Path, values: Option<&str>, set: &[&str]) -> Result<Vec<Value>, String> {
    let mut args = vec!["template", RELEASE, "--namespace", NAMESPACE];
    for kv in set {
        args.extend(["--set", *kv]);
    }
    let out = helm_cmd(helm, &args, values);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).filter(|d| !d.is_null()).collect())
}

#[test]
fn the_loadtest_job_follows_the_pod_policy_and_splits_the_rate() {
    let Some(helm) = helm() else { return };
    let set = ["loadtest.enabled=true", "loadtest.tokenSecret.name=lt-tokens", "loadtest.parallelism=3", "loadtest.rate=12"];
    let scenario = std::fs::read_to_string(repo_root().join("loadtest/scenarios/order-flow.yaml")).unwrap();
    for v in VALUES {
        let docs = render_with(&helm, v, &set).unwrap_or_else(|e| panic!("{}: {e}", label(v)));
        let jobs: Vec<_> = of_kind(&docs, "Job")
            .filter(|j| label_map(s(j, "metadata.labels")).get("app.kubernetes.io/component").map(String::as_str) == Some("loadtest"))
            .collect();
        assert_eq!(jobs.len(), 1, "{}: one load-test Job", label(v));
        let job = jobs[0];
        let at = format!("{} Job {}", label(v), name(job));
        assert_eq!(str_at(job, "spec.completionMode"), "Indexed", "{at}");
        assert_eq!(s(job, "spec.parallelism").and_then(Value::as_u64), Some(3), "{at}");
        assert_eq!(s(job, "spec.completions").and_then(Value::as_u64), Some(3), "{at}");
        let pod = s(job, "spec.template.spec").unwrap();
        assert_eq!(str_at(pod, "restartPolicy"), "Never", "{at}");
        let sa = str_at(pod, "serviceAccountName");
        assert!(of_kind(&docs, "ServiceAccount").any(|a| name(a) == sa) && sa != "default", "{at}: own ServiceAccount, found {sa:?}");
        assert_eq!(s(pod, "securityContext.runAsNonRoot").and_then(Value::as_bool), Some(true), "{at}: pod runAsNonRoot");
        assert_eq!(str_at(pod, "securityContext.seccompProfile.type"), "RuntimeDefault", "{at}: pod seccomp");
        let containers = s(pod, "containers").and_then(Value::as_sequence).unwrap();
        assert_eq!(containers.len(), 1, "{at}");
        let c = &containers[0];
        for r in ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"] {
            assert!(s(c, &format!("resources.{r}")).is_some(), "{at}: no resources.{r}");
        }
        let sc = s(c, "securityContext").unwrap();
        assert_eq!(s(sc, "runAsNonRoot").and_then(Value::as_bool), Some(true), "{at}: runAsNonRoot");
        assert_eq!(s(sc, "readOnlyRootFilesystem").and_then(Value::as_bool), Some(true), "{at}: readOnlyRootFilesystem");
        assert_eq!(s(sc, "allowPrivilegeEscalation").and_then(Value::as_bool), Some(false), "{at}: allowPrivilegeEscalation");
        let dropped = s(sc, "capabilities.drop").and_then(Value::as_sequence).cloned().unwrap_or_default();
        assert!(dropped.iter().any(|c| c.as_str() == Some("ALL")), "{at}: capabilities must drop ALL");
        assert_eq!(str_at(sc, "seccompProfile.type"), "RuntimeDefault", "{at}: seccomp");
        let image = str_at(c, "image");
        let tag = image.rsplit_once('/').map_or(image, |(_, t)| t);
        assert!(tag.split_once(':').is_some_and(|(_, t)| !t.is_empty() && t != "latest"), "{at}: image {image:?} must be pinned");

        // Each pod drives rate/N and writes its own part.
        let args: Vec<&str> = s(c, "args").and_then(Value::as_sequence).unwrap().iter().filter_map(Value::as_str).collect();
        assert!(args.contains(&"--rate=4"), "{at}: 12/s over 3 pods is 4/s each: {args:?}");
        assert!(args.contains(&"--out=/results/part-$(PART_INDEX)") && args.contains(&"--print-summary"), "{at}: {args:?}");
        let env = s(c, "env").and_then(Value::as_sequence).unwrap();
        let index = env.iter().find(|e| str_at(e, "name") == "PART_INDEX").unwrap();
        assert_eq!(
            str_at(index, "valueFrom.fieldRef.fieldPath"),
            "metadata.annotations['batch.kubernetes.io/job-completion-index']",
            "{at}"
        );
        for svc in of_kind(&docs, "Service") {
            let host = format!("{}.{NAMESPACE}.svc.cluster.local", name(svc));
            assert!(
                args.iter().any(|a| a.starts_with("--target=") && a.contains(&format!("http://{host}:"))),
                "{at}: no target for {host}"
            );
            assert!(args.contains(&format!("--allow-host={host}").as_str()), "{at}: {host} not allowed");
        }
        // The scenario is the repository's file, through the files/loadtest symlink.
        let cm_name = s(pod, "volumes")
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .find_map(|v| s(v, "configMap.name"))
            .and_then(Value::as_str)
            .unwrap();
        let cm = of_kind(&docs, "ConfigMap").find(|m| name(m) == cm_name).unwrap();
        assert_eq!(
            s(cm, "data").and_then(|d| d.get("order-flow.yaml")).and_then(Value::as_str).unwrap_or("").trim_end(),
            scenario.trim_end(),
            "{at}: the scenario ConfigMap differs from loadtest/scenarios/order-flow.yaml"
        );

        // Behind the default deny: a policy with egress selects the runner's pods, and each
        // service admits them; with Istio, its identity may call each service's flow routes.
        let pod_labels = label_map(s(job, "spec.template.metadata.labels"));
        let policies: Vec<_> = of_kind(&docs, "NetworkPolicy").collect();
        if !policies.is_empty() {
            assert!(
                policies
                    .iter()
                    .any(|p| is_subset(&label_map(s(p, "spec.podSelector.matchLabels")), &pod_labels) && s(p, "spec.egress").is_some()),
                "{at}: no NetworkPolicy gives the runner's pods egress"
            );
            for svc in of_kind(&docs, "Deployment") {
                let svc_labels = label_map(s(svc, "spec.template.metadata.labels"));
                let admits = policies.iter().any(|p| {
                    is_subset(&label_map(s(p, "spec.podSelector.matchLabels")), &svc_labels)
                        && s(p, "spec.ingress").and_then(Value::as_sequence).is_some_and(|rules| {
                            rules
                                .iter()
                                .flat_map(|r| s(r, "from").and_then(Value::as_sequence).cloned().unwrap_or_default())
                                .any(|f| is_subset(&label_map(s(&f, "podSelector.matchLabels")), &pod_labels))
                        })
                });
                assert!(admits, "{at}: {} does not admit the runner's pods", name(svc));
            }
        }
        if of_kind(&docs, "PeerAuthentication").next().is_some() {
            let principal = format!("cluster.local/ns/{NAMESPACE}/sa/{sa}");
            let allowed = of_kind(&docs, "AuthorizationPolicy").filter(|p| serde_yaml::to_string(p).unwrap().contains(&principal)).count();
            assert_eq!(allowed, of_kind(&docs, "Deployment").count(), "{at}: one AuthorizationPolicy per service for {principal}");
        }
    }
    // The tokens are required: without them the Job could not place an order.
    let e = render_with(&helm, None, &["loadtest.enabled=true"]).unwrap_err();
    assert!(e.contains("loadtest.tokenSecret.name"), "{e}");
}
