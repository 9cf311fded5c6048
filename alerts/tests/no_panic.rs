//! Bad input gets an error, never a panic: the PromQL lexer, the duration
//! parser, the METRICS.md parser and the spec parser over arbitrary text.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use glasshouse_alerts::contract::{Contract, parse_families};
use glasshouse_alerts::duration::PromDuration;
use glasshouse_alerts::{promql, rules, spec};
use proptest::prelude::*;

/// Text made mostly of PromQL's own characters, so inputs get deep into the lexer.
fn promqlish() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[a-z_:{}()\[\]=!~"'`,.0-9 +*/<>@#\\$-]{0,60}"#).unwrap()
}

proptest! {
    #[test]
    fn selectors_never_panic(expr in promqlish()) {
        let _ = promql::selectors(&expr);
    }

    #[test]
    fn contract_check_never_panics(expr in promqlish()) {
        let c = Contract::from_metrics_md("| `up_total` | counter | `a` (`x`) | m |").unwrap();
        let _ = c.check_expr(&expr);
    }

    #[test]
    fn durations_never_panic(text in "[0-9a-zµ€ ]{0,12}") {
        let _ = PromDuration::parse(&text);
    }

    #[test]
    fn markdown_tables_never_panic(text in r#"[|`a-z_() ,—\n-]{0,80}"#) {
        let _ = parse_families(&text);
    }

    #[test]
    fn specs_and_rule_files_never_panic(text in r#"[a-z: \n\-{}\[\]"._0-9]{0,120}"#) {
        let _ = spec::parse(&text);
        let _ = rules::parse(&text);
    }
}
