//! Tests of the plugin against its contract: the manifest declares exactly the operations
//! and events the code has; inputs the tests send satisfy the input schemas; outputs and
//! event payloads satisfy their schemas; and the worked example of
//! `docs/plugins/canteen.md` gives the documented responses.
//!
//! The schema check here is a small subset of JSON Schema (types, enums, required and
//! unknown properties, ranges, lengths, items) — enough for this manifest, which uses no
//! composition keywords. `pattern` is not checked (the host does that before a call).

use crate::api::{self, Call};
use crate::config::Config;
use crate::events;
use crate::store::mem::MemStore;
use crate::testing::{NOW, local_ms};
use courtyard_sdk::Error;
use serde_json::{Value, json};

fn manifest() -> Value {
    serde_json::from_str(include_str!("../manifest.json")).expect("manifest.json is JSON")
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unsupported type {other}"),
    }
}

const SUPPORTED: [&str; 19] = [
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "pattern",
    "description",
    "default",
    "format",
    "$schema",
];

/// Appends the ways `v` breaks `schema` to `errors`.
fn check(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = schema.as_object().expect("a schema is an object");
    for k in s.keys() {
        assert!(
            SUPPORTED.contains(&k.as_str()),
            "the test's checker does not know {k:?} (at {at})"
        );
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts
                .iter()
                .any(|t| type_matches(t.as_str().expect("type"), v)),
            _ => panic!("bad type at {at}"),
        };
        if !ok {
            errors.push(format!("at {at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        errors.push(format!("at {at}: {v} is not one of {options:?}"));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errors.push(format!("at {at}: {v} is not {c}"));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(format!("at {at}: {v} is less than the minimum of {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(format!("at {at}: {v} is greater than the maximum of {max}"));
        }
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            errors.push(format!("at {at}: {v} is too short"));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            errors.push(format!("at {at}: {v} is too long"));
        }
    }
    if let Some(items) = v.as_array() {
        let len = items.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            errors.push(format!("at {at}: {v} has less than the minimum of items"));
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            errors.push(format!("at {at}: {v} has more than the maximum of items"));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(format!("at {at}: {v} has non-unique elements"));
                }
            }
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{at}/{i}"), errors);
            }
        }
    }
    if let Some(map) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required {
                let r = r.as_str().expect("name");
                if !map.contains_key(r) {
                    errors.push(format!("at {at}: {r:?} is a required property"));
                }
            }
        }
        for (k, val) in map {
            match props.and_then(|p| p.get(k)) {
                Some(prop) => check(prop, val, &format!("{at}/{k}"), errors),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("at {at}: additional property {k:?} is not allowed"));
                }
                None => {}
            }
        }
    }
}

fn problems(schema: &Value, v: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, v, "", &mut errors);
    errors
}

/// The host's error body for a plugin error.
fn error_body(e: &Error) -> Value {
    let (code, message) = match e {
        Error::InvalidInput(m) => ("invalid_input", m),
        Error::NotFound(m) => ("not_found", m),
        Error::Conflict(m) => ("conflict", m),
        Error::Unavailable(m) => ("unavailable", m),
        Error::Internal(m) => panic!("internal error (a bug): {m}"),
    };
    json!({"error": {"code": code, "message": message}})
}

/// One community's host, as far as the plugin can tell: schemas checked on the way in
/// and out, all-or-nothing calls.
struct Host {
    manifest: Value,
    store: MemStore,
    config: Config,
    now_ms: i64,
}

impl Host {
    fn new(now_ms: i64) -> Self {
        Self {
            manifest: manifest(),
            store: MemStore::default(),
            config: Config::default(),
            now_ms,
        }
    }

    /// Invokes like the HTTP route; returns the response body.
    fn invoke(&mut self, operation: &str, key: Option<&str>, input: Value) -> Value {
        let op = &self.manifest["operations"][operation];
        assert!(op.is_object(), "the manifest has no operation {operation}");
        let errors = problems(&op["input"], &input);
        if !errors.is_empty() {
            return json!({"error": {
                "code": "invalid_input",
                "message": format!("the input does not match the input schema of canteen/{operation}"),
                "details": errors,
            }});
        }
        let events_before = self.store.events.len();
        let call = Call {
            now_ms: self.now_ms,
            idempotency_key: key,
        };
        let config = self.config.clone();
        match self
            .store
            .call(|s| api::dispatch(s, &config, call, operation, input))
        {
            Ok(output) => {
                let errors = problems(&op["output"], &output);
                assert!(errors.is_empty(), "{operation} output {output}: {errors:?}");
                for (kind, payload) in &self.store.events[events_before..] {
                    let decl = &self.manifest["events"][kind];
                    assert!(decl.is_object(), "{kind} is not declared");
                    let errors = problems(&decl["payload"], payload);
                    assert!(errors.is_empty(), "{kind} payload {payload}: {errors:?}");
                }
                output
            }
            Err(e) => error_body(&e),
        }
    }
}

#[test]
fn the_manifest_declares_exactly_what_the_code_serves() {
    let m = manifest();
    assert_eq!(m["name"], "canteen");
    assert_eq!(m["version"], "0.1.0");
    assert_eq!(m["capabilities"], json!(["state", "events"]));
    let mut declared: Vec<&str> = m["operations"]
        .as_object()
        .expect("ops")
        .keys()
        .map(String::as_str)
        .collect();
    declared.sort_unstable();
    let mut served: Vec<&str> = api::CHANGING
        .iter()
        .chain(api::READING.iter())
        .copied()
        .collect();
    served.sort_unstable();
    assert_eq!(declared, served);
    let mut kinds: Vec<&str> = m["events"]
        .as_object()
        .expect("events")
        .keys()
        .map(String::as_str)
        .collect();
    kinds.sort_unstable();
    let mut emitted = events::ALL.to_vec();
    emitted.sort_unstable();
    assert_eq!(kinds, emitted);
    for (name, op) in m["operations"].as_object().expect("ops") {
        let desc = op["description"].as_str().expect("description");
        assert!(!desc.is_empty() && !desc.contains('\n'), "{name}: one line");
        assert_eq!(op["input"]["type"], "object", "{name}");
        assert_eq!(
            op["input"]["additionalProperties"], false,
            "{name}: unknown input fields are refused"
        );
        assert_eq!(op["output"]["type"], "object", "{name}");
        // Every schema only uses keywords this checker understands.
        problems(&op["input"], &json!({}));
    }
}

#[test]
fn every_operation_satisfies_its_schemas() {
    let mut h = Host::new(NOW);
    let steps: Vec<(&str, Option<&str>, Value)> = vec![
        (
            "set-menu",
            Some("m1"),
            json!({"date": "2099-12-01", "slot": "lunch", "dishes": [
            {"dish_id": "tofu", "name": "Braised tofu", "price_fen": 800, "cap": 3},
            {"dish_id": "rice", "name": "Rice", "price_fen": 200, "cap": 20}]}),
        ),
        (
            "set-menu",
            None,
            json!({"date": "2099-12-01", "slot": "dinner", "cutoff_at": "2099-12-01T15:00", "dishes": [
            {"dish_id": "congee", "name": "Millet congee", "price_fen": 300, "cap": 10}]}),
        ),
        (
            "get-menu",
            None,
            json!({"date": "2099-12-01", "slot": "lunch"}),
        ),
        (
            "list-menus",
            None,
            json!({"from": "2099-12-01", "to": "2099-12-07", "limit": 10}),
        ),
        (
            "close-slot",
            None,
            json!({"date": "2099-12-01", "slot": "dinner", "note": "gas repair", "actor": "manager"}),
        ),
        (
            "open-slot",
            None,
            json!({"date": "2099-12-01", "slot": "dinner"}),
        ),
        (
            "register-resident",
            None,
            json!({"resident_id": "r-1", "name": "Zhang", "birth_date": "2030-05-01",
            "address": "Building 3, Room 401", "phone": "139 0000 0001"}),
        ),
        (
            "register-resident",
            None,
            json!({"resident_id": "r-2", "name": "Li", "birth_date": "2070-05-01",
            "address": "Building 5, Room 202", "mobility_limited": true}),
        ),
        ("get-resident", None, json!({"resident_id": "r-1"})),
        ("list-residents", None, json!({"limit": 1})),
        (
            "place-order",
            Some("o1"),
            json!({"resident_id": "r-1", "date": "2099-12-01", "slot": "lunch",
            "fulfilment": "delivery", "items": [{"dish_id": "tofu", "portions": 1}], "note": "no chili"}),
        ),
        (
            "place-order",
            Some("o2"),
            json!({"resident_id": "r-2", "date": "2099-12-01", "slot": "lunch",
            "fulfilment": "delivery", "items": [{"dish_id": "rice", "portions": 2}]}),
        ),
        (
            "place-order",
            None,
            json!({"resident_id": "r-1", "date": "2099-12-01", "slot": "dinner",
            "fulfilment": "pickup", "items": [{"dish_id": "congee", "portions": 1}], "actor": "staff Wang"}),
        ),
        (
            "get-order",
            None,
            json!({"order_id": "2099-12-01-lunch-0001"}),
        ),
        (
            "list-orders",
            None,
            json!({"date": "2099-12-01", "fulfilment": "delivery"}),
        ),
        (
            "accept-order",
            None,
            json!({"order_id": "2099-12-01-lunch-0001", "actor": "cook"}),
        ),
        (
            "accept-order",
            None,
            json!({"order_id": "2099-12-01-lunch-0002"}),
        ),
        (
            "accept-order",
            None,
            json!({"order_id": "2099-12-01-dinner-0001"}),
        ),
        (
            "mark-ready",
            None,
            json!({"order_id": "2099-12-01-lunch-0001"}),
        ),
        (
            "mark-ready",
            None,
            json!({"order_id": "2099-12-01-dinner-0001"}),
        ),
        (
            "mark-picked-up",
            None,
            json!({"order_id": "2099-12-01-dinner-0001"}),
        ),
        (
            "assign-delivery",
            None,
            json!({"courier": "volunteer Wang", "order_ids": ["2099-12-01-lunch-0002"]}),
        ),
        (
            "unassign-delivery",
            None,
            json!({"order_id": "2099-12-01-lunch-0002", "reason": "Wang is ill"}),
        ),
        (
            "assign-delivery",
            None,
            json!({"courier": "volunteer Li", "note": "ring twice",
            "order_ids": ["2099-12-01-lunch-0001", "2099-12-01-lunch-0002"]}),
        ),
        (
            "cancel-order",
            None,
            json!({"order_id": "2099-12-01-lunch-0002", "by": "staff", "reason": "in hospital"}),
        ),
        (
            "start-run",
            None,
            json!({"run_id": "2099-12-01-lunch-run-002", "actor": "Li"}),
        ),
        (
            "get-run",
            None,
            json!({"run_id": "2099-12-01-lunch-run-002"}),
        ),
        (
            "list-runs",
            None,
            json!({"date": "2099-12-01", "courier": "volunteer Li"}),
        ),
        (
            "mark-delivered",
            None,
            json!({"order_id": "2099-12-01-lunch-0001"}),
        ),
        ("day-summary", None, json!({"date": "2099-12-01"})),
        ("sweep", None, json!({})),
    ];
    for (op, key, input) in steps {
        let out = h.invoke(op, key, input.clone());
        assert!(out.get("error").is_none(), "{op} {input}: {out}");
    }
    // Every operation ran, and every event kind was emitted (slot-closed by close-slot).
    let mut kinds: Vec<&str> = h.store.event_kinds();
    kinds.sort_unstable();
    kinds.dedup();
    let mut all = events::ALL.to_vec();
    all.sort_unstable();
    assert_eq!(kinds, all);
    // The sweep after the cutoffs.
    h.now_ms = local_ms("2099-12-01T16:00");
    let out = h.invoke("sweep", Some("sweep-1"), json!({"limit": 10}));
    assert_eq!(
        out["slots_closed"],
        json!([{"date": "2099-12-01", "slot": "lunch", "reason": "cutoff"},
                                           {"date": "2099-12-01", "slot": "dinner", "reason": "cutoff"}])
    );
}

#[test]
fn schema_refusals_look_like_the_hosts() {
    let mut h = Host::new(NOW);
    let out = h.invoke(
        "get-menu",
        None,
        json!({"date": "2099-12-01", "slot": "brunch"}),
    );
    assert_eq!(out["error"]["code"], "invalid_input");
    let out = h.invoke(
        "cancel-order",
        None,
        json!({"order_id": "2099-12-01-lunch-0001"}),
    );
    let details = out["error"]["details"].as_array().expect("details");
    assert!(
        details[0]
            .as_str()
            .is_some_and(|d| d.contains("\"by\" is a required property")),
        "{details:?}"
    );
}

// -- the worked example of the doc --------------------------------------------------

/// One step of the worked example.
#[derive(Debug)]
struct Step {
    community: String,
    operation: String,
    key: Option<String>,
    input: Value,
    expected: Value,
}

const URL_PREFIX: &str = "curl -s -X POST localhost:8080/v1/communities/";

fn parse_curl(command: &str) -> (String, String, Option<String>, Value) {
    let line = command.replace("\\\n", " ");
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let rest = line
        .strip_prefix(URL_PREFIX)
        .unwrap_or_else(|| panic!("step does not start with {URL_PREFIX:?}: {line}"));
    let (path, rest) = rest.split_once(' ').expect("headers follow the URL");
    let parts: Vec<&str> = path.split('/').collect();
    assert_eq!(parts.len(), 5, "{path}");
    assert_eq!(
        (parts[1], parts[2], parts[3]),
        ("plugins", "canteen", "invoke"),
        "{path}"
    );
    let rest = rest
        .strip_prefix("-H 'Content-Type: application/json' ")
        .unwrap_or_else(|| panic!("Content-Type header first: {rest}"));
    let (key, rest) = match rest.strip_prefix("-H 'Idempotency-Key: ") {
        Some(r) => {
            let (key, r) = r.split_once("' ").expect("end of the key");
            (Some(key.to_owned()), r)
        }
        None => (None, rest),
    };
    let body = rest
        .strip_prefix("-d '")
        .and_then(|b| b.strip_suffix('\''))
        .unwrap_or_else(|| panic!("a -d '<JSON>' body last: {rest}"));
    let input = serde_json::from_str(body).unwrap_or_else(|e| panic!("body {body}: {e}"));
    (parts[0].to_owned(), parts[4].to_owned(), key, input)
}

fn doc_steps() -> Vec<Step> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/plugins/canteen.md"
    ))
    .expect("docs/plugins/canteen.md");
    let example = doc
        .split("## Worked example")
        .nth(1)
        .expect("a worked example section");
    let mut steps = Vec::new();
    let mut pending: Option<String> = None;
    let mut lines = example.lines();
    while let Some(line) = lines.next() {
        let fence = line.trim_end();
        if fence == "```sh" || fence == "```json" {
            let mut block = String::new();
            for l in lines.by_ref() {
                if l.trim_end() == "```" {
                    break;
                }
                block.push_str(l);
                block.push('\n');
            }
            if fence == "```sh" {
                assert!(
                    pending.is_none(),
                    "a sh block without its json block: {pending:?}"
                );
                pending = Some(block);
            } else {
                let command = pending.take().expect("a json block follows a sh block");
                let (community, operation, key, input) = parse_curl(&command);
                let expected = serde_json::from_str(&block)
                    .unwrap_or_else(|e| panic!("expected {block}: {e}"));
                steps.push(Step {
                    community,
                    operation,
                    key,
                    input,
                    expected,
                });
            }
        } else if fence.starts_with("```") {
            panic!("unexpected fence {fence:?} in the worked example");
        }
    }
    assert!(pending.is_none(), "the last sh block has no json block");
    steps
}

/// Structural equality with "<any>" as a wildcard.
fn matches(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::String(s), _) if s == "<any>" => true,
        (Value::Object(e), Value::Object(g)) => {
            e.len() == g.len()
                && e.iter()
                    .all(|(k, v)| g.get(k).is_some_and(|gv| matches(v, gv)))
        }
        (Value::Array(e), Value::Array(g)) => {
            e.len() == g.len() && e.iter().zip(g).all(|(a, b)| matches(a, b))
        }
        (e, g) => e == g,
    }
}

fn run_worked_example(now_ms: i64) {
    let steps = doc_steps();
    assert!((8..=20).contains(&steps.len()), "{} steps", steps.len());
    let mut hosts: std::collections::BTreeMap<String, Host> = Default::default();
    let mut refusals = 0;
    for (i, step) in steps.iter().enumerate() {
        let host = hosts
            .entry(step.community.clone())
            .or_insert_with(|| Host::new(now_ms));
        let got = host.invoke(&step.operation, step.key.as_deref(), step.input.clone());
        assert!(
            matches(&step.expected, &got),
            "step {} ({} {}): expected\n{}\ngot\n{}",
            i + 1,
            step.operation,
            step.input,
            step.expected,
            serde_json::to_string(&got).expect("json")
        );
        refusals += usize::from(got.get("error").is_some());
    }
    assert!(refusals >= 2, "the example shows at least two refusals");
}

#[test]
fn the_worked_example_gives_the_documented_responses_today() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    run_worked_example(now);
}

#[test]
fn the_worked_example_gives_the_documented_responses_in_2026_and_2035() {
    for at in [
        "2026-01-01T00:00",
        "2026-07-15T12:00",
        "2035-06-01T09:30",
        "2035-12-31T23:59",
    ] {
        run_worked_example(local_ms(at));
    }
}
