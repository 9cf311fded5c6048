//! Bad input gets an error or a reported problem, never a panic: variable
//! substitution and the structure check over arbitrary text and JSON.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;

use glasshouse_alerts::contract::Contract;
use glasshouse_dashboards::model::DashboardFile;
use glasshouse_dashboards::{structure, vars};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        r#"[a-z${}\[\]_ "]{0,12}"#.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("panels".to_owned()),
                    Just("targets".to_owned()),
                    Just("datasource".to_owned()),
                    Just("templating".to_owned()),
                    Just("list".to_owned()),
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("expr".to_owned()),
                    Just("uid".to_owned()),
                    Just("fieldConfig".to_owned()),
                    Just("defaults".to_owned()),
                    Just("current".to_owned()),
                    Just("value".to_owned()),
                    Just("query".to_owned()),
                    Just("name".to_owned()),
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn substitution_never_panics(text in r#"[a-z${}\[\]_:0-9 "]{0,50}"#) {
        let d = DashboardFile { path: "x.json".into(), json: serde_json::json!({}) };
        let v = vars::Vars::for_dashboard(&d, 60);
        let _ = v.substitute(&text);
        let _ = vars::references(&text);
    }

    #[test]
    fn structure_check_never_panics(json in json_value()) {
        let contract = Contract::from_metrics_md("| `x_total` | counter | `a` | m |").unwrap();
        let d = DashboardFile { path: "x.json".into(), json };
        let _ = structure::check(&d, &BTreeMap::new(), &contract);
        let _ = d.panels();
    }
}
