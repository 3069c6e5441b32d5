//! Runs the worked example of `docs/plugins/visitor-access.md` against the logic, the
//! way the repository's docs test runs it against the host: every step in order, on a
//! fresh state, with the default config, at a "now" in 2026 and in 2035. Steps whose
//! expected body is a refusal by the input schema (it has `details`) never reach the
//! plugin, so they are skipped here.

use crate::config::Config;
use crate::dispatch;
use crate::store::{MemStore, Session};
use courtyard_sdk::{Error, Value};
use serde_json::json;

#[derive(Debug)]
struct Step {
    community: String,
    operation: String,
    key: Option<String>,
    input: Value,
    expected: Value,
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn steps(doc: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find("```sh\n") {
        rest = &rest[at + 6..];
        let end = rest.find("```").expect("closed sh block");
        let command = rest[..end].replace("\\\n", " ");
        rest = &rest[end + 3..];
        let json_at = rest.find("```json\n").expect("a json block follows");
        assert!(
            !rest[..json_at].contains("```"),
            "only prose between a command and its response"
        );
        rest = &rest[json_at + 8..];
        let end = rest.find("```").expect("closed json block");
        let expected: Value = serde_json::from_str(&rest[..end]).expect("expected JSON");
        rest = &rest[end + 3..];

        assert!(
            command
                .trim_start()
                .starts_with("curl -s -X POST localhost:8080/v1/communities/")
        );
        let url = between(&command, "localhost:8080", " ").expect("url");
        let community = between(url, "/v1/communities/", "/").expect("community");
        let operation = url.rsplit('/').next().expect("operation");
        assert!(url.contains("/plugins/visitor-access/invoke/"), "{url}");
        let key = between(&command, "-H 'Idempotency-Key: ", "'").map(str::to_owned);
        let body = between(&command, "-d '", "'").expect("-d body");
        steps.push(Step {
            community: community.to_owned(),
            operation: operation.to_owned(),
            key,
            input: serde_json::from_str(body).expect("body JSON"),
            expected,
        });
    }
    steps
}

/// Structural comparison with `"<any>"` matching anything.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == "<any>" => true,
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a))
        }
        (e, a) => e == a,
    }
}

fn error_body(e: &Error) -> Value {
    let (code, message) = match e {
        Error::InvalidInput(m) => ("invalid_input", m),
        Error::NotFound(m) => ("not_found", m),
        Error::Conflict(m) => ("conflict", m),
        Error::Unavailable(m) => ("unavailable", m),
        Error::Internal(m) => ("plugin_failed", m),
    };
    json!({"error": {"code": code, "message": message}})
}

fn run_at(doc: &str, start_ms: i64) -> usize {
    let mut stores: std::collections::BTreeMap<String, MemStore> = Default::default();
    let mut now = start_ms;
    let steps = steps(doc);
    for (n, step) in steps.iter().enumerate() {
        now += 1500;
        if step.expected["error"].get("details").is_some() {
            continue; // refused by the host's schema check
        }
        let store = stores.entry(step.community.clone()).or_default();
        let before = store.clone();
        let mut s = Session::new(
            store,
            now,
            Config::default(),
            step.community.clone(),
            step.key.clone(),
        );
        let actual = match dispatch(&mut s, &step.operation, step.input.clone()) {
            Ok(v) => v,
            Err(e) => {
                *store = before;
                error_body(&e)
            }
        };
        assert!(
            matches(&step.expected, &actual),
            "step {} ({}) at {now}:\nexpected {}\nactual   {}",
            n + 1,
            step.operation,
            step.expected,
            actual
        );
    }
    steps.len()
}

#[test]
fn the_worked_example_runs_in_2026_and_2035() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/plugins/visitor-access.md"
    );
    let doc = std::fs::read_to_string(path).expect("the doc page");
    let example = &doc[doc.find("## Worked example").expect("a worked example")..];
    // 2026-06-01T10:00:00Z and 2035-06-01T10:00:00Z.
    for start in [1_780_308_000_000, 2_064_304_800_000] {
        let n = run_at(example, start);
        assert!((8..=20).contains(&n), "8 to 20 steps, found {n}");
    }
}

#[test]
fn the_matcher() {
    assert!(matches(&json!({"a": "<any>"}), &json!({"a": [1]})));
    assert!(!matches(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    assert!(!matches(&json!([1, 2]), &json!([2, 1])));
}
