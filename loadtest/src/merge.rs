//! `glasshouse-loadtest merge`: one report from the summaries of runs that
//! shared the load (the pods of the Kubernetes Job, each at rate/N).
//!
//! Every percentile of the merged summary is read from histograms: the parts'
//! serialized HDR histograms (`histograms` in `summary.json`) are decoded and
//! added, which is exact (the same buckets, counts summed), so the merged
//! percentiles are those of one histogram holding every sample. Percentiles
//! are never averaged. Counts are summed; rates and thresholds are computed
//! again from the merged numbers.
//!
//! The parts are taken to have run side by side: the merged `duration_s` is
//! the longest part's, throughput is every request over it, the load's rates
//! (and VUs, and `max_in_flight`) are the parts' sums, and time buckets are
//! aligned on each part's own start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::report::{
    self, CheckSummary, HISTOGRAM_ENCODING, LoadSummary, SCHEMA, SCHEMA_VERSION, SerializedHistograms, SlowSummary, StepPoint, StepSummary,
    Summary, ThresholdResult, Totals, View, decode_histogram, encode_histogram,
};
use crate::stats::{Bucket, hist_u32, hist_u64};
use crate::threshold::Threshold;

/// Reads one part: a `summary.json`, or a directory holding one.
pub fn read_part(path: &Path) -> Result<Summary, String> {
    let file: PathBuf = if path.is_dir() { path.join("summary.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let s: Summary = serde_json::from_str(&text).map_err(|e| format!("{}: not a load-test summary: {e}", file.display()))?;
    if s.schema != SCHEMA || s.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "{}: schema `{}` version {}, expected `{SCHEMA}` version {SCHEMA_VERSION}",
            file.display(),
            s.schema,
            s.schema_version
        ));
    }
    match &s.histograms {
        None => {
            Err(format!("{}: has no `histograms` (written by an older runner?); percentiles cannot be merged without them", file.display()))
        }
        Some(h) if h.encoding != HISTOGRAM_ENCODING || h.unit != "us" => Err(format!(
            "{}: histograms encoded as `{}` in `{}`, expected `{HISTOGRAM_ENCODING}` in `us`",
            file.display(),
            h.encoding,
            h.unit
        )),
        Some(_) => Ok(s),
    }
}

/// Adds the part's encoded histogram into `into`; the error names the part and field.
fn add_into<T: hdrhistogram::Counter>(into: &mut Histogram<T>, text: &str, part: &str, field: &str) -> Result<(), String> {
    let h: Histogram<T> = decode_histogram(text).map_err(|e| format!("{part}: histograms.{field}: {e}"))?;
    into.add(&h).map_err(|e| format!("{part}: histograms.{field}: cannot be added: {e:?}"))
}

fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

fn sum_into(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// Merges parts (named by `labels`, e.g. their paths, for messages) into one summary.
pub fn merge(parts: &[Summary], labels: &[String]) -> Result<Summary, String> {
    let first = parts.first().ok_or("merge needs at least one part")?;
    let label = |i: usize| labels.get(i).cloned().unwrap_or_else(|| format!("part {i}"));
    for (i, p) in parts.iter().enumerate() {
        if p.scenario != first.scenario {
            return Err(format!(
                "{}: scenario `{}`, but {} ran `{}`; only runs of one scenario merge",
                label(i),
                p.scenario,
                label(0),
                first.scenario
            ));
        }
        if p.latency_origin != first.latency_origin {
            return Err(format!(
                "{}: latency measured from the {}, {} from the {}",
                label(i),
                p.latency_origin,
                label(0),
                first.latency_origin
            ));
        }
        if p.timeseries.interval_s != first.timeseries.interval_s {
            return Err(format!(
                "{}: time buckets of {} s, {} of {} s (set report.interval the same)",
                label(i),
                p.timeseries.interval_s,
                label(0),
                first.timeseries.interval_s
            ));
        }
    }
    let hists = |i: usize| parts[i].histograms.as_ref().ok_or_else(|| format!("{}: has no histograms", label(i)));
    let load = merge_load(parts, &label)?;
    let duration_s = parts.iter().map(|p| p.duration_s).fold(0.0, f64::max);
    let elapsed = duration_s.max(1e-9);

    // Steps in first-seen order, their histograms added.
    let mut step_names: Vec<String> = Vec::new();
    for p in parts {
        p.steps.iter().for_each(|s| push_unique(&mut step_names, &s.name));
    }
    let mut step_latency: Vec<Histogram<u64>> = step_names.iter().map(|_| hist_u64()).collect();
    let mut iterations = hist_u64();
    let mut lag = hist_u64();
    for i in 0..parts.len() {
        let h = hists(i)?;
        for (name, text) in &h.steps {
            let idx = step_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("{}: histograms.steps has `{name}`, no such step", label(i)))?;
            add_into(&mut step_latency[idx], text, &label(i), &format!("steps.{name}"))?;
        }
        add_into(&mut iterations, &h.iteration_duration, &label(i), "iteration_duration")?;
        add_into(&mut lag, &h.scheduling_lag, &label(i), "scheduling_lag")?;
    }
    let mut all = hist_u64();
    for h in &step_latency {
        all.add(h).map_err(|e| format!("cannot add step histograms: {e:?}"))?;
    }

    let steps: Vec<StepSummary> =
        step_names.iter().zip(&step_latency).map(|(name, latency)| merge_step(parts, name, latency, elapsed)).collect();
    let checks = merge_checks(parts);
    let totals = merge_totals(parts, &steps, &checks, elapsed);

    // Thresholds: every rule of every part, evaluated again on the merged data.
    let mut expressions: Vec<String> = Vec::new();
    for p in parts {
        p.thresholds.iter().for_each(|t| push_unique(&mut expressions, &t.expression));
    }
    let view = View { step_names: &step_names, step_latency: step_latency.iter().collect(), all: &all, iterations: &iterations };
    let thresholds: Vec<ThresholdResult> = expressions
        .iter()
        .map(|e| Threshold::parse(e).map(|t| report::evaluate(&t, report::observe(&t, &view, &totals, &steps))))
        .collect::<Result<_, String>>()?;
    let thresholds_passed = thresholds.iter().all(|t| t.passed);

    let (timeseries, bucket_hists) = merge_timeseries(parts, &step_names, &label)?;
    let keep = parts.iter().map(|p| p.slowest.len()).max().unwrap_or(0);
    let mut slowest: Vec<SlowSummary> = parts.iter().flat_map(|p| p.slowest.iter().cloned()).collect();
    sort_slowest(&mut slowest, keep);

    let mut warnings = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        warnings.extend(p.warnings.iter().map(|w| format!("{}: {w}", label(i))));
    }
    let earliest = |f: fn(&Summary) -> &str| parts.iter().map(f).min().unwrap_or_default().to_string();
    let latest = |f: fn(&Summary) -> &str| parts.iter().map(f).max().unwrap_or_default().to_string();
    let mut targets = BTreeMap::new();
    for p in parts {
        for (k, v) in &p.targets {
            targets.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut counters = BTreeMap::new();
    parts.iter().for_each(|p| sum_into(&mut counters, &p.counters));

    let histograms = SerializedHistograms {
        encoding: HISTOGRAM_ENCODING.to_string(),
        unit: "us".to_string(),
        steps: step_names.iter().zip(&step_latency).map(|(n, h)| Ok((n.clone(), encode_histogram(h)?))).collect::<Result<_, String>>()?,
        iteration_duration: encode_histogram(&iterations)?,
        scheduling_lag: encode_histogram(&lag)?,
        timeseries: bucket_hists,
    };
    Ok(Summary {
        schema: SCHEMA.to_string(),
        schema_version: SCHEMA_VERSION,
        scenario: first.scenario.clone(),
        description: first.description.clone(),
        // RFC 3339 UTC with a fixed format: the text order is the time order.
        started_at: earliest(|p| &p.started_at),
        finished_at: latest(|p| &p.finished_at),
        duration_s: report::round3(duration_s),
        interrupted: parts.iter().any(|p| p.interrupted),
        load,
        latency_origin: first.latency_origin.clone(),
        targets,
        totals,
        http_req_duration_ms: report::percentiles(&all),
        iteration_duration_ms: report::percentiles(&iterations),
        scheduling_lag_ms: report::percentiles(&lag),
        steps,
        checks,
        counters,
        thresholds,
        thresholds_passed,
        slowest,
        timeseries,
        warnings,
        exit_code: if thresholds_passed { 0 } else { 1 },
        histograms: Some(histograms),
        merged_from: labels.to_vec(),
    })
}

fn sort_slowest(v: &mut Vec<SlowSummary>, keep: usize) {
    v.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms).then_with(|| b.trace_id.cmp(&a.trace_id)));
    v.truncate(keep);
}

/// The parts ran side by side: their rates (VUs, in-flight bounds) add up.
fn merge_load(parts: &[Summary], label: &impl Fn(usize) -> String) -> Result<LoadSummary, String> {
    let first = &parts[0].load;
    let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, None) => x,
        (None, y) => y,
    };
    let mut load = first.clone();
    for (i, p) in parts.iter().enumerate().skip(1) {
        let l = &p.load;
        let same_shape = l.model == first.model
            && l.stages.len() == first.stages.len()
            && l.stages.iter().zip(&first.stages).all(|(a, b)| a.duration_s == b.duration_s);
        if !same_shape {
            return Err(format!(
                "{}: load model `{}` with {} stage(s) differs from {}'s; only parts of one load shape merge",
                label(i),
                l.model,
                l.stages.len(),
                label(0)
            ));
        }
        load.rate = add(load.rate, l.rate);
        load.start_rate = add(load.start_rate, l.start_rate);
        load.stages.iter_mut().zip(&l.stages).for_each(|(a, b)| a.target += b.target);
        load.vus = match (load.vus, l.vus) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        load.max_in_flight = match (load.max_in_flight, l.max_in_flight) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        load.duration_s = load.duration_s.max(l.duration_s);
        load.graceful_stop_s = load.graceful_stop_s.max(l.graceful_stop_s);
    }
    Ok(load)
}

fn merge_step(parts: &[Summary], name: &str, latency: &Histogram<u64>, elapsed: f64) -> StepSummary {
    let of_parts: Vec<&StepSummary> = parts.iter().filter_map(|p| p.steps.iter().find(|s| s.name == name)).collect();
    let requests: u64 = of_parts.iter().map(|s| s.requests).sum();
    let errors: u64 = of_parts.iter().map(|s| s.errors).sum();
    let (mut outcomes, mut status_codes, mut error_examples) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for s in &of_parts {
        sum_into(&mut outcomes, &s.outcomes);
        sum_into(&mut status_codes, &s.status_codes);
        for (k, v) in &s.error_examples {
            error_examples.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let keep = of_parts.iter().map(|s| s.slowest.len()).max().unwrap_or(0);
    let mut slowest: Vec<SlowSummary> = of_parts.iter().flat_map(|s| s.slowest.iter().cloned()).collect();
    sort_slowest(&mut slowest, keep);
    StepSummary {
        name: name.to_string(),
        requests,
        errors,
        error_rate: report::rate(errors, requests),
        throughput_rps: report::round3(requests as f64 / elapsed),
        latency_ms: report::percentiles(latency),
        outcomes,
        status_codes,
        error_examples,
        slowest,
    }
}

fn merge_checks(parts: &[Summary]) -> Vec<CheckSummary> {
    let mut checks: Vec<CheckSummary> = Vec::new();
    for c in parts.iter().flat_map(|p| &p.checks) {
        match checks.iter_mut().find(|m| m.step == c.step && m.name == c.name) {
            Some(m) => {
                m.passes += c.passes;
                m.fails += c.fails;
            }
            None => checks.push(c.clone()),
        }
    }
    checks
}

fn merge_totals(parts: &[Summary], steps: &[StepSummary], checks: &[CheckSummary], elapsed: f64) -> Totals {
    let sum = |f: fn(&Totals) -> u64| parts.iter().map(|p| f(&p.totals)).sum::<u64>();
    let iterations = report::Iterations {
        started: sum(|t| t.iterations_started),
        completed: sum(|t| t.iterations_completed),
        failed: sum(|t| t.iterations_failed),
        interrupted: sum(|t| t.iterations_interrupted),
        dropped: sum(|t| t.dropped_iterations),
    };
    report::totals(steps, checks, elapsed, iterations)
}

/// Bucket i of the merge is bucket i of every part (each from its own start).
fn merge_timeseries(
    parts: &[Summary],
    step_names: &[String],
    label: &impl Fn(usize) -> String,
) -> Result<(report::TimeSeries, Vec<BTreeMap<String, String>>), String> {
    let n = parts.iter().map(|p| p.timeseries.points.len()).max().unwrap_or(0);
    let mut buckets: Vec<Bucket> =
        (0..n).map(|_| Bucket { steps: step_names.iter().map(|_| (hist_u32(), 0)).collect(), iterations_started: 0, dropped: 0 }).collect();
    for (i, p) in parts.iter().enumerate() {
        let hists = p.histograms.as_ref().map(|h| &h.timeseries);
        for (b, point) in p.timeseries.points.iter().enumerate() {
            let bucket = &mut buckets[b];
            bucket.iterations_started += point.iterations_started;
            bucket.dropped += point.dropped;
            for (name, sp) in &point.steps {
                let idx = step_names
                    .iter()
                    .position(|x| x == name)
                    .ok_or_else(|| format!("{}: timeseries has step `{name}`, no such step", label(i)))?;
                let StepPoint { errors, requests, .. } = sp;
                bucket.steps[idx].1 += errors;
                let text = hists.and_then(|h| h.get(b)).and_then(|m| m.get(name));
                match text {
                    Some(t) => add_into(&mut bucket.steps[idx].0, t, &label(i), &format!("timeseries[{b}].{name}"))?,
                    None if *requests > 0 => {
                        return Err(format!(
                            "{}: histograms.timeseries[{b}] has no `{name}` but the bucket has {requests} requests",
                            label(i)
                        ));
                    }
                    None => {}
                }
            }
        }
    }
    let series = report::timeseries(parts[0].timeseries.interval_s, &buckets, step_names);
    let encoded = buckets
        .iter()
        .map(|b| {
            (b.steps.iter().zip(step_names))
                .filter(|((h, _), _)| !h.is_empty())
                .map(|((h, _), name)| Ok((name.clone(), encode_histogram(h)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()
        })
        .collect::<Result<_, String>>()?;
    Ok((series, encoded))
}
