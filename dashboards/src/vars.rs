//! Grafana template variables in queries (`$var`, `${var}`, `${var:fmt}`,
//! `[[var]]`, and built-ins like `$__rate_interval`), replaced by values that
//! make the query runnable against Prometheus outside Grafana.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::DashboardFile;

/// Values for one dashboard's variables.
#[derive(Debug, Clone)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

/// What Grafana would put for its built-ins. `$__rate_interval` is at least
/// four scrape intervals; 1m is safe for the 5 s scrapes of the local stack.
fn builtins(range_seconds: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("__rate_interval".to_owned(), "1m".to_owned()),
        ("__interval".to_owned(), "15s".to_owned()),
        ("__interval_ms".to_owned(), "15000".to_owned()),
        ("__range".to_owned(), format!("{range_seconds}s")),
        ("__range_s".to_owned(), range_seconds.to_string()),
        ("__range_ms".to_owned(), (range_seconds * 1000).to_string()),
    ])
}

impl Vars {
    /// Builds values for a dashboard's variables: "All" becomes the variable's
    /// `allValue` (or `.*`), multi-values a `(a|b)` regex, others their current value.
    pub fn for_dashboard(d: &DashboardFile, range_seconds: u64) -> Self {
        let mut values = builtins(range_seconds);
        for v in d.variables() {
            let Some(name) = v["name"].as_str() else {
                continue;
            };
            values.insert(name.to_owned(), value_of(v));
        }
        Self { values }
    }

    /// `text` with every variable replaced; Err lists the variables it does not know.
    pub fn substitute(&self, text: &str) -> Result<String, Vec<String>> {
        let mut unknown = Vec::new();
        let out = replace_refs(text, |name| match self.values.get(name) {
            Some(v) => v.clone(),
            None => {
                unknown.push(name.to_owned());
                String::new()
            }
        });
        if unknown.is_empty() { Ok(out) } else { Err(unknown) }
    }
}

fn value_of(v: &Value) -> String {
    let current = &v["current"]["value"];
    let all_selected = match current {
        Value::String(s) => s == "$__all",
        Value::Array(a) => a.iter().any(|x| x == "$__all"),
        _ => false,
    };
    if all_selected || (current.is_null() && v["includeAll"].as_bool() == Some(true)) {
        return v["allValue"].as_str().filter(|s| !s.is_empty()).unwrap_or(".*").to_owned();
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            if parts.len() == 1 { parts[0].to_owned() } else { format!("({})", parts.join("|")) }
        }
        _ => v["query"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Names of the variables `text` refers to.
pub fn references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    replace_refs(text, |name| {
        names.push(name.to_owned());
        String::new()
    });
    names
}

/// `text` with every variable reference replaced by `placeholder`, for checks
/// that only need the query to lex (names and labels), not real values.
pub fn blank_out(text: &str, placeholder: &str) -> String {
    replace_refs(text, |_| placeholder.to_owned())
}

/// Replaces each variable reference in `text` by `f(name)`. A `$` followed by
/// a digit (`$1` in label_replace) is not a variable.
fn replace_refs(text: &str, mut f: impl FnMut(&str) -> String) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c == '$' && chars.get(i + 1) == Some(&'{') {
            if let Some(end) = chars[i + 2..].iter().position(|&c| c == '}') {
                let inner: String = chars[i + 2..i + 2 + end].iter().collect();
                let name = inner.split(':').next().unwrap_or_default();
                if !name.is_empty() && name.chars().all(is_name) {
                    out.push_str(&f(name));
                    i += end + 3;
                    continue;
                }
            }
        } else if c == '$' && chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') {
            let len = chars[i + 1..].iter().take_while(|c| is_name(**c)).count();
            let name: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push_str(&f(&name));
            i += len + 1;
            continue;
        } else if c == '['
            && chars.get(i + 1) == Some(&'[')
            && let Some(end) = chars[i + 2..].windows(2).position(|w| w == [']', ']'])
        {
            let inner: String = chars[i + 2..i + 2 + end].iter().collect();
            let name = inner.split(':').next().unwrap_or_default();
            if !name.is_empty() && name.chars().all(is_name) {
                out.push_str(&f(name));
                i += end + 4;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dash(vars: Value) -> DashboardFile {
        DashboardFile { path: "x.json".into(), json: json!({ "templating": { "list": vars } }) }
    }

    #[test]
    fn substitutes_builtins_all_multi_and_text() {
        let d = dash(json!([
            { "name": "instance", "type": "query", "includeAll": true, "allValue": ".*", "current": { "value": ["$__all"] } },
            { "name": "svc", "type": "custom", "current": { "value": ["order", "inventory"] } },
            { "name": "one", "type": "custom", "current": { "value": "order" } },
            { "name": "trace_id", "type": "textbox", "current": { "value": "" } },
        ]));
        let v = Vars::for_dashboard(&d, 1800);
        assert_eq!(
            v.substitute(r#"rate(x{instance=~"$instance",s=~"${svc}",o="[[one]]"}[$__rate_interval]) |~ "${trace_id:regex}" $__range"#)
                .unwrap(),
            r#"rate(x{instance=~".*",s=~"(order|inventory)",o="order"}[1m]) |~ "" 1800s"#
        );
        // `$1` in label_replace is not a variable; unknown variables are reported.
        assert_eq!(v.substitute(r#"label_replace(up, "a", "$1", "b", "(.*)")"#).unwrap(), r#"label_replace(up, "a", "$1", "b", "(.*)")"#);
        assert_eq!(v.substitute("x{a=\"$nope\"} ${alsonope}").unwrap_err(), ["nope", "alsonope"]);
        assert_eq!(references("$a ${b:csv} [[c]] $1 $__range"), ["a", "b", "c", "__range"]);
        assert_eq!(blank_out("x{a=~\"${a:regex}\"}[$__rate_interval]", "1m"), "x{a=~\"1m\"}[1m]");
    }
}
