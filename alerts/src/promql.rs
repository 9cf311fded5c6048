//! Just enough PromQL lexing to find every series selector in an expression:
//! the metric name and its label matchers. Syntax errors are Prometheus' job
//! (promtool and the query API report them); this only has to find names
//! reliably in valid expressions, for the naming-contract checks.

use anyhow::{Context, bail};

/// One vector selector such as `http_server_request_duration_seconds_count{service="order"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name, from before the braces or from a `__name__="..."` matcher.
    pub metric: Option<String>,
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    /// The string value with PromQL escapes resolved.
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// Numbers and durations: never names, so their exact value does not matter.
    Number,
    Punct(&'static str),
}

/// Keywords that may stand where a metric name could, and are not one.
const KEYWORDS: [&str; 8] = ["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"];

/// Keywords followed by a parenthesised label list (not a sub-expression).
const LABEL_LIST_KEYWORDS: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// Aggregation operators, which may be followed by `by`/`without` before their parentheses.
const AGGREGATORS: [&str; 13] =
    ["sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "limitk"];

const PUNCT: [&str; 24] =
    ["==", "!=", "=~", "!~", ">=", "<=", "(", ")", "{", "}", "[", "]", ",", "=", "+", "-", "*", "/", "%", "^", ">", "<", "@", ":"];

fn lex(expr: &str) -> anyhow::Result<Vec<Token>> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let (s, next) = lex_string(&chars, i).with_context(|| format!("in expression: {expr}"))?;
            out.push(Token::Str(s));
            i = next;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Number);
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let p = PUNCT
                .iter()
                .find(|p| rest.starts_with(**p))
                .with_context(|| format!("unexpected character '{c}' in expression: {expr}"))?;
            out.push(Token::Punct(p));
            i += p.len();
        }
    }
    Ok(out)
}

/// Reads a quoted string starting at `start`; returns its value and the index after it.
fn lex_string(chars: &[char], start: usize) -> anyhow::Result<(String, usize)> {
    let quote = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' && quote != '`' {
            let next = *chars.get(i + 1).context("unterminated escape in string")?;
            s.push(match next {
                'n' => '\n',
                't' => '\t',
                other => other,
            });
            i += 2;
        } else {
            s.push(c);
            i += 1;
        }
    }
    bail!("unterminated string starting at character {start}")
}

/// Every vector selector in `expr`, in order of appearance.
pub fn selectors(expr: &str) -> anyhow::Result<Vec<Selector>> {
    let toks = lex(expr)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Token::Ident(name) => {
                let next = toks.get(i + 1);
                if LABEL_LIST_KEYWORDS.contains(&name.as_str()) {
                    i += 1;
                    if next == Some(&Token::Punct("(")) {
                        i = skip_past(&toks, i, "(", ")").with_context(|| format!("unclosed label list after `{name}` in: {expr}"))?;
                    }
                    continue;
                }
                if next == Some(&Token::Punct("(")) || KEYWORDS.contains(&name.as_str()) {
                    i += 1; // a function or aggregation call, or an operator keyword
                    continue;
                }
                if AGGREGATORS.contains(&name.as_str()) && matches!(next, Some(Token::Ident(k)) if k == "by" || k == "without") {
                    i += 1;
                    continue;
                }
                let mut sel = Selector { metric: Some(name.clone()), matchers: Vec::new() };
                i += 1;
                if next == Some(&Token::Punct("{")) {
                    i = matchers(&toks, i, &mut sel.matchers).with_context(|| format!("in selector of `{name}` in: {expr}"))?;
                }
                out.push(sel);
            }
            Token::Punct("{") => {
                let mut sel = Selector { metric: None, matchers: Vec::new() };
                i = matchers(&toks, i, &mut sel.matchers).with_context(|| format!("in expression: {expr}"))?;
                sel.metric = sel.matchers.iter().find(|m| m.label == "__name__" && m.op == MatchOp::Equal).map(|m| m.value.clone());
                out.push(sel);
            }
            Token::Punct("[") => {
                i = skip_past(&toks, i, "[", "]").with_context(|| format!("unclosed `[` in: {expr}"))?;
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// From an opening `open` at `i`, the index after its matching `close`.
fn skip_past(toks: &[Token], i: usize, open: &'static str, close: &'static str) -> anyhow::Result<usize> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(i) {
        if *t == Token::Punct(open) {
            depth += 1;
        } else if *t == Token::Punct(close) {
            depth -= 1;
            if depth == 0 {
                return Ok(j + 1);
            }
        }
    }
    bail!("no closing `{close}`")
}

/// Parses `{label op "value", ...}` starting at the `{` at `i`; returns the index after `}`.
fn matchers(toks: &[Token], mut i: usize, out: &mut Vec<Matcher>) -> anyhow::Result<usize> {
    i += 1; // past `{`
    loop {
        match toks.get(i) {
            Some(Token::Punct("}")) => return Ok(i + 1),
            Some(Token::Ident(label)) => {
                let op = match toks.get(i + 1) {
                    Some(Token::Punct("=")) => MatchOp::Equal,
                    Some(Token::Punct("!=")) => MatchOp::NotEqual,
                    Some(Token::Punct("=~")) => MatchOp::Regex,
                    Some(Token::Punct("!~")) => MatchOp::NotRegex,
                    other => {
                        bail!("expected a match operator after label `{label}`, found {other:?}")
                    }
                };
                let Some(Token::Str(value)) = toks.get(i + 2) else {
                    bail!("expected a quoted value for label `{label}`");
                };
                out.push(Matcher { label: label.clone(), op, value: value.clone() });
                i += 3;
                match toks.get(i) {
                    Some(Token::Punct(",")) => i += 1,
                    Some(Token::Punct("}")) => {}
                    other => {
                        bail!("expected `,` or `}}` after matcher on `{label}`, found {other:?}")
                    }
                }
            }
            other => bail!("expected a label name or `}}` in selector, found {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        selectors(expr).unwrap().into_iter().map(|s| s.metric.unwrap_or_else(|| "<none>".into())).collect()
    }

    #[test]
    fn finds_names_and_skips_functions_keywords_and_label_lists() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (le, route) (rate(http_server_request_duration_seconds_bucket{service="order"}[5m])))"#
            ),
            ["http_server_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names("sum(rate(a_total[5m])) by (service) / ignoring (status) group_left (x) sum without (instance) (b_total) > bool 0"),
            ["a_total", "b_total"]
        );
        assert_eq!(
            names("slo:sli_error:ratio_rate5m{slo=\"x\"} > (14.4 * 0.001) and on (slo) up offset 5m"),
            ["slo:sli_error:ratio_rate5m", "up"]
        );
        assert_eq!(names(r#"label_replace(up, "by", "$1", "job", "(sum)") or vector(0) unless max_over_time(x[1h:5m])"#), ["up", "x"]);
        assert_eq!(names(r#"{__name__="orders_total", status="created"} # trailing comment with name_in_it"#), ["orders_total"]);
        assert_eq!(names("count by (topic) (deriv(messaging_consumer_lag[10m]) > 0) * -1e-3"), ["messaging_consumer_lag"]);
    }

    #[test]
    fn reads_matchers_with_ops_and_escapes() {
        let s = selectors(r#"x_bucket{le=~"0\\.30*", status!="4xx", a!~'b', c="q\"uote"}"#).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].matchers,
            vec![
                Matcher { label: "le".into(), op: MatchOp::Regex, value: "0\\.30*".into() },
                Matcher { label: "status".into(), op: MatchOp::NotEqual, value: "4xx".into() },
                Matcher { label: "a".into(), op: MatchOp::NotRegex, value: "b".into() },
                Matcher { label: "c".into(), op: MatchOp::Equal, value: "q\"uote".into() },
            ]
        );
    }

    #[test]
    fn malformed_selectors_are_errors_not_panics() {
        for bad in [r#"x{a="b""#, r#"x{a b}"#, r#"x{a="unterminated}"#, "x[5m", "sum by (le", "x{a=1}", "x ? y"] {
            assert!(selectors(bad).is_err(), "{bad} should fail");
        }
    }
}
