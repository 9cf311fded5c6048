//! Runs a panel's PromQL against a real Prometheus over the look-back window
//! and classifies the answer: series (OK), no series (EMPTY), or an error
//! Prometheus gave (ERROR: bad syntax, unknown function, bad matching...).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::Value;

/// What one query returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This many series (or a scalar/string result, counted as one).
    Ok(usize),
    Empty,
    Error(String),
}

/// A Prometheus HTTP API client for the checker.
pub struct Prometheus {
    base: String,
    http: reqwest::Client,
    /// How far back range queries look: "did this panel have data during the run".
    lookback: Duration,
}

impl Prometheus {
    pub fn new(base: &str, lookback: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("build HTTP client")?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), http, lookback })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Fails, naming the URL, unless Prometheus answers its build-info endpoint.
    pub async fn require_reachable(&self) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/status/buildinfo", self.base);
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach Prometheus at {} (local stack: `deploy/local/stack up prometheus`)", self.base))?;
        anyhow::ensure!(r.status().is_success(), "Prometheus at {} answered {} to {url}", self.base, r.status());
        Ok(())
    }

    /// Runs `expr` as a range query over the look-back window, or as an instant query.
    pub async fn query(&self, expr: &str, instant: bool) -> Verdict {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let start = now - self.lookback.as_secs_f64();
        // About 120 points over the window, never below Prometheus' 11k-point limit.
        let step = (self.lookback.as_secs() / 120).max(1);
        let request = if instant {
            self.http.post(format!("{}/api/v1/query", self.base)).form(&[("query", expr.to_owned()), ("time", format!("{now:.3}"))])
        } else {
            self.http.post(format!("{}/api/v1/query_range", self.base)).form(&[
                ("query", expr.to_owned()),
                ("start", format!("{start:.3}")),
                ("end", format!("{now:.3}")),
                ("step", format!("{step}s")),
            ])
        };
        self.verdict(request).await
    }

    /// Values of `label` on the series matching `selector` (a `label_values` variable).
    pub async fn label_values(&self, selector: &str, label: &str) -> Verdict {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let start = now - self.lookback.as_secs_f64();
        let mut params = vec![("start", format!("{start:.3}")), ("end", format!("{now:.3}"))];
        if !selector.is_empty() {
            params.push(("match[]", selector.to_owned()));
        }
        let request = self.http.get(format!("{}/api/v1/label/{label}/values", self.base)).query(&params);
        self.verdict(request).await
    }

    async fn verdict(&self, request: reqwest::RequestBuilder) -> Verdict {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Verdict::Error(format!("request failed: {e}")),
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(b) => b,
            Err(e) => return Verdict::Error(format!("HTTP {status}, body is not JSON: {e}")),
        };
        if body["status"] != "success" {
            return Verdict::Error(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or("no message")
            ));
        }
        match &body["data"] {
            Value::Array(values) if values.is_empty() => Verdict::Empty,
            Value::Array(values) => Verdict::Ok(values.len()),
            data => match data["resultType"].as_str() {
                Some("matrix" | "vector") => match data["result"].as_array().map(Vec::len) {
                    Some(0) | None => Verdict::Empty,
                    Some(n) => Verdict::Ok(n),
                },
                Some(_) => Verdict::Ok(1), // scalar or string
                None => Verdict::Error(format!("unexpected answer: {body}")),
            },
        }
    }
}
