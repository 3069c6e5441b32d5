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
use crate::testing::{NOW, assert_host_limits, event_kinds, local_ms};
use courtyard_sdk::Error;
use courtyard_sdk::testing::{MemoryStore, difference, doc_steps, error_body, run_doc_example};
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

/// One community's host, as far as the plugin can tell: schemas checked on the way in
/// and out, all-or-nothing calls.
struct Host {
    manifest: Value,
    store: MemoryStore,
    config: Config,
    now_ms: i64,
}

impl Host {
    fn new(now_ms: i64) -> Self {
        Self {
            manifest: manifest(),
            store: MemoryStore::default(),
            config: Config::default(),
            now_ms,
        }
    }

    /// The host's answer to an input the operation's input schema refuses, if it does.
    fn schema_refusal(&self, operation: &str, input: &Value) -> Option<Value> {
        let op = &self.manifest["operations"][operation];
        assert!(op.is_object(), "the manifest has no operation {operation}");
        let errors = problems(&op["input"], input);
        (!errors.is_empty()).then(|| {
            json!({"error": {
                "code": "invalid_input",
                "message": format!("the input does not match the input schema of canteen/{operation}"),
                "details": errors,
            }})
        })
    }

    /// Runs the plugin all or nothing on an input the schema admits; asserts that an
    /// output and its events satisfy their schemas and the host's limits, and that the
    /// plugin fails only as the caller's fault (an internal error is a bug).
    fn call(&mut self, operation: &str, key: Option<&str>, input: Value) -> Result<Value, Error> {
        let op = &self.manifest["operations"][operation];
        let events_before = self.store.events.len();
        let call = Call {
            now_ms: self.now_ms,
            idempotency_key: key,
        };
        let config = &self.config;
        let result = self
            .store
            .call(|s| api::dispatch(s, config, call, operation, input));
        match &result {
            Ok(output) => {
                let errors = problems(&op["output"], output);
                assert!(errors.is_empty(), "{operation} output {output}: {errors:?}");
                for (kind, payload) in &self.store.events[events_before..] {
                    let decl = &self.manifest["events"][kind];
                    assert!(decl.is_object(), "{kind} is not declared");
                    let errors = problems(&decl["payload"], payload);
                    assert!(errors.is_empty(), "{kind} payload {payload}: {errors:?}");
                }
                assert_host_limits(&self.store);
            }
            Err(Error::Internal(m)) => panic!("internal error (a bug): {m}"),
            Err(_) => {}
        }
        result
    }

    /// Invokes like the HTTP route; returns the response body.
    fn invoke(&mut self, operation: &str, key: Option<&str>, input: Value) -> Value {
        match self.schema_refusal(operation, &input) {
            Some(refusal) => refusal,
            None => self
                .call(operation, key, input)
                .unwrap_or_else(|e| error_body(&e)),
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
    let mut kinds: Vec<&str> = event_kinds(&h.store);
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

/// How every command of the worked example starts.
const COMMAND: &str = "curl -s -X POST localhost:8080/v1/communities/";

/// Checks the form of the worked example's blocks (the SDK's runner reads only the URL,
/// the key and the body): `sh` blocks are complete commands, and no other kind of block
/// comes between the steps.
fn check_example_blocks(doc: &str) {
    let example = doc
        .split("## Worked example")
        .nth(1)
        .expect("a worked example section");
    for block in example.split("```").skip(1).step_by(2) {
        let (info, body) = block.split_once('\n').unwrap_or((block, ""));
        match info.trim_end() {
            "sh" => assert!(
                body.starts_with(COMMAND) && body.contains(" -H 'Content-Type: application/json' "),
                "a step is `{COMMAND}... -H 'Content-Type: application/json' ...`: {body}"
            ),
            "json" => {}
            other => panic!("unexpected fence {other:?} in the worked example"),
        }
    }
}

/// Runs the worked example from `start_ms` against a fresh host per community: the steps
/// the host refuses by the input schema are refused alike by the checker here, the others
/// give the documented responses.
fn run_worked_example(start_ms: i64) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/plugins/canteen.md"
    ))
    .expect("docs/plugins/canteen.md");
    check_example_blocks(&doc);
    let steps = doc_steps(&doc);
    assert!((8..=20).contains(&steps.len()), "{} steps", steps.len());
    let schema = Host::new(start_ms);
    let mut refusals = 0;
    for step in &steps {
        assert_eq!(step.plugin, "canteen", "line {}", step.line);
        if step.refused_by_schema() {
            let refusal = schema
                .schema_refusal(&step.operation, &step.input)
                .unwrap_or_else(|| panic!("line {}: the input schema admits it", step.line));
            assert_eq!(
                difference(&step.expected, &refusal),
                None,
                "line {}",
                step.line
            );
            refusals += 1;
        }
    }
    let by_schema = refusals;
    let mut hosts: std::collections::BTreeMap<String, Host> = Default::default();
    let ran = run_doc_example(&doc, start_ms, |ctx, input| {
        let host = hosts
            .entry(ctx.community.clone())
            .or_insert_with(|| Host::new(ctx.now_ms));
        host.now_ms = ctx.now_ms;
        assert_eq!(
            host.schema_refusal(&ctx.operation, &input),
            None,
            "{}",
            ctx.request_id
        );
        let result = host.call(&ctx.operation, ctx.idempotency_key.as_deref(), input);
        refusals += usize::from(result.is_err());
        result
    });
    assert_eq!(ran + by_schema, steps.len());
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
