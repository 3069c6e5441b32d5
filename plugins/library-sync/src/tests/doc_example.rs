//! The worked example of `docs/plugins/library-sync.md`, run natively through the
//! dispatcher at two different "now"s (the end-to-end test runs it against a real host
//! with the real clock). Steps that the host's input schema refuses before the plugin runs
//! (their expected body has `details`) are skipped here.

use super::*;

const PAGE: &str = include_str!("../../../../docs/plugins/library-sync.md");

#[derive(Debug)]
struct Step {
    line: usize,
    operation: String,
    key: Option<String>,
    body: Value,
    expected: Value,
}

fn steps() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut pending: Option<(usize, String, Option<String>, Value)> = None;
    let mut block: Option<(String, usize, String)> = None;
    for (i, line) in PAGE.lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match block.take() {
                None => block = Some((info.trim().to_owned(), i + 1, String::new())),
                Some((info, start, content)) => match info.as_str() {
                    "sh" if content.trim_start().starts_with("curl ") => {
                        assert!(
                            pending.is_none(),
                            "line {start}: the previous step has no json block"
                        );
                        pending = Some(parse_curl(start, &content));
                    }
                    "json" => {
                        if let Some((line, operation, key, body)) = pending.take() {
                            let expected = serde_json::from_str(&content)
                                .unwrap_or_else(|e| panic!("line {start}: bad JSON: {e}"));
                            steps.push(Step {
                                line,
                                operation,
                                key,
                                body,
                                expected,
                            });
                        }
                    }
                    _ => {}
                },
            }
        } else if let Some((_, _, content)) = block.as_mut() {
            content.push_str(line);
            content.push('\n');
        }
    }
    assert!(pending.is_none(), "the last step has no json block");
    steps
}

fn parse_curl(line: usize, command: &str) -> (usize, String, Option<String>, Value) {
    let joined = command.replace("\\\n", " ");
    let prefix = "localhost:8080/v1/communities/nanhu/plugins/library-sync/invoke/";
    let at = joined
        .find(prefix)
        .unwrap_or_else(|| panic!("line {line}: calls {prefix}"));
    let rest = &joined[at + prefix.len()..];
    let operation = rest
        .split_whitespace()
        .next()
        .expect("operation")
        .to_owned();
    assert!(
        joined.contains("-H 'Content-Type: application/json'"),
        "line {line}"
    );
    let key = joined.find("-H 'Idempotency-Key: ").map(|at| {
        let rest = &joined[at + "-H 'Idempotency-Key: ".len()..];
        rest[..rest.find('\'').expect("closing quote")].to_owned()
    });
    let at = joined
        .find("-d '")
        .unwrap_or_else(|| panic!("line {line}: no -d"));
    let rest = &joined[at + 4..];
    let body = &rest[..rest.rfind('\'').expect("closing quote")];
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("line {line}: bad body: {e}"));
    (line, operation, key, body)
}

/// The host's error body for a plugin error.
fn error_body(e: &Error) -> Value {
    let (code, message) = match e {
        Error::InvalidInput(m) => ("invalid_input", m.clone()),
        Error::NotFound(m) => ("not_found", m.clone()),
        Error::Conflict(m) => ("conflict", m.clone()),
        Error::Unavailable(m) => ("unavailable", m.clone()),
        Error::Internal(_) => ("internal", "internal error".to_owned()),
    };
    json!({"error": {"code": code, "message": message}})
}

fn difference(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::String(s), _) if s == "<any>" => None,
        (Value::Object(e), Value::Object(a)) => {
            e.keys()
                .chain(a.keys())
                .find_map(|k| match (e.get(k), a.get(k)) {
                    (Some(ev), Some(av)) => difference(ev, av, &format!("{at}/{k}")),
                    (ev, av) => Some(format!("{at}/{k}: expected {ev:?}, got {av:?}")),
                })
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| difference(ev, av, &format!("{at}/{i}"))),
        _ if expected == actual => None,
        _ => Some(format!("{at}: expected {expected}, got {actual}")),
    }
}

fn run_at(now: i64) {
    let steps = steps();
    assert!((8..=20).contains(&steps.len()), "{} steps", steps.len());
    let mut w = World::new();
    w.now = now;
    let mut refusals = 0;
    for step in &steps {
        if step.expected["error"].get("details").is_some() {
            refusals += 1;
            continue;
        }
        let actual = match w.op_keyed(&step.operation, step.key.as_deref(), step.body.clone()) {
            Ok(output) => output,
            Err(e) => {
                refusals += 1;
                error_body(&e)
            }
        };
        if let Some(diff) = difference(&step.expected, &actual, "") {
            panic!(
                "line {}: {} answered {actual}: {diff}",
                step.line, step.operation
            );
        }
        w.now += 60_000;
    }
    assert!(refusals >= 2, "the example shows at least two refusals");
}

#[test]
fn the_worked_example_runs_as_written_in_2026() {
    run_at(T0);
}

#[test]
fn the_worked_example_runs_as_written_in_2035() {
    // 2035-03-15 09:30 UTC.
    run_at(2_057_563_800_000);
}
