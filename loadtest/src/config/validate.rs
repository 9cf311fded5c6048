//! The second pass: every value of the raw document checked, in document
//! order, with the CLI's overrides applied; the first problem found is the
//! error, naming its key and value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{DurText, RawConfig, RawFlow, RawHttp, RawLoad, RawMetrics, RawReport, RawStage};
use super::{
    Config, ConfigError, Flow, HttpSettings, Load, MetricsSettings, Overrides, ReportSettings, Stage, TRACE_ID, Target, TargetsDir,
    defaults, first_seen, format_duration, parse_duration, steps, targets, tokens,
};
use crate::threshold::Threshold;

/// Highest arrival rate of the open models, iterations per second.
const MAX_RATE: f64 = 1_000_000.0;

/// Parses an optional duration, naming `key` in the error.
pub(super) fn dur(v: &Option<DurText>, key: &str) -> Result<Option<Duration>, ConfigError> {
    v.as_ref().map(|d| parse_duration(&d.0).map_err(|m| ConfigError::at(key, m))).transpose()
}

/// `d`, refused when zero.
fn positive(d: Duration, key: &str) -> Result<Duration, ConfigError> {
    if d.is_zero() { Err(ConfigError::at(key, "must be greater than 0")) } else { Ok(d) }
}

/// Builds the [`Config`] from the raw document.
pub(super) fn config(raw: RawConfig, base_dir: &Path, ov: &Overrides) -> Result<Config, ConfigError> {
    if raw.scenario.trim().is_empty() || !raw.scenario.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        let msg = format!("`{}` must be non-empty and use only letters, digits, `-`, `_`", raw.scenario);
        return Err(ConfigError::at("scenario", msg));
    }
    let allow_hosts: Vec<String> = raw.allow_hosts.iter().chain(&ov.allow_hosts).map(|h| h.trim().to_ascii_lowercase()).collect();
    let targets = targets::build(raw.targets, &allow_hosts, ov)?;
    let load = load(&raw.load, ov)?;
    let http = http(&raw.http)?;
    let flows = flows(&raw.flows, &targets, !raw.data.skus.is_empty())?;
    let auth = tokens::source(raw.auth.as_ref(), base_dir, &flows)?;
    let thresholds = thresholds(&raw.thresholds, &first_seen(flows.iter().flat_map(|f| &f.steps).filter_map(|s| s.name())))?;
    Ok(Config {
        report: report(&raw.report, &load)?,
        metrics: metrics(&raw.metrics, ov)?,
        scenario: raw.scenario,
        description: raw.description,
        targets,
        allow_hosts,
        load,
        http,
        auth,
        skus: raw.data.skus,
        flows,
        thresholds,
    })
}

fn load(raw: &RawLoad, ov: &Overrides) -> Result<Load, ConfigError> {
    let model = match (ov.rate, ov.vus) {
        (Some(_), Some(_)) => return Err(ConfigError::at("--rate/--vus", "give one of them, not both")),
        (Some(_), None) => "constant_rate",
        (None, Some(_)) => "closed",
        (None, None) => raw.model.as_str(),
    };
    let max_in_flight = ov.max_in_flight.or(raw.max_in_flight).unwrap_or(defaults::MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        return Err(ConfigError::at("load.max_in_flight", "must be at least 1"));
    }
    let graceful_stop = dur(&raw.graceful_stop, "load.graceful_stop")?.unwrap_or(defaults::GRACEFUL_STOP);
    let written = dur(&raw.duration, "load.duration")?;
    let duration = |model: &str| {
        let d = ov.duration.or(written).ok_or_else(|| ConfigError::at("load.duration", format!("required for model {model}")))?;
        positive(d, "load.duration")
    };
    match model {
        "constant_rate" => {
            let rate = ov.rate.or(raw.rate).ok_or_else(|| ConfigError::at("load.rate", "required for model constant_rate"))?;
            let key = if ov.rate.is_some() { "--rate" } else { "load.rate" };
            if !rate.is_finite() || rate <= 0.0 || rate > MAX_RATE {
                return Err(ConfigError::at(key, format!("{rate} is not a rate in (0, 1000000] per second")));
            }
            Ok(Load::ConstantRate { rate, duration: duration(model)?, max_in_flight, graceful_stop })
        }
        "ramping_rate" => {
            if ov.duration.is_some() {
                return Err(ConfigError::at("--duration", "does not apply to ramping_rate (edit the stages)"));
            }
            let (start_rate, stages) = ramp(raw)?;
            Ok(Load::RampingRate { start_rate, stages, max_in_flight, graceful_stop })
        }
        "closed" => {
            let vus = ov.vus.or(raw.vus).ok_or_else(|| ConfigError::at("load.vus", "required for model closed"))?;
            if vus == 0 || vus > 100_000 {
                return Err(ConfigError::at("load.vus", format!("{vus} is not in 1..=100000")));
            }
            Ok(Load::Closed { vus, duration: duration(model)?, graceful_stop })
        }
        other => Err(ConfigError::at("load.model", format!("unknown model `{other}` (use constant_rate, ramping_rate or closed)"))),
    }
}

/// `start_rate` and `stages` of the ramping model; some rate must be above 0.
fn ramp(raw: &RawLoad) -> Result<(f64, Vec<Stage>), ConfigError> {
    let written = raw
        .stages
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError::at("load.stages", "required (non-empty) for model ramping_rate"))?;
    let in_range = |r: f64| r.is_finite() && (0.0..=MAX_RATE).contains(&r);
    let start_rate = raw.start_rate.unwrap_or(defaults::START_RATE);
    if !in_range(start_rate) {
        return Err(ConfigError::at("load.start_rate", format!("{start_rate} is out of range")));
    }
    let stage = |i: usize, s: &RawStage| {
        let key = format!("load.stages[{i}]");
        let dkey = format!("{key}.duration");
        let duration = positive(parse_duration(&s.duration.0).map_err(|m| ConfigError::at(&dkey, m))?, &dkey)?;
        if !in_range(s.target) {
            return Err(ConfigError::at(&format!("{key}.target"), format!("{} is out of range", s.target)));
        }
        Ok(Stage { duration, target: s.target })
    };
    let stages = written.iter().enumerate().map(|(i, s)| stage(i, s)).collect::<Result<Vec<_>, _>>()?;
    if start_rate == 0.0 && stages.iter().all(|s| s.target == 0.0) {
        return Err(ConfigError::at("load.stages", "every rate is 0: nothing would run"));
    }
    Ok((start_rate, stages))
}

fn http(raw: &RawHttp) -> Result<HttpSettings, ConfigError> {
    let timeout = dur(&raw.timeout, "http.timeout")?.unwrap_or(defaults::HTTP_TIMEOUT);
    let connect_timeout = dur(&raw.connect_timeout, "http.connect_timeout")?.unwrap_or(defaults::CONNECT_TIMEOUT);
    Ok(HttpSettings { timeout: positive(timeout, "http.timeout")?, connect_timeout: positive(connect_timeout, "http.connect_timeout")? })
}

/// The flows with their steps; every step's target must exist, and
/// `have_skus` (`data.skus`) lets `place_order` run without a catalog step.
fn flows(raw: &[RawFlow], targets: &BTreeMap<String, Target>, have_skus: bool) -> Result<Vec<Flow>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::at("flows", "at least one flow is required"));
    }
    let mut flows: Vec<Flow> = Vec::new();
    for (fi, f) in raw.iter().enumerate() {
        let key = format!("flows[{fi}]");
        if f.name.trim().is_empty() {
            return Err(ConfigError::at(&format!("{key}.name"), "must not be empty"));
        }
        if flows.iter().any(|x| x.name == f.name) {
            return Err(ConfigError::at(&format!("{key}.name"), format!("duplicate flow `{}`", f.name)));
        }
        if f.steps.is_empty() {
            return Err(ConfigError::at(&format!("{key}.steps"), "a flow needs at least one step"));
        }
        let mut steps = Vec::new();
        for (si, s) in f.steps.iter().enumerate() {
            let skey = format!("{key}.steps[{si}]");
            let step = steps::build(s, &skey)?;
            if let Some(t) = step.target().filter(|t| !targets.contains_key(*t)) {
                let msg = format!("no target named `{t}` (known: {})", targets::join_keys(targets));
                return Err(ConfigError::at(&format!("{skey}.target"), msg));
            }
            steps.push(step);
        }
        steps::check_order(&steps, &key, have_skus)?;
        if !steps.iter().any(|s| s.name().is_some()) {
            return Err(ConfigError::at(&format!("{key}.steps"), "a flow needs at least one request step"));
        }
        flows.push(Flow { name: f.name.clone(), weight: f.weight, steps });
    }
    if flows.iter().all(|f| f.weight == 0) {
        return Err(ConfigError::at("flows", "at least one flow needs a weight above 0"));
    }
    Ok(flows)
}

/// The rules, each naming only steps some flow has.
fn thresholds(raw: &[String], step_names: &[String]) -> Result<Vec<Threshold>, ConfigError> {
    let rule = |i: usize, t: &String| {
        let key = format!("thresholds[{i}]");
        let th = Threshold::parse(t).map_err(|m| ConfigError::at(&key, m))?;
        match &th.step {
            Some(step) if !step_names.contains(step) => {
                let msg = format!("`{t}` names step `{step}`, which no flow has (steps: {})", step_names.join(", "));
                Err(ConfigError::at(&key, msg))
            }
            _ => Ok(th),
        }
    };
    raw.iter().enumerate().map(|(i, t)| rule(i, t)).collect()
}

fn report(raw: &RawReport, load: &Load) -> Result<ReportSettings, ConfigError> {
    if let Some(old) = &raw.jaeger_url {
        let msg = format!(
            "renamed to report.trace_ui_url, a URL with {{trace_id}} in it (the local stack's: {}); `{old}` is not used",
            defaults::TRACE_UI_URL
        );
        return Err(ConfigError::at("report.jaeger_url", msg));
    }
    let trace_ui_url = raw.trace_ui_url.trim().to_string();
    if !(trace_ui_url.starts_with("http://") || trace_ui_url.starts_with("https://")) {
        return Err(ConfigError::at("report.trace_ui_url", format!("`{trace_ui_url}` is not an http(s) URL")));
    }
    if !trace_ui_url.contains(TRACE_ID) {
        return Err(ConfigError::at("report.trace_ui_url", format!("`{trace_ui_url}` has no {TRACE_ID} to put the trace id in")));
    }
    if raw.slowest > 1000 {
        return Err(ConfigError::at("report.slowest", "at most 1000"));
    }
    let interval = dur(&raw.interval, "report.interval")?;
    if let Some(i) = interval {
        if i < Duration::from_millis(100) {
            return Err(ConfigError::at("report.interval", "at least 100ms"));
        }
        // Each bucket holds a histogram per step: keep their number bounded.
        let buckets = (load.duration() + load.graceful_stop()).as_secs_f64() / i.as_secs_f64();
        if buckets > 3600.0 {
            let msg = format!("{} makes {buckets:.0} buckets for this run; at most 3600", format_duration(i));
            return Err(ConfigError::at("report.interval", msg));
        }
    }
    let backend = |url: &Option<String>, key: &str| -> Result<Option<Target>, ConfigError> {
        url.as_deref().map(|u| targets::parse_target(u.trim_end_matches('/')).map_err(|m| ConfigError::at(key, m))).transpose()
    };
    let jaeger_query = backend(&raw.jaeger_query_url, "report.jaeger_query_url")?;
    let victorialogs = backend(&raw.victorialogs_url, "report.victorialogs_url")?;
    let trace_wait = dur(&raw.trace_wait, "report.trace_wait")?.unwrap_or(defaults::TRACE_WAIT);
    if trace_wait > Duration::from_secs(300) {
        return Err(ConfigError::at("report.trace_wait", "at most 5m"));
    }
    Ok(ReportSettings { trace_ui_url, slowest: raw.slowest, interval, jaeger_query, victorialogs, trace_wait })
}

fn metrics(raw: &RawMetrics, ov: &Overrides) -> Result<MetricsSettings, ConfigError> {
    let mut listen: SocketAddr = raw
        .listen
        .parse()
        .map_err(|_| ConfigError::at("metrics.listen", format!("`{}` is not an address like 127.0.0.1:9464", raw.listen)))?;
    if let Some(p) = ov.metrics_port {
        listen.set_port(p);
    }
    if !listen.ip().is_loopback() {
        let msg = format!("`{listen}` is not a loopback address; the runner's /metrics stays on loopback");
        return Err(ConfigError::at("metrics.listen", msg));
    }
    let targets_dir = match raw.prometheus_targets_dir.as_str() {
        "off" | "" => None,
        "auto" => Some(TargetsDir::Auto),
        p => Some(TargetsDir::Dir(PathBuf::from(p))),
    };
    Ok(MetricsSettings {
        enabled: raw.enabled && !ov.no_metrics,
        listen,
        targets_dir,
        linger: dur(&raw.linger, "metrics.linger")?.unwrap_or(Duration::ZERO),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Overrides};

    fn parse(report: &str) -> Result<Config, String> {
        let base = "scenario: t\ntargets: {app: \"http://127.0.0.1:1\"}\nload: {model: closed, vus: 1, duration: 1s}\n\
                    flows: [{name: f, steps: [{step: http, name: s, target: app}]}]\n";
        Config::parse(&format!("{base}{report}"), std::path::Path::new("."), &Overrides::default()).map_err(|e| e.0)
    }

    #[test]
    fn trace_links_fill_the_trace_ui_template() {
        let local = parse("").unwrap().report;
        assert_eq!(
            local.trace_url("0af7651916cd43dd8448eb211c80319c"),
            "http://127.0.0.1:9411/zipkin/traces/0af7651916cd43dd8448eb211c80319c"
        );
        let jaeger_ui = parse("report: {trace_ui_url: \"https://jaeger.example/trace/{trace_id}?uiEmbed=v0\"}\n").unwrap().report;
        assert_eq!(jaeger_ui.trace_url("ab12"), "https://jaeger.example/trace/ab12?uiEmbed=v0");
        let e = parse("report: {trace_ui_url: \"http://127.0.0.1:9411/zipkin/traces/\"}\n").unwrap_err();
        assert!(e.contains("report.trace_ui_url") && e.contains("{trace_id}"), "{e}");
        let e = parse("report: {trace_ui_url: \"127.0.0.1:9411/{trace_id}\"}\n").unwrap_err();
        assert!(e.contains("report.trace_ui_url") && e.contains("not an http(s) URL"), "{e}");
        // The old key names the new one instead of being silently ignored.
        let e = parse("report: {jaeger_url: \"http://127.0.0.1:16686\"}\n").unwrap_err();
        assert!(e.contains("report.jaeger_url") && e.contains("renamed to report.trace_ui_url"), "{e}");
    }
}
