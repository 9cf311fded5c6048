//! One step of a flow: which options each kind takes, their checks and defaults,
//! and the order in which steps may consume each other's data.

use std::time::Duration;

use super::raw::{RawRange, RawStep};
use super::validate::dur;
use super::{ConfigError, Range, Step, defaults};

/// Step kinds with the options each accepts and the target it calls by default.
/// Options that belong to another kind are refused rather than ignored.
const KINDS: [(&str, &[&str], &str); 6] = [
    ("list_catalog", &["name", "target", "limit"], "inventory"),
    ("place_order", &["name", "target", "lines", "quantity"], "order"),
    ("poll_order", &["name", "target", "interval", "timeout"], "order"),
    ("read_notifications", &["name", "target", "min_items"], "notification"),
    ("think", &["duration", "jitter"], ""),
    ("http", &["name", "target", "method", "path", "headers", "json", "expect_status", "auth"], ""),
];

/// The step at `key` (`flows[i].steps[j]`), checked and with defaults filled in.
pub(super) fn build(s: &RawStep, key: &str) -> Result<Step, ConfigError> {
    let Some(&(kind, allowed, default_target)) = KINDS.iter().find(|k| k.0 == s.step) else {
        let msg = format!("unknown step `{}` (use list_catalog, place_order, poll_order, read_notifications, think, http)", s.step);
        return Err(ConfigError::at(&format!("{key}.step"), msg));
    };
    if let Some(field) = options_set(s).into_iter().find(|f| !allowed.contains(f)) {
        return Err(ConfigError::at(key, format!("option `{field}` does not apply to step `{kind}`")));
    }
    let b = StepKey { s, key };
    let name = || b.name(kind);
    let target = || s.target.clone().unwrap_or_else(|| default_target.to_string());
    Ok(match kind {
        "list_catalog" => {
            let limit = s.limit.unwrap_or(defaults::CATALOG_LIMIT);
            if limit == 0 || limit > 1000 {
                return Err(b.at("limit", format!("{limit} is not in 1..=1000")));
            }
            Step::ListCatalog { name: name()?, target: target(), limit }
        }
        "place_order" => Step::PlaceOrder {
            name: name()?,
            target: target(),
            lines: b.range(s.lines, "lines")?,
            quantity: b.range(s.quantity, "quantity")?,
        },
        "poll_order" => {
            let interval = b.dur(&s.interval, "interval")?.unwrap_or(defaults::POLL_INTERVAL);
            let timeout = b.dur(&s.timeout, "timeout")?.unwrap_or(defaults::POLL_TIMEOUT);
            if interval.is_zero() || timeout < interval {
                return Err(ConfigError::at(key, "poll_order needs 0 < interval <= timeout"));
            }
            Step::PollOrder { name: name()?, target: target(), interval, timeout }
        }
        "read_notifications" => Step::ReadNotifications { name: name()?, target: target(), min_items: s.min_items.unwrap_or(0) },
        "think" => {
            let duration = b.dur(&s.duration, "duration")?;
            let jitter = b.dur(&s.jitter, "jitter")?.unwrap_or(Duration::ZERO);
            Step::Think { duration: duration.ok_or_else(|| b.at("duration", "required for think"))?, jitter }
        }
        _ => b.http()?,
    })
}

/// The options written for a step, by name.
fn options_set(s: &RawStep) -> Vec<&'static str> {
    let set = [
        ("name", s.name.is_some()),
        ("target", s.target.is_some()),
        ("limit", s.limit.is_some()),
        ("lines", s.lines.is_some()),
        ("quantity", s.quantity.is_some()),
        ("interval", s.interval.is_some()),
        ("timeout", s.timeout.is_some()),
        ("min_items", s.min_items.is_some()),
        ("duration", s.duration.is_some()),
        ("jitter", s.jitter.is_some()),
        ("method", s.method.is_some()),
        ("path", s.path.is_some()),
        ("headers", !s.headers.is_empty()),
        ("json", s.json.is_some()),
        ("expect_status", s.expect_status.is_some()),
        ("auth", s.auth.is_some()),
    ];
    set.into_iter().filter(|(_, is_set)| *is_set).map(|(field, _)| field).collect()
}

/// A raw step with its key, so every error names `flows[i].steps[j].<option>`.
struct StepKey<'a> {
    s: &'a RawStep,
    key: &'a str,
}

impl StepKey<'_> {
    fn at(&self, option: &str, msg: impl std::fmt::Display) -> ConfigError {
        ConfigError::at(&format!("{}.{option}", self.key), msg)
    }

    fn dur(&self, v: &Option<super::raw::DurText>, option: &str) -> Result<Option<Duration>, ConfigError> {
        dur(v, &format!("{}.{option}", self.key))
    }

    /// The step's name (the `step` metric label), `default` when not written.
    fn name(&self, default: &str) -> Result<String, ConfigError> {
        let n = self.s.name.clone().unwrap_or_else(|| default.to_string());
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(self.at("name", format!("`{n}` must use only letters, digits, `_`, `-`")));
        }
        Ok(n)
    }

    fn range(&self, r: Option<RawRange>, option: &str) -> Result<Range, ConfigError> {
        let (min, max) = r.map_or(defaults::ONE, |r| (r.min, r.max));
        if min == 0 || min > max || max > 1000 {
            return Err(self.at(option, format!("min {min} / max {max} must satisfy 1 <= min <= max <= 1000")));
        }
        Ok(Range { min, max })
    }

    /// An `http` step: name and target are required, the rest has defaults.
    fn http(&self) -> Result<Step, ConfigError> {
        let s = self.s;
        if s.name.is_none() {
            return Err(self.at("name", "required for http steps"));
        }
        let name = self.name("")?;
        let target = s.target.clone().ok_or_else(|| self.at("target", "required for http steps"))?;
        let method_text = s.method.as_deref().unwrap_or(defaults::HTTP_METHOD).to_ascii_uppercase();
        let method = http::Method::from_bytes(method_text.as_bytes())
            .map_err(|_| self.at("method", format!("`{method_text}` is not an HTTP method")))?;
        let path = s.path.clone().unwrap_or_else(|| defaults::HTTP_PATH.into());
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(self.at("path", format!("`{path}` must be a path starting with /")));
        }
        let mut headers = Vec::new();
        for (k, v) in &s.headers {
            let hn = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| self.at("headers", format!("`{k}` is not a header name")))?;
            let hv = http::HeaderValue::from_str(v)
                .map_err(|_| self.at(&format!("headers.{k}"), "value has characters not allowed in a header"))?;
            headers.push((hn, hv));
        }
        let expect_status = s.expect_status.clone().unwrap_or_else(|| vec![defaults::EXPECT_STATUS]);
        if expect_status.is_empty() || expect_status.iter().any(|c| !(100..=599).contains(c)) {
            return Err(self.at("expect_status", format!("{expect_status:?} must be HTTP status codes")));
        }
        let json = s.json.as_ref().map(|v| serde_json::to_vec(v).unwrap_or_default());
        Ok(Step::Http { name, target, method, path, headers, json, expect_status, auth: s.auth.unwrap_or(false) })
    }
}

/// Steps that consume data must follow the step that produces it.
pub(super) fn check_order(steps: &[Step], key: &str, have_skus: bool) -> Result<(), ConfigError> {
    let mut catalog = have_skus;
    let mut order = false;
    for (i, s) in steps.iter().enumerate() {
        let at = || format!("{key}.steps[{i}]");
        match s {
            Step::ListCatalog { .. } => catalog = true,
            Step::PlaceOrder { .. } if !catalog => {
                return Err(ConfigError::at(&at(), "place_order needs SKUs: put a list_catalog step before it or set data.skus"));
            }
            Step::PlaceOrder { .. } => order = true,
            Step::PollOrder { .. } | Step::ReadNotifications { .. } if !order => {
                return Err(ConfigError::at(&at(), "this step needs an order: put a place_order step before it"));
            }
            _ => {}
        }
    }
    Ok(())
}
