//! The manifest agrees with the code: the same operations, events, config and templates.

use crate::alarms;
use crate::config::Config;
use crate::ops::{CHANGING, OPERATIONS};
use crate::rules::is_event_kind;
use crate::templates;
use courtyard_sdk::Value;
use std::collections::BTreeSet;

fn manifest() -> Value {
    serde_json::from_str(include_str!("../../manifest.json")).expect("manifest.json is JSON")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

#[test]
fn names_version_and_capabilities() {
    let m = manifest();
    assert_eq!(m["name"], "alert-rules");
    assert_eq!(m["version"], "0.1.0");
    assert_eq!(m["capabilities"], serde_json::json!(["state", "events"]));
    // The plugin keeps nothing in memory between calls, so the host may reuse an
    // instance for further calls of the same community.
    assert_eq!(
        m["instance_reuse"],
        serde_json::json!({ "max_calls": 10000 })
    );
    assert_eq!(
        keys(&m),
        [
            "capabilities",
            "config",
            "description",
            "events",
            "instance_reuse",
            "name",
            "operations",
            "version"
        ]
        .map(String::from)
        .into()
    );
}

#[test]
fn the_operations_are_the_dispatched_ones() {
    let m = manifest();
    let declared = keys(&m["operations"]);
    let served: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(declared, served);
    assert!(CHANGING.iter().all(|op| OPERATIONS.contains(op)));
    for (name, op) in m["operations"].as_object().expect("operations") {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{name}"
        );
        assert_eq!(
            keys(op),
            ["description", "input", "output"].map(String::from).into(),
            "{name}"
        );
        let description = op["description"].as_str().expect("description");
        assert!(!description.contains('\n'), "{name}: one line");
        assert_eq!(
            op["input"]["additionalProperties"],
            Value::Bool(false),
            "{name}: closed input"
        );
    }
}

#[test]
fn the_events_are_the_emitted_ones() {
    let m = manifest();
    let declared = keys(&m["events"]);
    let emitted: BTreeSet<String> = [
        alarms::RAISED,
        alarms::UPDATED,
        alarms::ESCALATED,
        alarms::ACKNOWLEDGED,
        alarms::CLEARED,
    ]
    .map(String::from)
    .into();
    assert_eq!(declared, emitted);
    assert!(declared.iter().all(|k| is_event_kind(k)));
}

#[test]
fn the_config_defaults_are_the_code_defaults() {
    let m = manifest();
    let props = m["config"]["properties"].as_object().expect("properties");
    let defaults: serde_json::Map<String, Value> = props
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.get("default")
                    .cloned()
                    .unwrap_or_else(|| panic!("{k} has no default")),
            )
        })
        .collect();
    let config: Config =
        serde_json::from_value(Value::Object(defaults)).expect("defaults fit Config");
    assert_eq!(config, Config::default());
    // An empty object (the host always merges the defaults in) also works.
    assert_eq!(
        serde_json::from_str::<Config>("{}").expect("empty"),
        Config::default()
    );
}

#[test]
fn the_template_lists_are_the_templates() {
    let m = manifest();
    let ids: Vec<Value> = templates::all().iter().map(|t| Value::from(t.id)).collect();
    assert_eq!(
        m["config"]["properties"]["default_templates"]["items"]["enum"],
        Value::Array(ids.clone())
    );
    assert_eq!(
        m["operations"]["install-template"]["input"]["properties"]["template"]["enum"],
        Value::Array(ids)
    );
}
