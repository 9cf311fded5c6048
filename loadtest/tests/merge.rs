//! `glasshouse-loadtest merge`: percentiles of merged parts are those of one
//! histogram of every sample (never averaged percentiles), checked first on
//! known samples, then end to end with the real runner and binary.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Behaviour, TestServer, hello_config, temp_dir, write};
use glasshouse_loadtest::config::{Config, Overrides};
use glasshouse_loadtest::merge::merge;
use glasshouse_loadtest::report::{RunFacts, Summary, decode_histogram};
use glasshouse_loadtest::sample::{Outcome, Sample, TraceId};
use glasshouse_loadtest::stats::Recorder;
use hdrhistogram::Histogram;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_glasshouse-loadtest");

const TWO_STEPS: &str = r#"
scenario: known
targets: {app: "http://127.0.0.1:1"}
load: {model: constant_rate, rate: 10, duration: 4s}
flows:
  - name: f
    steps:
      - {step: http, name: fast, target: app, path: /a}
      - {step: http, name: slow, target: app, path: /b}
thresholds:
  - "http_req_duration p99 < 50ms"
  - "http_req_duration{step:fast} p90 < 10ms"
  - "error_rate < 5%"
metrics: {enabled: false}
"#;

/// A sample of known latency; `n` places it in one of four 1 s buckets.
fn sample(t0: Instant, n: u64, step: usize, us: u64) -> Sample {
    Sample {
        step,
        latency: Duration::from_micros(us),
        finished: t0 + Duration::from_millis((n % 4) * 1000 + 10),
        outcome: if n.is_multiple_of(50) { Outcome::Http5xx } else { Outcome::Success },
        status: Some(if n.is_multiple_of(50) { 503 } else { 200 }),
        trace_id: TraceId(u128::from(n) + 1),
    }
}

/// Part A is fast (0.2..5 ms), part B slow (5..120 ms): averaging their
/// percentiles would be far from the percentiles of all samples together.
fn latency_us(part: usize, n: u64) -> u64 {
    // A fixed linear congruential sequence: the same "random" samples every run.
    let x = (n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) >> 33) % 10_000;
    if part == 0 { 200 + x * 480 / 1000 } else { 5_000 + x * 115 / 10 }
}

fn summary_of(cfg: &Config, rec: &Recorder) -> Summary {
    let facts = RunFacts {
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        elapsed: Duration::from_secs(4),
        interrupted: false,
        iterations_interrupted: 0,
        warnings: vec![],
    };
    let s = Summary::build(cfg, &rec.snapshot(), facts);
    // Through JSON and back, as `merge` reads it from the pods' files.
    serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap()
}

#[test]
fn merged_parts_have_the_percentiles_of_one_histogram_of_all_samples() {
    let cfg = Config::parse(TWO_STEPS, Path::new("."), &Overrides::default()).unwrap();
    let t0 = Instant::now();
    let names = cfg.step_names();
    let new = || Recorder::new(t0, Duration::from_secs(1), names.clone(), 5, None);
    let (all, parts) = (new(), [new(), new()]);
    let mut exact: Vec<u64> = Vec::new();
    for (part, rec) in parts.iter().enumerate() {
        for n in 0..4000u64 {
            let us = latency_us(part, n);
            let s = sample(t0, n, (n % 2) as usize, us);
            all.record(&s, Some("boom"));
            rec.record(&s, Some("boom"));
            for r in [&all, rec] {
                r.iteration_started(t0, Some(Duration::from_micros(n % 900 + 1)));
                r.iteration_finished(Duration::from_micros(us * 2), false);
            }
            exact.push(us);
        }
    }
    let one = summary_of(&cfg, &all);
    let (a, b) = (summary_of(&cfg, &parts[0]), summary_of(&cfg, &parts[1]));
    let merged = merge(&[a.clone(), b.clone()], &["a".into(), "b".into()]).unwrap();

    // Exactly the single histogram's numbers: HDR buckets add without loss.
    assert_eq!(merged.http_req_duration_ms, one.http_req_duration_ms);
    assert_eq!(merged.iteration_duration_ms, one.iteration_duration_ms);
    assert_eq!(merged.scheduling_lag_ms, one.scheduling_lag_ms);
    for (m, o) in merged.steps.iter().zip(&one.steps) {
        assert_eq!((&m.name, m.requests, m.errors, &m.latency_ms), (&o.name, o.requests, o.errors, &o.latency_ms));
        assert_eq!(m.outcomes, o.outcomes);
        assert_eq!(m.status_codes, o.status_codes);
        let (ms, os): (Vec<f64>, Vec<f64>) =
            (m.slowest.iter().map(|s| s.latency_ms).collect(), o.slowest.iter().map(|s| s.latency_ms).collect());
        assert_eq!(ms, os, "the slowest requests of {}", m.name);
    }
    assert_eq!(merged.histograms.as_ref().unwrap().steps, one.histograms.as_ref().unwrap().steps, "the same encoded histograms");
    assert_eq!(merged.totals.requests, 8_000);
    assert_eq!(merged.totals.errors, one.totals.errors);
    assert_eq!(merged.totals.iterations_completed, one.totals.iterations_completed);
    // The time series too: per bucket, counts and percentiles of the merged bucket histograms.
    assert_eq!(merged.timeseries.points.len(), one.timeseries.points.len());
    for (m, o) in merged.timeseries.points.iter().zip(&one.timeseries.points) {
        assert_eq!(
            (m.requests, m.errors, m.iterations_started, m.p50_ms, m.p99_ms, m.max_ms),
            (o.requests, o.errors, o.iterations_started, o.p50_ms, o.p99_ms, o.max_ms)
        );
        assert_eq!(m.steps.keys().collect::<Vec<_>>(), o.steps.keys().collect::<Vec<_>>());
        for (k, sp) in &m.steps {
            assert_eq!(
                (sp.requests, sp.errors, sp.p50_ms, sp.p99_ms),
                (o.steps[k].requests, o.steps[k].errors, o.steps[k].p50_ms, o.steps[k].p99_ms)
            );
        }
    }

    // And within HDR precision (3 significant digits: buckets of at most 0.1%, plus the
    // rank rounding between neighbouring samples) of the exact percentiles of the samples.
    exact.sort_unstable();
    let m = merged.http_req_duration_ms.as_ref().unwrap();
    for (q, got) in [(0.5, m.p50), (0.9, m.p90), (0.99, m.p99), (0.999, m.p99_9)] {
        let want = exact[((q * exact.len() as f64).ceil() as usize).max(1) - 1] as f64 / 1000.0;
        assert!((got - want).abs() <= want * 0.002 + 0.001, "p{}: merged {got} ms, exact {want} ms", q * 100.0);
    }
    // Averaged percentiles would be wrong here by far: the test can tell them apart.
    let (pa, pb) = (a.http_req_duration_ms.clone().unwrap(), b.http_req_duration_ms.unwrap());
    eprintln!(
        "merged p50 {} p99 {} ms (one histogram: p50 {} p99 {}); averaged parts: p50 {} p99 {}",
        m.p50,
        m.p99,
        one.http_req_duration_ms.as_ref().unwrap().p50,
        one.http_req_duration_ms.as_ref().unwrap().p99,
        (pa.p50 + pb.p50) / 2.0,
        (pa.p99 + pb.p99) / 2.0
    );
    assert!(((pa.p50 + pb.p50) / 2.0 - m.p50).abs() > 10.0, "avg p50 {} vs merged {}", (pa.p50 + pb.p50) / 2.0, m.p50);
    assert!(((pa.p99 + pb.p99) / 2.0 - m.p99).abs() > 10.0, "avg p99 {} vs merged {}", (pa.p99 + pb.p99) / 2.0, m.p99);

    // Thresholds are evaluated again on the merged data: part A alone passes both latency rules.
    let verdict = |s: &Summary| s.thresholds.iter().map(|t| t.passed).collect::<Vec<_>>();
    assert_eq!(verdict(&a), vec![true, true, true]);
    assert_eq!(verdict(&merged), verdict(&one));
    assert_eq!(verdict(&merged), vec![false, false, true]);
    assert_eq!(merged.exit_code, 1);
    assert_eq!(merged.load.rate, Some(20.0), "two parts at 10/s are 20/s");
    // A merge of merges is still the one histogram.
    let again = merge(std::slice::from_ref(&merged), &["m".into()]).unwrap();
    assert_eq!(again.http_req_duration_ms, one.http_req_duration_ms);
}

#[test]
fn parts_of_different_scenarios_or_without_histograms_are_refused() {
    let cfg = Config::parse(TWO_STEPS, Path::new("."), &Overrides::default()).unwrap();
    let rec = Recorder::new(Instant::now(), Duration::from_secs(1), cfg.step_names(), 5, None);
    let s = summary_of(&cfg, &rec);
    let mut other = s.clone();
    other.scenario = "other".into();
    let e = merge(&[s.clone(), other], &["a.json".into(), "b.json".into()]).unwrap_err();
    assert!(e.contains("b.json") && e.contains("`other`"), "{e}");
    let mut bare = s.clone();
    bare.histograms = None;
    let e = merge(&[s.clone(), bare], &["a.json".into(), "b.json".into()]).unwrap_err();
    assert!(e.contains("b.json") && e.contains("histograms"), "{e}");
    let mut broken = s.clone();
    broken.histograms.as_mut().unwrap().iteration_duration = "HISTFAAA!!".into();
    let e = merge(&[s, broken], &["a.json".into(), "b.json".into()]).unwrap_err();
    assert!(e.contains("b.json") && e.contains("iteration_duration"), "{e}");
}

async fn loadtest(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env("CI", "true").kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("the runner finishes within 60 s").expect("the runner starts")
}

fn read(dir: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written")).expect("a summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_real_runs_at_half_the_rate_merge_into_one_report() {
    let server = TestServer::start(Behaviour { latency: Duration::from_millis(3), ..Default::default() }).await;
    let dir = temp_dir("merge");
    let cfg = write(
        &dir,
        "hello.yaml",
        &hello_config(&server.url(), "  model: constant_rate\n  rate: 40\n  duration: 2s", &["http_req_duration p99 < 5s"]),
    );
    let cfg = cfg.to_str().unwrap();
    let (p0, p1, out) = (dir.join("part-0"), dir.join("part-1"), dir.join("merged"));
    // Like the Job's pods: each part at rate/2, side by side.
    let (out0, out1) = (p0.to_str().unwrap(), p1.to_str().unwrap());
    let args0 = ["run", "--config", cfg, "--rate", "20", "--out", out0, "--print-summary"];
    let args1 = ["run", "--config", cfg, "--rate", "20", "--out", out1];
    let (o0, o1) = tokio::join!(loadtest(&args0), loadtest(&args1));
    assert_eq!(o0.status.code(), Some(0), "{}", String::from_utf8_lossy(&o0.stderr));
    assert_eq!(o1.status.code(), Some(0), "{}", String::from_utf8_lossy(&o1.stderr));
    // Part 0 as collected from a pod's log (its last line), part 1 as a directory.
    let log = String::from_utf8(o0.stdout.clone()).unwrap();
    let from_log = write(&dir, "part-0.json", log.lines().last().unwrap());
    let o = loadtest(&["merge", "--out", out.to_str().unwrap(), from_log.to_str().unwrap(), p1.to_str().unwrap()]).await;
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("merged 2 parts") && stdout.contains("thresholds: PASS (1 of 1)"), "{stdout}");
    assert!(out.join("report.html").is_file());

    let (a, b, m) = (read(&p0), read(&p1), read(&out));
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&from_log).unwrap()).unwrap(),
        "the log line is the summary"
    );
    assert_eq!(server.requests(), 80, "40 scheduled starts per part");
    assert_eq!(m.totals.requests, a.totals.requests + b.totals.requests);
    assert_eq!(m.totals.requests, 80);
    assert_eq!(m.load.rate, Some(40.0));
    assert_eq!(m.merged_from.len(), 2);
    // The merged percentiles are those of the parts' histograms added together.
    let mut all: Histogram<u64> = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for s in [&a, &b] {
        let h: Histogram<u64> = decode_histogram(&s.histograms.as_ref().unwrap().steps["hello"]).unwrap();
        assert_eq!(h.len(), s.totals.requests, "the serialized histogram holds every request");
        all.add(&h).unwrap();
    }
    let ml = m.steps[0].latency_ms.as_ref().unwrap();
    assert_eq!(ml.count, 80);
    assert_eq!(ml.p50, (all.value_at_quantile(0.5) as f64 / 1000.0 * 1000.0).round() / 1000.0);
    assert_eq!(ml.p99, (all.value_at_quantile(0.99) as f64 / 1000.0 * 1000.0).round() / 1000.0);
    assert_eq!(m.http_req_duration_ms.as_ref().unwrap().max, (all.max() as f64 / 1000.0 * 1000.0).round() / 1000.0);
    assert!(ml.p50 >= 3.0, "the server holds each response 3 ms: {}", ml.p50);

    // A bad part is named, exit code 2, nothing written.
    let missing = dir.join("part-9");
    let bad_out = dir.join("bad");
    let o = loadtest(&["merge", "--out", bad_out.to_str().unwrap(), p0.to_str().unwrap(), missing.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("part-9"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!bad_out.exists());
    let _ = std::fs::remove_dir_all(dir);
}
