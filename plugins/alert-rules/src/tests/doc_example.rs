//! Runs the worked example of `docs/plugins/alert-rules.md` through the plugin, as the
//! repository's doc test runs it against the host: steps in order, a fresh community with
//! the default config, the real clock (here: two different dates). Refusals by the input
//! schema cannot be run without the host; for those the plugin must refuse as well.

use super::Harness;
use courtyard_sdk::{Error, Value, json};

const DOC: &str = include_str!("../../../../docs/plugins/alert-rules.md");

#[derive(Debug)]
struct Step {
    community: String,
    plugin: String,
    operation: String,
    key: Option<String>,
    input: Value,
    expected: Value,
}

/// The fenced blocks of a Markdown text, as (info string, body).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                body.push_str(inner);
                body.push('\n');
            }
            out.push((info.trim().to_owned(), body));
        }
    }
    out
}

fn parse_curl(sh: &str) -> (String, String, String, Option<String>, Value) {
    let line = sh.replace("\\\n", " ");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("localhost:8080/"))
        .unwrap_or_else(|| panic!("no URL in {sh}"));
    let parts: Vec<&str> = url
        .trim_start_matches("localhost:8080/")
        .split('/')
        .collect();
    assert_eq!(
        (parts.len(), parts[0], parts[1], parts[3], parts[5]),
        (7, "v1", "communities", "plugins", "invoke"),
        "{url}"
    );
    assert!(
        line.trim_start()
            .starts_with("curl -s -X POST localhost:8080/"),
        "{sh}"
    );
    assert!(line.contains("-H 'Content-Type: application/json'"), "{sh}");
    let key = line
        .split("-H 'Idempotency-Key: ")
        .nth(1)
        .map(|rest| rest.split('\'').next().expect("key").to_owned());
    let data = line
        .split(" -d '")
        .nth(1)
        .unwrap_or_else(|| panic!("no -d in {sh}"));
    let data = data
        .trim_end()
        .strip_suffix('\'')
        .unwrap_or_else(|| panic!("-d must end the command: {sh}"));
    let input = serde_json::from_str(data).unwrap_or_else(|e| panic!("bad JSON in {sh}: {e}"));
    (
        parts[2].into(),
        parts[4].into(),
        parts[6].into(),
        key,
        input,
    )
}

fn steps() -> Vec<Step> {
    let all = blocks(DOC);
    let example = DOC
        .find("## Worked example")
        .expect("a worked example section");
    let before = blocks(&DOC[..example]).len();
    let mut steps = Vec::new();
    let mut i = before;
    while i < all.len() {
        let (info, body) = &all[i];
        if info == "sh" {
            let (next_info, json_body) = all
                .get(i + 1)
                .unwrap_or_else(|| panic!("no json after {body}"));
            assert_eq!(next_info, "json", "a ```json block must follow {body}");
            let (community, plugin, operation, key, input) = parse_curl(body);
            let expected = serde_json::from_str(json_body)
                .unwrap_or_else(|e| panic!("bad expected JSON {json_body}: {e}"));
            steps.push(Step {
                community,
                plugin,
                operation,
                key,
                input,
                expected,
            });
            i += 2;
        } else {
            i += 1;
        }
    }
    steps
}

/// Whether `actual` matches `expected`, where `"<any>"` matches anything.
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
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        _ => expected == actual,
    }
}

fn error_body(e: &Error) -> Value {
    let (code, message) = match e {
        Error::InvalidInput(m) => ("invalid_input", m),
        Error::NotFound(m) => ("not_found", m),
        Error::Conflict(m) => ("conflict", m),
        Error::Unavailable(m) => ("unavailable", m),
        Error::Internal(m) => panic!("the example hits a plugin bug: {m}"),
    };
    json!({"error": {"code": code, "message": message}})
}

fn run_at(now_ms: i64) {
    let steps = steps();
    assert!(
        (8..=20).contains(&steps.len()),
        "8 to 20 steps, not {}",
        steps.len()
    );
    let refusals = steps
        .iter()
        .filter(|s| s.expected.get("error").is_some())
        .count();
    assert!(refusals >= 2, "at least two refusals");
    let mut h = Harness::defaults();
    h.now = now_ms;
    for (n, step) in steps.iter().enumerate() {
        assert_eq!(
            (step.community.as_str(), step.plugin.as_str()),
            ("nanhu", "alert-rules"),
            "step {}",
            n + 1
        );
        let result = h.call_with_key(&step.operation, step.key.as_deref(), step.input.clone());
        h.now += 7; // a few milliseconds between steps, as with a real host
        let by_schema = step.expected["error"].get("details").is_some();
        if by_schema {
            assert!(
                matches!(result, Err(Error::InvalidInput(_))),
                "step {} ({}): the schema refuses it; the plugin must too, got {result:?}",
                n + 1,
                step.operation
            );
            continue;
        }
        let actual = match &result {
            Ok(v) => v.clone(),
            Err(e) => error_body(e),
        };
        assert!(
            matches(&step.expected, &actual),
            "step {} ({} {}):\nexpected {}\nactual   {}",
            n + 1,
            step.operation,
            step.input,
            step.expected,
            actual
        );
    }
}

#[test]
fn the_worked_example_runs_in_2026() {
    run_at(1_780_000_000_000); // 2026-05-28
}

#[test]
fn the_worked_example_runs_in_2035() {
    run_at(2_065_000_000_000); // 2035-06-10
}
