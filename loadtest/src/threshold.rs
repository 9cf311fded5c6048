//! Pass/fail rules: `http_req_duration{step:place_order} p99 < 300ms`, `error_rate < 1%`.
//!
//! Grammar (one rule per string):
//!
//! ```text
//! rule     = metric [ "{step:" name "}" ] [ stat ] op value
//! metric   = http_req_duration | iteration_duration | error_rate | errors rate
//!          | check_failure_rate | dropped_iterations | http_reqs
//! stat     = p50 | p90 | p95 | p99 | p99.9 | max | min | mean      (durations, required)
//!          | rate                                                  (http_reqs: requests/s)
//! op       = < | <= | > | >=
//! value    = number [ us | ms | s ]   (durations)   | number [ % ]   (rates)
//! ```
//!
//! Values are normalised on parse (durations to milliseconds, rates to a
//! fraction) so evaluation compares plain numbers.

use std::fmt;

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Request latency per step (or over all steps); from the intended start in open models.
    HttpReqDuration,
    /// Whole-iteration latency.
    IterationDuration,
    /// Requests whose outcome is not `success`, over all requests.
    ErrorRate,
    /// Failed checks over all checks.
    CheckFailureRate,
    /// Iterations the open model could not start (max in flight reached).
    DroppedIterations,
    /// Completed requests per second.
    HttpReqs,
}

impl Metric {
    /// Name as written in rules and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::HttpReqDuration => "http_req_duration",
            Metric::IterationDuration => "iteration_duration",
            Metric::ErrorRate => "error_rate",
            Metric::CheckFailureRate => "check_failure_rate",
            Metric::DroppedIterations => "dropped_iterations",
            Metric::HttpReqs => "http_reqs",
        }
    }
    fn is_duration(self) -> bool {
        matches!(self, Metric::HttpReqDuration | Metric::IterationDuration)
    }
    fn is_fraction(self) -> bool {
        matches!(self, Metric::ErrorRate | Metric::CheckFailureRate)
    }
}

/// Which statistic of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A quantile in (0, 1], e.g. 0.99.
    Quantile(f64),
    Max,
    Min,
    Mean,
    /// The metric's single value (rates, counts).
    Value,
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stat::Quantile(q) => write!(f, "p{}", trim_float(q * 100.0)),
            Stat::Max => f.write_str("max"),
            Stat::Min => f.write_str("min"),
            Stat::Mean => f.write_str("mean"),
            Stat::Value => f.write_str("value"),
        }
    }
}

/// Comparison operator: the rule passes when `observed op limit` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Symbol as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The rule as written, shown in the report.
    pub expression: String,
    pub metric: Metric,
    /// `{step:NAME}` selector; `None` means over all steps.
    pub step: Option<String>,
    pub stat: Stat,
    pub op: Op,
    /// Limit in the canonical unit: milliseconds, fraction (0..1), count, or per second.
    pub limit: f64,
}

impl Threshold {
    /// Parses one rule; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let expr = text.trim();
        let (op, op_at, op_len) = find_op(expr).ok_or_else(|| format!("`{expr}` has no comparison (<, <=, >, >=)"))?;
        let left = expr[..op_at].trim();
        let right = expr[op_at + op_len..].trim();
        if left.is_empty() || right.is_empty() {
            return Err(format!("`{expr}` needs a metric on the left and a value on the right"));
        }

        // metric name, then an optional {step:...} selector, then an optional stat.
        let name_end = left.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(left.len());
        let name = &left[..name_end];
        let mut rest = left[name_end..].trim_start();
        let mut step = None;
        if let Some(after) = rest.strip_prefix('{') {
            let close = after.find('}').ok_or_else(|| format!("`{expr}`: unclosed `{{`"))?;
            let sel = after[..close].trim();
            let value = sel
                .strip_prefix("step:")
                .or_else(|| sel.strip_prefix("step="))
                .ok_or_else(|| format!("`{expr}`: the only selector is {{step:NAME}}"))?
                .trim()
                .trim_matches('"');
            if value.is_empty() {
                return Err(format!("`{expr}`: empty step name"));
            }
            step = Some(value.to_string());
            rest = after[close + 1..].trim_start();
        }
        let stat_word = rest.trim();
        let metric = match (name, stat_word) {
            ("http_req_duration" | "latency", _) => Metric::HttpReqDuration,
            ("iteration_duration", _) => Metric::IterationDuration,
            ("error_rate", _) | ("errors", "rate") => Metric::ErrorRate,
            ("check_failure_rate", _) => Metric::CheckFailureRate,
            ("dropped_iterations", _) => Metric::DroppedIterations,
            ("http_reqs", _) => Metric::HttpReqs,
            _ => {
                return Err(format!(
                    "`{expr}`: unknown metric `{name}` (use http_req_duration, iteration_duration, error_rate, check_failure_rate, dropped_iterations, http_reqs)"
                ));
            }
        };
        if step.is_some() && matches!(metric, Metric::IterationDuration | Metric::DroppedIterations | Metric::CheckFailureRate) {
            return Err(format!("`{expr}`: {} has no per-step value", metric.as_str()));
        }
        let stat = if metric.is_duration() {
            parse_stat(stat_word)
                .ok_or_else(|| format!("`{expr}`: {} needs a statistic: p50, p90, p95, p99, p99.9, max, min or mean", metric.as_str()))?
        } else {
            match (metric, stat_word) {
                (Metric::ErrorRate, "" | "rate") | (Metric::CheckFailureRate, "" | "rate") => Stat::Value,
                (Metric::DroppedIterations, "" | "count") => Stat::Value,
                (Metric::HttpReqs, "rate") => Stat::Value,
                (Metric::HttpReqs, _) => {
                    return Err(format!("`{expr}`: write `http_reqs rate > N` (requests per second)"));
                }
                _ => {
                    return Err(format!("`{expr}`: `{stat_word}` does not apply to {}", metric.as_str()));
                }
            }
        };

        let limit = parse_value(right, metric).map_err(|m| format!("`{expr}`: {m}"))?;
        Ok(Threshold { expression: expr.to_string(), metric, step, stat, op, limit })
    }

    /// Whether `observed` satisfies the rule.
    pub fn holds(&self, observed: f64) -> bool {
        match self.op {
            Op::Lt => observed < self.limit,
            Op::Le => observed <= self.limit,
            Op::Gt => observed > self.limit,
            Op::Ge => observed >= self.limit,
        }
    }

    /// The unit of `limit` and of the observed value, for the report.
    pub fn unit(&self) -> &'static str {
        if self.metric.is_duration() {
            "ms"
        } else if self.metric.is_fraction() {
            "ratio"
        } else if self.metric == Metric::HttpReqs {
            "1/s"
        } else {
            "count"
        }
    }
}

fn find_op(s: &str) -> Option<(Op, usize, usize)> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let next_eq = bytes.get(i + 1) == Some(&b'=');
        match b {
            b'<' => {
                return Some(if next_eq { (Op::Le, i, 2) } else { (Op::Lt, i, 1) });
            }
            b'>' => {
                return Some(if next_eq { (Op::Ge, i, 2) } else { (Op::Gt, i, 1) });
            }
            _ => {}
        }
    }
    None
}

fn parse_stat(word: &str) -> Option<Stat> {
    match word {
        "max" => Some(Stat::Max),
        "min" => Some(Stat::Min),
        "mean" | "avg" => Some(Stat::Mean),
        w => {
            let p: f64 = w.strip_prefix('p')?.parse().ok()?;
            (p > 0.0 && p <= 100.0).then_some(Stat::Quantile(p / 100.0))
        }
    }
}

fn parse_value(text: &str, metric: Metric) -> Result<f64, String> {
    let t = text.trim();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let number: f64 = t[..num_end].parse().map_err(|_| format!("`{t}` is not a number"))?;
    let unit = t[num_end..].trim();
    if metric.is_duration() {
        Ok(match unit {
            "us" | "µs" => number / 1000.0,
            "ms" => number,
            "s" => number * 1000.0,
            _ => return Err(format!("`{t}` needs a unit: us, ms or s")),
        })
    } else if metric.is_fraction() {
        match unit {
            "%" => Ok(number / 100.0),
            "" if number <= 1.0 => Ok(number),
            "" => Err(format!("`{t}`: a rate is a fraction (0.01) or a percentage (1%)")),
            _ => Err(format!("`{t}`: unknown unit `{unit}`")),
        }
    } else if unit.is_empty() || (metric == Metric::HttpReqs && unit == "/s") {
        Ok(number)
    } else {
        Err(format!("`{t}`: unknown unit `{unit}`"))
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t = Threshold::parse("http_req_duration{step:place_order} p99 < 300ms").unwrap();
        assert_eq!(t.metric, Metric::HttpReqDuration);
        assert_eq!(t.step.as_deref(), Some("place_order"));
        assert_eq!(t.stat, Stat::Quantile(0.99));
        assert_eq!((t.op, t.limit), (Op::Lt, 300.0));

        let t = Threshold::parse("errors rate < 1%").unwrap();
        assert_eq!((t.metric, t.limit), (Metric::ErrorRate, 0.01));
        let t = Threshold::parse("error_rate <= 0.05").unwrap();
        assert_eq!((t.op, t.limit), (Op::Le, 0.05));
        let t = Threshold::parse("iteration_duration p99.9 < 2s").unwrap();
        assert_eq!((t.limit, t.stat.to_string()), (2000.0, "p99.9".to_string()));
        let t = Threshold::parse("http_reqs rate >= 4").unwrap();
        assert!(t.holds(4.0) && !t.holds(3.9));
        let t = Threshold::parse("dropped_iterations < 1").unwrap();
        assert!(t.holds(0.0) && !t.holds(1.0));
    }

    #[test]
    fn refuses_bad_rules_with_a_reason() {
        for (rule, needle) in [
            ("http_req_duration < 300ms", "statistic"),
            ("http_req_duration p99 < 300", "unit"),
            ("latency_total p99 < 3ms", "unknown metric"),
            ("error_rate < 5", "fraction"),
            ("error_rate 1%", "comparison"),
            ("http_req_duration{route:x} p99 < 1s", "selector"),
            ("iteration_duration{step:a} p99 < 1s", "per-step"),
            ("http_req_duration p101 < 1s", "statistic"),
        ] {
            let err = Threshold::parse(rule).unwrap_err();
            assert!(err.contains(needle), "{rule}: {err}");
        }
    }
}
