//! The Helm chart installed into a real Kubernetes API server: runs
//! `deploy/helm/apiserver-check.sh` (etcd + kube-apiserver built from the Go
//! module proxy, cached; `make test` builds them through
//! deploy/local/test-tools.sh), which registers the Istio and Prometheus
//! Operator CRDs and `helm install`s the chart with each values file, plus the
//! defaults with the load-test Job on, failing on any refused object or any
//! unknown/duplicate-field warning. Here the objects each install stored must
//! number exactly what `helm template` renders for the same values.
//!
//! On free ports (parallel-safe), bounded: the script waits at most 120 s for
//! each server, and this test gives it 6 minutes in all.
//! Tools not built: a loud SKIPPED message, unless `CI` is set.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use glasshouse_tests::stack::{home, repo_root};
use serde::Deserialize;

const DEADLINE: Duration = Duration::from_secs(360);

/// The cases of the script, with the same helm arguments.
fn cases() -> Vec<(&'static str, Vec<String>)> {
    let chart = repo_root().join("deploy/helm/glasshouse");
    let f = |v: &str| vec!["-f".to_string(), chart.join(v).display().to_string()];
    vec![
        ("default", vec![]),
        ("local", f("values-local.yaml")),
        ("eks", f("values-eks.yaml")),
        (
            "loadtest",
            vec![
                "--set".into(),
                "loadtest.enabled=true".into(),
                "--set".into(),
                "loadtest.tokenSecret.name=glasshouse-loadtest-tokens".into(),
            ],
        ),
    ]
}

/// The kube-apiserver version the tools module pins (what helm install sees).
fn kube_version() -> String {
    let go_mod = std::fs::read_to_string(repo_root().join("deploy/local/tools/kube-apiserver/go.mod")).unwrap();
    let v = go_mod.lines().find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes ")).expect("k8s.io/kubernetes in go.mod");
    v.trim().trim_start_matches('v').to_string()
}

/// Ports the script can take: the API port, and an etcd port whose +10 (peer) is free too.
fn free_ports() -> (u16, u16) {
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    let any = || TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let api = any();
    for _ in 0..50 {
        let etcd = any();
        if etcd < 65000 && etcd != api && free(etcd + 10) && etcd + 10 != api {
            return (api, etcd);
        }
    }
    panic!("no free port pair for etcd");
}

fn rendered_count(helm: &Path, case: &str, args: &[String]) -> usize {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("apiserver-helm-home");
    let release = format!("glasshouse-{case}");
    let out = Command::new(helm)
        .args(["template", &release])
        .arg(repo_root().join("deploy/helm/glasshouse"))
        .args(["--namespace", &release, "--kube-version", &kube_version()])
        .args(args)
        .env("HELM_CACHE_HOME", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_DATA_HOME", scratch.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "helm template {case}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|d| d.get("kind").is_some())
        .count()
}

#[test]
fn a_real_api_server_accepts_every_object_helm_renders() {
    let home = home().expect("the stack's home directory");
    let bins: Vec<PathBuf> = ["helm", "etcd", "kube-apiserver"].iter().map(|b| home.join("bin").join(b)).collect();
    if let Some(missing) = bins.iter().find(|b| !b.is_file()) {
        let how = "build them with `deploy/local/stack install helm etcd kube-apiserver` (make test does, via deploy/local/test-tools.sh)";
        assert!(std::env::var_os("CI").is_none(), "{} is missing under CI: {how}", missing.display());
        eprintln!("\n!!!!!!!! SKIPPED: real API server check: {} is not built; {how} !!!!!!!!\n", missing.display());
        return;
    }
    let (api, etcd) = free_ports();
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo_root().join("deploy/helm/apiserver-check.sh"))
        .env("GH_KUBE_API_PORT", api.to_string())
        .env("GH_KUBE_ETCD_PORT", etcd.to_string())
        .env("GLASSHOUSE_HOME", &home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > DEADLINE {
            // SIGTERM: the script's exit trap stops etcd and kube-apiserver.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
            panic!("apiserver-check.sh did not finish within {DEADLINE:?}; stderr:\n{}", err_reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (out_reader.join().unwrap(), err_reader.join().unwrap());
    eprintln!("{stderr}\n{stdout}apiserver-check.sh: {:.1}s", started.elapsed().as_secs_f64());
    assert!(status.success(), "apiserver-check.sh failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}");

    // "default   60 objects accepted by kube-apiserver"
    let accepted: BTreeMap<String, usize> = stdout
        .lines()
        .filter(|l| l.contains("objects accepted by kube-apiserver"))
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().to_string(), w.next().unwrap().parse().unwrap())
        })
        .collect();
    let helm = &bins[0];
    for (case, args) in cases() {
        let want = rendered_count(helm, case, &args);
        assert_eq!(accepted.get(case), Some(&want), "{case}: objects stored by kube-apiserver vs rendered by helm template: {accepted:?}");
        eprintln!("{case}: {want} objects rendered, {want} accepted");
    }
    assert!(accepted["loadtest"] > accepted["default"], "the load-test Job adds objects: {accepted:?}");
}
