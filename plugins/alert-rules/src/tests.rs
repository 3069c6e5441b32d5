//! Scenario tests: whole operations through [`dispatch`], over an in-memory store, with
//! controlled `now` values. Unit tests of each piece live beside it.

use crate::config::Config;
use crate::ops::{OPERATIONS, dispatch};
use crate::store::keys;
use crate::templates;
use courtyard_sdk::testing::MemoryStore;
use courtyard_sdk::{Context, Error, Value, json};

mod doc_example;
mod manifest;

/// 2099-12-01T10:00:00Z.
pub const T0: i64 = 4_099_802_400_000;
pub const SEC: i64 = 1000;
pub const MIN: i64 = 60 * SEC;

/// A community with the plugin: a store, a config and a clock.
pub struct Harness {
    pub store: MemoryStore,
    pub config: Config,
    pub now: i64,
    /// Every successful call (operation, input, output), for the schema checks.
    pub samples: Vec<Value>,
}

impl Harness {
    /// A community with no default templates (tests install what they need).
    pub fn bare() -> Self {
        Self::with(Config {
            default_templates: vec![],
            ..Config::default()
        })
    }

    /// A community with the default config (every template installed on first call).
    pub fn defaults() -> Self {
        Self::with(Config::default())
    }

    pub fn with(config: Config) -> Self {
        Self {
            store: MemoryStore::default(),
            config,
            now: T0,
            samples: Vec::new(),
        }
    }

    /// Runs one call as the host does: its writes and events are kept only when it
    /// succeeds, and they must fit the host's limits.
    pub fn invoke(&mut self, ctx: &Context, input: Value) -> Result<Value, Error> {
        let config = &self.config;
        let events_before = self.store.events.len();
        let result = self
            .store
            .call(|s| dispatch(s, config, ctx, &ctx.operation, input.clone()));
        check_host_limits(&self.store, events_before);
        if let Ok(output) = &result {
            self.samples
                .push(json!({"operation": ctx.operation, "input": input, "output": output}));
        }
        result
    }

    pub fn call_with_key(
        &mut self,
        operation: &str,
        key: Option<&str>,
        input: Value,
    ) -> Result<Value, Error> {
        let ctx = Context {
            community: "nanhu".into(),
            plugin: "alert-rules".into(),
            operation: operation.into(),
            idempotency_key: key.map(str::to_owned),
            now_ms: self.now,
            request_id: "test".into(),
        };
        self.invoke(&ctx, input)
    }

    pub fn call(&mut self, operation: &str, input: Value) -> Result<Value, Error> {
        self.call_with_key(operation, None, input)
    }

    pub fn ok(&mut self, operation: &str, input: Value) -> Value {
        self.call(operation, input.clone())
            .unwrap_or_else(|e| panic!("{operation} {input} failed: {e}"))
    }

    /// Installs a template under its own id.
    pub fn install(&mut self, template: &str) -> Value {
        self.ok("install-template", json!({"template": template}))
    }

    /// Ingests an event that happened at `at_ms`, as the device sends it: the clock moves
    /// to `at_ms` if that is later (the host refuses events from the future). Returns the
    /// results of its rules.
    pub fn ingest(&mut self, kind: &str, payload: Value, at_ms: i64) -> Value {
        self.now = self.now.max(at_ms);
        self.ok(
            "ingest",
            json!({"kind": kind, "payload": payload, "at_ms": at_ms}),
        )
    }

    /// The outcome of the single rule an ingest touched, as (outcome, alarm).
    pub fn outcome(result: &Value) -> (String, Value) {
        let results = result["results"].as_array().expect("results");
        assert_eq!(results.len(), 1, "{result}");
        (
            results[0]["outcome"].as_str().expect("outcome").to_owned(),
            results[0]["alarm"].clone(),
        )
    }

    /// Ingests `(at_ms, payload)` events of `kind` in order; returns their outcomes (one
    /// rule each).
    pub fn outcomes(
        &mut self,
        kind: &str,
        events: impl IntoIterator<Item = (i64, Value)>,
    ) -> Vec<String> {
        events
            .into_iter()
            .map(|(at_ms, payload)| Self::outcome(&self.ingest(kind, payload, at_ms)).0)
            .collect()
    }

    pub fn alarm(&mut self, id: &str) -> Value {
        self.ok("get-alarm", json!({"id": id}))
    }

    /// The kinds of the events emitted since the last call of this, without the prefix.
    pub fn events(&mut self) -> Vec<String> {
        self.store
            .take_events()
            .into_iter()
            .map(|(kind, _)| kind.trim_start_matches("alert-rules.").to_owned())
            .collect()
    }
}

impl Drop for Harness {
    /// With `ALERT_RULES_SAMPLES=path`, appends every successful call to `path` (one JSON
    /// document per line) so that a script can check them against the manifest's schemas.
    fn drop(&mut self) {
        if let Some(path) = std::env::var_os("ALERT_RULES_SAMPLES") {
            use std::io::Write;
            let mut text = String::new();
            for s in &self.samples {
                text.push_str(&s.to_string());
                text.push('\n');
            }
            for (kind, payload) in &self.store.events {
                text.push_str(&json!({"event": kind, "payload": payload}).to_string());
                text.push('\n');
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("samples file");
            file.write_all(text.as_bytes()).expect("write samples");
        }
    }
}

/// How many keys of `store` start with `prefix`.
pub fn count(store: &MemoryStore, prefix: &str) -> usize {
    store.data.keys().filter(|k| k.starts_with(prefix)).count()
}

/// What the host refuses: keys of 1 to 512 bytes, event payloads that are not objects or
/// take more than 64 KiB (checked for the events after the first `events_before`).
fn check_host_limits(store: &MemoryStore, events_before: usize) {
    for key in store.data.keys() {
        assert!(!key.is_empty() && key.len() <= 512, "bad key {key:?}");
    }
    for (kind, payload) in store.events.iter().skip(events_before) {
        assert!(payload.is_object(), "{kind}: event payloads are objects");
        assert!(
            payload.to_string().len() <= 64 << 10,
            "{kind}: event payload over 64 KiB"
        );
    }
}

/// The message of a refusal of the expected kind; panics on any other result.
pub fn conflict<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub fn not_found<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::NotFound(m)) => m,
        other => panic!("expected not-found, got {other:?}"),
    }
}

pub fn invalid<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::InvalidInput(m)) => m,
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

fn thrown(window: &str) -> Value {
    json!({"camera": "cam-b3-east", "building": "3", "floor": 15, "window": window, "household": format!("3-15{window}")})
}

fn smoke_rule(extra: Value) -> Value {
    let mut rule = json!({
        "id": "smoke", "name": "Smoke", "kind": "sensor.smoke",
        "conditions": [{"field": "ppm", "op": "gte", "value": 300}],
        "severity": "critical", "dedupe_key": "{sensor}", "title": "Smoke at {sensor}: {ppm} ppm",
        "escalate_after_seconds": 300
    });
    for (k, v) in extra.as_object().expect("object") {
        rule[k] = v.clone();
    }
    rule
}

// ---------------------------------------------------------------- rules through dispatch

#[test]
fn a_fresh_community_gets_the_default_templates() {
    let mut h = Harness::defaults();
    let page = h.ok("list-rules", json!({"limit": 100}));
    let ids: Vec<&str> = page["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    let mut expected: Vec<&str> = templates::all().iter().map(|t| t.id).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(
        page["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .all(|r| r["template"] == r["id"])
    );
    assert_eq!(h.events(), Vec::<String>::new(), "seeding emits nothing");
}

#[test]
fn unknown_rules_and_operations_are_not_found() {
    let mut h = Harness::bare();
    for op in ["get-rule", "delete-rule"] {
        let m = not_found(h.call(op, json!({"id": "nope"})));
        assert!(m.starts_with("unknown rule \"nope\""), "{m}");
    }
    let m = not_found(h.call(
        "update-rule",
        json!({"id": "nope", "changes": {"enabled": false}}),
    ));
    assert!(m.starts_with("unknown rule"), "{m}");
    let m = not_found(h.call("frobnicate", json!({})));
    assert!(m.contains("no operation \"frobnicate\""), "{m}");
    invalid(h.call("list-templates", json!({"x": 1})));
    invalid(h.call("create-rule", json!({"id": "x"})));
}

#[test]
fn templates_are_listed_with_examples() {
    let mut h = Harness::bare();
    let out = h.ok("list-templates", json!({}));
    let list = out["templates"].as_array().expect("templates");
    assert_eq!(list.len(), 10);
    assert_eq!(list[0]["id"], "object-thrown");
    assert_eq!(list[0]["rule"]["dedupe_key"], "{building}-{floor}-{window}");
    assert_eq!(list[0]["example"]["kind"], "camera.object-thrown");
}

// ---------------------------------------------------------------- ingest, dedupe

#[test]
fn an_event_without_rules_of_its_kind_changes_nothing() {
    let mut h = Harness::bare();
    let out = h.ingest("camera.object-thrown", thrown("02"), T0);
    assert_eq!(out["results"], json!([]));
    assert_eq!(out["duplicate"], false);
    assert_eq!(h.events(), Vec::<String>::new());
}

#[test]
fn repeats_of_a_dedupe_key_update_the_open_alarm() {
    let mut h = Harness::bare();
    h.install("object-thrown");
    let first = h.ingest("camera.object-thrown", thrown("02"), T0 - 5 * SEC);
    assert_eq!(
        first["results"],
        json!([{"rule": "object-thrown", "outcome": "raised", "dedupe_key": "3-15-02", "alarm": "alm-000001", "reason": null}])
    );
    h.now += 10 * SEC;
    let again = h.ingest("camera.object-thrown", thrown("02"), T0 + 5 * SEC);
    assert_eq!(
        Harness::outcome(&again),
        ("updated".into(), json!("alm-000001"))
    );
    let other = h.ingest("camera.object-thrown", thrown("03"), T0 + 6 * SEC);
    assert_eq!(
        Harness::outcome(&other),
        ("raised".into(), json!("alm-000002"))
    );
    assert_eq!(
        h.events(),
        ["alarm-raised", "alarm-updated", "alarm-raised"]
    );

    let alarm = h.alarm("alm-000001");
    assert_eq!(alarm["count"], 2);
    assert_eq!(alarm["state"], "raised");
    assert_eq!(
        (
            alarm["first_seen_ms"].as_i64(),
            alarm["last_seen_ms"].as_i64()
        ),
        (Some(T0 - 5 * SEC), Some(T0 + 5 * SEC))
    );
    assert_eq!(alarm["raised_at_ms"], T0, "raised at the host's now");
    assert_eq!(alarm["escalate_at_ms"], T0 + 300 * SEC);
    assert_eq!(
        alarm["title"],
        "Object thrown from building 3, floor 15, window 02 (household 3-1502)"
    );
    assert_eq!(alarm["severity"], "critical");
    assert_eq!(alarm["payload"]["household"], "3-1502");
    assert_eq!(alarm["updated_at_ms"], T0 + 10 * SEC);
}

#[test]
fn an_event_id_is_ingested_once() {
    let mut h = Harness::bare();
    h.install("wristband-fall");
    let input = json!({"kind": "wristband.fall", "id": "wb-0042-fall-77", "payload": {"wristband": "wb-0042", "resident": "Li"}});
    let first = h.ok("ingest", input.clone());
    assert_eq!(first["event"], "wb-0042-fall-77");
    assert_eq!(first["at_ms"], T0, "at_ms defaults to now");
    h.now += MIN;
    let again = h.ok("ingest", input);
    let mut expected = first.clone();
    expected["duplicate"] = json!(true);
    assert_eq!(again, expected);
    assert_eq!(h.alarm("alm-000001")["count"], 1);
    assert_eq!(h.events(), ["alarm-raised"]);
    // The same fields in another order are the same payload.
    let reordered: Value = serde_json::from_str(
        r#"{"payload": {"resident": "Li", "wristband": "wb-0042"}, "id": "wb-0042-fall-77", "kind": "wristband.fall"}"#,
    )
    .expect("json");
    assert_eq!(h.ok("ingest", reordered)["duplicate"], true);
    // The same id with another payload, or another time, is not a retry: it is refused.
    for other in [
        json!({"kind": "wristband.fall", "id": "wb-0042-fall-77", "payload": {}}),
        json!({"kind": "wristband.fall", "id": "wb-0042-fall-77", "payload": {"wristband": "wb-0042", "resident": "Li"}, "at_ms": T0}),
    ] {
        let m = conflict(h.call("ingest", other));
        assert_eq!(
            m,
            "event \"wb-0042-fall-77\" of kind wristband.fall was ingested already with another \
             payload or at_ms; give every event of a kind its own id (ids are remembered for 7 \
             days)"
        );
    }
    assert_eq!(h.alarm("alm-000001")["count"], 1);
    assert_eq!(h.events(), Vec::<String>::new());
}

#[test]
fn event_ids_are_per_kind() {
    // A camera and a wristband number their events independently: both send id "17".
    let mut h = Harness::bare();
    h.install("object-thrown");
    h.install("wristband-fall");
    let thrown = h.ok(
        "ingest",
        json!({"kind": "camera.object-thrown", "id": "17", "payload": thrown("02")}),
    );
    assert_eq!(Harness::outcome(&thrown).0, "raised");
    let fall = h.ok(
        "ingest",
        json!({"kind": "wristband.fall", "id": "17", "payload": {"wristband": "wb-0042", "resident": "Li"}}),
    );
    assert_eq!(fall["duplicate"], false);
    assert_eq!(fall["kind"], "wristband.fall");
    assert_eq!(
        Harness::outcome(&fall),
        ("raised".into(), json!("alm-000002"))
    );
    assert_eq!(h.alarm("alm-000002")["rule"], "wristband-fall");
    assert_eq!(h.events(), ["alarm-raised", "alarm-raised"]);
    // Each is remembered under its kind, and purged in time.
    assert_eq!(count(&h.store, "event/camera.object-thrown/17"), 1);
    assert_eq!(count(&h.store, "event/wristband.fall/17"), 1);
    h.now += 8 * 86_400 * SEC;
    h.ok("purge", json!({}));
    assert_eq!(count(&h.store, "event/"), 0);
}

#[test]
fn events_from_the_future_are_refused() {
    // A manhole cover whose clock is a day ahead must not hold its windows back.
    let mut h = Harness::bare();
    h.install("manhole-water-level");
    let level = json!({"cover": "mh-017", "water_level_pct": 88});
    let ahead = json!({"kind": "manhole.status", "payload": level, "at_ms": T0 + 86_400 * SEC});
    let m = invalid(h.call("ingest", ahead));
    assert_eq!(
        m,
        "at_ms 2099-12-02T10:00:00Z is 86400 s after the host's time (2099-12-01T10:00:00Z); \
         events may be at most 300 s ahead (max_clock_skew_seconds): check the device's clock"
    );
    let outcomes = h.outcomes(
        "manhole.status",
        (0..10).map(|minute| (T0 + minute * MIN, level.clone())),
    );
    assert_eq!(outcomes[..3], ["pending", "pending", "raised"]);
    assert!(outcomes[3..].iter().all(|o| o == "updated"), "{outcomes:?}");
    // Up to the configured skew is accepted.
    let now = h.now;
    let skewed = |at: i64| json!({"kind": "manhole.status", "payload": {"cover": "mh-018", "water_level_pct": 5}, "at_ms": at});
    assert!(h.call("ingest", skewed(now + 300 * SEC)).is_ok());
    invalid(h.call("ingest", skewed(now + 300 * SEC + 1)));
    let mut strict = Harness::with(Config {
        default_templates: vec![],
        max_clock_skew_seconds: 0,
        ..Config::default()
    });
    assert!(strict.call("ingest", skewed(T0)).is_ok());
    invalid(strict.call("ingest", skewed(T0 + 1)));
}

#[test]
fn a_late_event_that_fails_the_conditions_does_not_end_a_state() {
    let mut h = Harness::bare();
    h.install("crowd-gathering");
    let crowd =
        |count: u32| json!({"camera": "cam-square-2", "zone": "central square", "count": count});
    for minute in [0, 2, 4, 6, 8] {
        h.ingest("camera.crowd-detected", crowd(14), T0 + minute * MIN);
    }
    // A report from minute 3, uploaded late, saw only 3 people.
    let late = h.ingest("camera.crowd-detected", crowd(3), T0 + 3 * MIN);
    assert_eq!(Harness::outcome(&late).0, "no-match");
    let out = h.ingest("camera.crowd-detected", crowd(16), T0 + 10 * MIN);
    assert_eq!(
        Harness::outcome(&out),
        ("raised".into(), json!("alm-000001"))
    );
    // A thin report at or after the run's last event still ends it.
    h.ingest("camera.crowd-detected", crowd(3), T0 + 10 * MIN);
    let out = h.ingest("camera.crowd-detected", crowd(16), T0 + 11 * MIN);
    assert_eq!(
        out["results"][0]["reason"],
        "the state has lasted 0 s of the 600 s the rule needs"
    );
}

#[test]
fn a_late_event_outside_a_count_window_does_not_fire() {
    let mut h = Harness::bare();
    h.ok(
        "create-rule",
        smoke_rule(json!({"trigger": {"type": "count", "count": 2, "window_seconds": 60}})),
    );
    let smoke = json!({"sensor": "s1", "ppm": 900});
    h.ingest("sensor.smoke", smoke.clone(), T0 + 10 * MIN);
    let out = h.ingest("sensor.smoke", smoke.clone(), T0 + 10 * MIN + 30 * SEC);
    assert_eq!(Harness::outcome(&out).0, "raised");
    // A reading from nine minutes before, uploaded late, is alone in its minute.
    let late = h.ingest("sensor.smoke", smoke.clone(), T0 + MIN);
    assert_eq!(Harness::outcome(&late), ("pending".into(), Value::Null));
    assert_eq!(
        late["results"][0]["reason"],
        "the event at 2099-12-01T10:01:00Z is more than 60 s older than the newest matching \
         event (2099-12-01T10:10:30Z): it is outside the window"
    );
    assert_eq!(h.alarm("alm-000001")["count"], 1, "not updated");
    // A late reading inside the window counts.
    let late = h.ingest("sensor.smoke", smoke, T0 + 10 * MIN - 20 * SEC);
    assert_eq!(Harness::outcome(&late).0, "updated");
}

#[test]
fn payloads_are_limited_so_that_alarm_events_fit() {
    let mut h = Harness::bare();
    h.install("object-thrown");
    let mut big = thrown("02");
    big["snapshot"] = json!("x".repeat(70_000));
    let m = invalid(h.call(
        "ingest",
        json!({"kind": "camera.object-thrown", "id": "cam-1", "payload": big}),
    ));
    assert_eq!(
        m,
        "the payload takes 70099 bytes as JSON; the most is 16384 (16 KiB): send large data \
         (images, raw recordings) elsewhere and put a reference in the payload"
    );
    assert_eq!(count(&h.store, "event/"), 0, "nothing remembered");
    // The largest payload, in a title that repeats a long field, still fits in an event.
    h.ok(
        "create-rule",
        smoke_rule(json!({"title": "{note}".repeat(33)})),
    );
    let mut largest = json!({"sensor": "s1", "ppm": 900, "note": ""});
    let room = 16_384 - largest.to_string().len();
    largest["note"] = json!("北".repeat(room / 3));
    assert!(largest.to_string().len() > 16_380);
    let out = h.ok(
        "ingest",
        json!({"kind": "sensor.smoke", "payload": largest}),
    );
    assert_eq!(Harness::outcome(&out).0, "raised");
    let alarm = h.alarm("alm-000001");
    assert_eq!(
        alarm["title"].as_str().map(|t| t.chars().count()),
        Some(crate::placeholders::MAX_TITLE)
    );
    assert_eq!(h.events(), ["alarm-raised"]);
}

#[test]
fn long_dedupe_keys_fit_the_host() {
    // 190 Chinese characters are 570 bytes: the slot key is shortened to fit the host.
    let mut h = Harness::bare();
    h.ok(
        "create-rule",
        smoke_rule(json!({"dedupe_key": "{place}", "trigger": {"type": "count", "count": 2, "window_seconds": 60}})),
    );
    let place = "北".repeat(190);
    let smoke = json!({"place": place, "ppm": 900});
    let out = h.ingest("sensor.smoke", smoke.clone(), T0);
    assert_eq!(Harness::outcome(&out).0, "pending");
    assert_eq!(out["results"][0]["dedupe_key"], place);
    let out = h.ingest("sensor.smoke", smoke.clone(), T0 + SEC);
    assert_eq!(Harness::outcome(&out).0, "raised", "the same slot");
    assert_eq!(h.alarm("alm-000001")["dedupe_key"], place);
    let other = json!({"place": format!("{place}南"), "ppm": 900});
    let out = h.ingest("sensor.smoke", other, T0 + 2 * SEC);
    assert_eq!(Harness::outcome(&out).0, "pending", "another key");
    // Clearing the alarm reaches the same slot.
    h.ok("acknowledge-alarm", json!({"id": "alm-000001", "by": "g"}));
    h.ok("clear-alarm", json!({"id": "alm-000001", "by": "g"}));
    let out = h.ingest("sensor.smoke", smoke, T0 + 3 * SEC);
    assert_eq!(
        Harness::outcome(&out).0,
        "raised",
        "a new alarm once cleared"
    );
}

#[test]
fn whole_number_floats_make_the_same_dedupe_key() {
    // floor 15 and floor 15.0 are the same window.
    let mut h = Harness::bare();
    h.install("object-thrown");
    h.ingest("camera.object-thrown", thrown("02"), T0);
    let mut as_float = thrown("02");
    as_float["floor"] = json!(15.0);
    let out = h.ingest("camera.object-thrown", as_float, T0 + SEC);
    assert_eq!(out["results"][0]["dedupe_key"], "3-15-02");
    assert_eq!(
        Harness::outcome(&out),
        ("updated".into(), json!("alm-000001"))
    );
}

#[test]
fn why_an_event_does_not_match() {
    let mut h = Harness::bare();
    h.ok("create-rule", smoke_rule(json!({})));
    let out = h.ingest("sensor.smoke", json!({"ppm": 900}), T0);
    assert_eq!(out["results"][0]["outcome"], "no-match");
    assert_eq!(
        out["results"][0]["reason"],
        "no dedupe key ({sensor}): field sensor is missing"
    );
    assert_eq!(out["results"][0]["dedupe_key"], Value::Null);
    let out = h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 20}), T0);
    assert_eq!(out["results"][0]["outcome"], "no-match");
    assert_eq!(out["results"][0]["dedupe_key"], "s1");
    assert_eq!(
        out["results"][0]["reason"],
        "condition 1: ppm is 20, not gte 300"
    );
    h.ok(
        "update-rule",
        json!({"id": "smoke", "changes": {"enabled": false}}),
    );
    let out = h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 900}), T0);
    assert_eq!(out["results"][0]["outcome"], "disabled");
    assert_eq!(out["results"][0]["reason"], "rule smoke is disabled");
    assert_eq!(h.events(), Vec::<String>::new());
    assert_eq!(
        count(&h.store, keys::SLOT),
        0,
        "nothing tracked for non-matches"
    );
}

#[test]
fn one_event_is_checked_against_every_rule_of_its_kind() {
    let mut h = Harness::bare();
    for t in ["manhole-tilted", "manhole-open", "manhole-water-level"] {
        h.install(t);
    }
    let out = h.ingest(
        "manhole.status",
        json!({"cover": "mh-017", "tilt_deg": 80, "open": true, "water_level_pct": 90}),
        T0,
    );
    let outcomes: Vec<(&str, &str)> = out["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().expect("rule"),
                r["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("manhole-open", "raised"),
            ("manhole-tilted", "raised"),
            ("manhole-water-level", "pending")
        ]
    );
    assert_eq!(
        out["results"][2]["reason"],
        "1 of the 3 matching events the rule needs within 900 s"
    );
}

// ---------------------------------------------------------------- windows through ingest

#[test]
fn crowd_gathering_needs_ten_minutes_of_crowd() {
    let mut h = Harness::bare();
    h.install("crowd-gathering");
    let crowd =
        |count: u32| json!({"camera": "cam-square-2", "zone": "central square", "count": count});
    let reports = [
        (0, 14),
        (2, 15),
        (4, 12),
        (6, 3),
        (8, 14),
        (10, 16),
        (12, 18),
        (14, 20),
        (16, 20),
        (18, 22),
    ];
    let outcomes = h.outcomes(
        "camera.crowd-detected",
        reports.map(|(minute, count)| (T0 + minute * MIN, crowd(count))),
    );
    // The crowd thinned at minute 6 (3 people): the state restarted at minute 8 and had
    // lasted ten minutes at minute 18.
    assert_eq!(
        outcomes,
        [
            "pending", "pending", "pending", "no-match", "pending", "pending", "pending",
            "pending", "pending", "raised"
        ]
    );
    let out = h.ingest("camera.crowd-detected", crowd(25), T0 + 19 * MIN);
    assert_eq!(
        Harness::outcome(&out),
        ("updated".into(), json!("alm-000001"))
    );
    let alarm = h.alarm("alm-000001");
    assert_eq!(
        alarm["title"],
        "Crowd of 25 people at central square (camera cam-square-2)"
    );
    assert_eq!(alarm["first_seen_ms"], T0 + 18 * MIN);
    // A gap longer than two minutes ends the state too.
    let mut h = Harness::bare();
    h.install("crowd-gathering");
    h.ingest("camera.crowd-detected", crowd(14), T0);
    let out = h.ingest("camera.crowd-detected", crowd(14), T0 + 11 * MIN);
    assert_eq!(
        out["results"][0]["reason"],
        "the state has lasted 0 s of the 600 s the rule needs"
    );
}

#[test]
fn water_level_needs_three_high_readings_within_fifteen_minutes() {
    let mut h = Harness::bare();
    h.install("manhole-water-level");
    let level = |pct: u32| json!({"cover": "mh-017", "water_level_pct": pct});
    let readings = [(0, 85), (5, 40), (10, 88), (20, 90), (24, 91)];
    let outcomes = h.outcomes(
        "manhole.status",
        readings.map(|(minute, pct)| (T0 + minute * MIN, level(pct))),
    );
    // 0, 10 and 20 span 20 minutes: only at 24 are three readings (10, 20, 24) within 15.
    assert_eq!(
        outcomes,
        ["pending", "no-match", "pending", "pending", "raised"]
    );
}

#[test]
fn changing_what_a_rule_matches_restarts_its_windows_but_keeps_open_alarms() {
    let mut h = Harness::bare();
    h.ok(
        "create-rule",
        smoke_rule(json!({"trigger": {"type": "count", "count": 2, "window_seconds": 600}})),
    );
    let smoke = json!({"sensor": "s1", "ppm": 900});
    h.ingest("sensor.smoke", smoke.clone(), T0);
    assert_eq!(
        Harness::outcome(&h.ingest("sensor.smoke", smoke.clone(), T0 + SEC)).0,
        "raised"
    );
    h.ok(
        "update-rule",
        json!({"id": "smoke", "changes": {"severity": "warning"}}),
    );
    assert_eq!(
        Harness::outcome(&h.ingest("sensor.smoke", smoke.clone(), T0 + 2 * SEC)).0,
        "updated",
        "windows kept"
    );
    h.ok("update-rule", json!({"id": "smoke", "changes": {"trigger": {"type": "count", "count": 3, "window_seconds": 600}}}));
    let out = h.ingest("sensor.smoke", smoke.clone(), T0 + 3 * SEC);
    assert_eq!(Harness::outcome(&out).0, "pending", "windows restarted");
    assert_eq!(
        out["results"][0]["reason"],
        "1 of the 3 matching events the rule needs within 600 s"
    );
    h.ingest("sensor.smoke", smoke.clone(), T0 + 4 * SEC);
    let out = h.ingest("sensor.smoke", smoke, T0 + 5 * SEC);
    assert_eq!(
        Harness::outcome(&out),
        ("updated".into(), json!("alm-000001")),
        "the open alarm is kept"
    );
}

#[test]
fn every_template_raises_an_alarm_for_its_realistic_event() {
    for t in templates::all() {
        let mut h = Harness::bare();
        h.install(t.id);
        let kind = t.example["kind"].as_str().expect("kind");
        let payload = t.example["payload"].clone();
        // Feed the example as a device would until the trigger is met.
        let (times, expected): (Vec<i64>, Vec<&str>) = match t.rule.trigger {
            crate::windows::Trigger::Each {} => (vec![T0], vec!["raised"]),
            crate::windows::Trigger::Duration {
                seconds,
                max_gap_seconds,
            } => {
                let step = i64::from(max_gap_seconds) * SEC;
                let n = (i64::from(seconds) * SEC + step - 1) / step;
                let times: Vec<i64> = (0..=n).map(|i| T0 + i * step).collect();
                let mut expected = vec!["pending"; n as usize];
                expected.push("raised");
                (times, expected)
            }
            crate::windows::Trigger::Count { count, .. } => {
                let times: Vec<i64> = (0..i64::from(count)).map(|i| T0 + i * SEC).collect();
                let mut expected = vec!["pending"; count as usize - 1];
                expected.push("raised");
                (times, expected)
            }
        };
        let outcomes = h.outcomes(kind, times.iter().map(|&at| (at, payload.clone())));
        assert_eq!(outcomes, expected, "{}", t.id);
        let alarm = h.alarm("alm-000001");
        assert_eq!(alarm["rule"], t.id);
        assert!(
            !alarm["title"].as_str().expect("title").contains('?'),
            "{}: {}",
            t.id,
            alarm["title"]
        );
        assert_eq!(h.events(), ["alarm-raised"], "{}", t.id);
        // One more of the same updates it.
        let out = h.ingest(kind, payload, *times.last().expect("time") + SEC);
        assert_eq!(
            Harness::outcome(&out),
            ("updated".into(), json!("alm-000001")),
            "{}",
            t.id
        );
    }
}

#[test]
fn templates_tell_their_incidents_apart() {
    let mut h = Harness::bare();
    h.install("illegal-parking");
    h.install("object-thrown");
    h.install("heart-rate-out-of-range");
    h.install("wristband-no-activity");
    h.install("fire-lane-blocked");
    let parked = |plate: &str, zone: &str| json!({"camera": "c", "plate": plate, "zone": zone});
    // One event each, and what the result of its one rule says (field, value).
    let cases = [
        (
            "camera.illegal-parking",
            parked("ZA12345", "north-gate"),
            "dedupe_key",
            "ZA12345:north-gate",
        ),
        (
            "camera.illegal-parking",
            parked("UNKNOWN", "north-gate"),
            "reason",
            "condition 1: plate is \"UNKNOWN\", not ne \"UNKNOWN\"",
        ),
        (
            "camera.object-thrown",
            json!({"building": "3", "floor": 15}),
            "reason",
            "no dedupe key ({building}-{floor}-{window}): field window is missing",
        ),
        (
            "wristband.heart-rate",
            json!({"wristband": "wb-1", "bpm": 72}),
            "outcome",
            "no-match",
        ),
        // A low heart rate counts too.
        (
            "wristband.heart-rate",
            json!({"wristband": "wb-1", "bpm": 35}),
            "outcome",
            "pending",
        ),
        (
            "wristband.activity",
            json!({"wristband": "wb-1", "steps": 120}),
            "outcome",
            "no-match",
        ),
        (
            "camera.fire-lane-blocked",
            json!({"camera": "c", "lane": "l", "object": "person"}),
            "reason",
            "condition 1: object is \"person\", not in [\"vehicle\",\"tricycle\",\"bicycle\",\"debris\"]",
        ),
    ];
    for (kind, payload, field, expected) in cases {
        let out = h.ingest(kind, payload.clone(), T0);
        Harness::outcome(&out); // one rule's result
        assert_eq!(out["results"][0][field], expected, "{kind} {payload}");
    }
}

// ---------------------------------------------------------------- the alarm lifecycle

fn raised_smoke(h: &mut Harness) -> String {
    if h.call("get-rule", json!({"id": "smoke"})).is_err() {
        h.ok("create-rule", smoke_rule(json!({})));
    }
    let out = h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 900}), h.now);
    let (outcome, alarm) = Harness::outcome(&out);
    assert_eq!(outcome, "raised");
    h.events();
    alarm.as_str().expect("id").to_owned()
}

#[test]
fn raised_acknowledged_cleared() {
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    h.now += MIN;
    let acked = h.ok(
        "acknowledge-alarm",
        json!({"id": id, "by": "guard-wang", "note": "on my way"}),
    );
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(
        acked["acknowledged"],
        json!({"by": "guard-wang", "at_ms": T0 + MIN, "note": "on my way"})
    );
    h.now += MIN;
    let cleared = h.ok("clear-alarm", json!({"id": id, "by": "guard-wang"}));
    assert_eq!(cleared["state"], "cleared");
    assert_eq!(
        cleared["cleared"],
        json!({"by": "guard-wang", "at_ms": T0 + 2 * MIN, "note": null})
    );
    assert_eq!(cleared["acknowledged"], acked["acknowledged"]);
    assert_eq!(h.events(), ["alarm-acknowledged", "alarm-cleared"]);
    assert_eq!(count(&h.store, keys::OPEN), 0);
    assert_eq!(count(&h.store, keys::DUE), 0);
}

#[test]
fn raised_escalated_acknowledged_cleared() {
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    h.now = T0 + 300 * SEC;
    let out = h.ok("escalate-due", json!({}));
    assert_eq!(out, json!({"escalated": [id], "more": false}));
    assert_eq!(h.events(), ["alarm-escalated"]);
    let alarm = h.alarm(&id);
    assert_eq!(
        (alarm["state"].as_str(), alarm["escalated_at_ms"].as_i64()),
        (Some("escalated"), Some(T0 + 300 * SEC))
    );
    h.ok("acknowledge-alarm", json!({"id": id, "by": "duty-manager"}));
    h.ok(
        "clear-alarm",
        json!({"id": id, "by": "duty-manager", "note": "false alarm: cooking"}),
    );
    assert_eq!(h.events(), ["alarm-acknowledged", "alarm-cleared"]);
}

#[test]
fn every_refused_transition_says_why_and_changes_nothing() {
    let mut h = Harness::bare();
    // raised → cleared is refused while acknowledgement is required.
    let id = raised_smoke(&mut h);
    let m = conflict(h.call("clear-alarm", json!({"id": id, "by": "li"})));
    assert_eq!(
        m,
        format!(
            "alarm {id} is raised and not acknowledged: acknowledge it first (this community requires acknowledgement before clearing)"
        )
    );
    // escalated → cleared likewise.
    h.now += 300 * SEC;
    let m = conflict(h.call("clear-alarm", json!({"id": id, "by": "li"})));
    assert!(m.contains("is escalated and not acknowledged"), "{m}");
    assert_eq!(h.alarm(&id)["state"], "escalated");
    // acknowledged → acknowledged.
    h.ok("acknowledge-alarm", json!({"id": id, "by": "wang"}));
    let m = conflict(h.call("acknowledge-alarm", json!({"id": id, "by": "li"})));
    assert_eq!(
        m,
        format!(
            "alarm {id} was already acknowledged by wang at 2099-12-01T10:05:00Z; clear it when the incident is over"
        )
    );
    // cleared → acknowledged, cleared → cleared.
    h.ok("clear-alarm", json!({"id": id, "by": "wang"}));
    let m = conflict(h.call("acknowledge-alarm", json!({"id": id, "by": "li"})));
    assert!(
        m.contains("was cleared by wang at 2099-12-01T10:05:00Z and cannot be acknowledged"),
        "{m}"
    );
    let m = conflict(h.call("clear-alarm", json!({"id": id, "by": "li"})));
    assert_eq!(
        m,
        format!("alarm {id} was already cleared by wang at 2099-12-01T10:05:00Z")
    );
    h.events();
    let before = h.store.data.clone();
    for op in ["acknowledge-alarm", "clear-alarm"] {
        conflict(h.call(op, json!({"id": id, "by": "li"})));
    }
    assert_eq!(h.store.data, before);
    assert_eq!(h.events(), Vec::<String>::new());
    // Unknown alarms and blank names.
    for (op, input) in [
        ("get-alarm", json!({"id": "alm-000099"})),
        ("acknowledge-alarm", json!({"id": "alm-000099", "by": "li"})),
        ("clear-alarm", json!({"id": "alm-000099", "by": "li"})),
    ] {
        let m = not_found(h.call(op, input));
        assert!(m.starts_with("unknown alarm \"alm-000099\""), "{m}");
    }
    let m = invalid(h.call("acknowledge-alarm", json!({"id": id, "by": " "})));
    assert!(m.contains("say who acts"), "{m}");
}

#[test]
fn without_required_acknowledgement_staff_clear_directly() {
    let mut h = Harness::with(Config {
        default_templates: vec![],
        require_ack_before_clear: false,
        ..Config::default()
    });
    let id = raised_smoke(&mut h);
    let cleared = h.ok("clear-alarm", json!({"id": id, "by": "li"}));
    assert_eq!(
        (cleared["state"].as_str(), &cleared["acknowledged"]),
        (Some("cleared"), &Value::Null)
    );
    let id = raised_smoke(&mut h);
    h.now += 300 * SEC;
    let cleared = h.ok("clear-alarm", json!({"id": id, "by": "li"}));
    assert_eq!(cleared["state"], "cleared");
    assert_eq!(
        cleared["escalated_at_ms"], h.now,
        "escalated first, then cleared"
    );
    assert_eq!(h.events(), ["alarm-escalated", "alarm-cleared"]);
}

// ---------------------------------------------------------------- escalation

#[test]
fn escalation_applies_when_an_alarm_is_read() {
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    h.now = T0 + 300 * SEC - 1;
    assert_eq!(h.alarm(&id)["state"], "raised");
    assert_eq!(h.events(), Vec::<String>::new());
    h.now = T0 + 300 * SEC;
    let alarm = h.alarm(&id);
    assert_eq!(alarm["state"], "escalated");
    assert_eq!(h.events(), ["alarm-escalated"]);
    h.now += MIN;
    assert_eq!(
        h.alarm(&id)["escalated_at_ms"],
        T0 + 300 * SEC,
        "once, at the due time"
    );
    assert_eq!(h.events(), Vec::<String>::new(), "no second event");
}

#[test]
fn escalation_applies_before_an_acknowledgement_that_came_late() {
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    h.now = T0 + 10 * MIN;
    let alarm = h.ok("acknowledge-alarm", json!({"id": id, "by": "wang"}));
    assert_eq!(alarm["state"], "acknowledged");
    assert_eq!(alarm["escalated_at_ms"], T0 + 5 * MIN);
    assert_eq!(h.events(), ["alarm-escalated", "alarm-acknowledged"]);
    // An acknowledgement in time prevents escalation.
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    h.now = T0 + 5 * MIN - 1;
    h.ok("acknowledge-alarm", json!({"id": id, "by": "wang"}));
    h.now = T0 + 60 * MIN;
    assert_eq!(
        h.ok("escalate-due", json!({})),
        json!({"escalated": [], "more": false})
    );
    assert_eq!(h.alarm(&id)["escalated_at_ms"], Value::Null);
}

#[test]
fn escalation_applies_when_a_repeat_updates_the_alarm() {
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    h.now = T0 + 6 * MIN;
    let out = h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 950}), h.now);
    assert_eq!(Harness::outcome(&out), ("updated".into(), json!(id)));
    assert_eq!(h.events(), ["alarm-escalated", "alarm-updated"]);
    let alarm = h.alarm(&id);
    assert_eq!(
        (alarm["state"].as_str(), alarm["count"].as_u64()),
        (Some("escalated"), Some(2))
    );
    assert_eq!(alarm["title"], "Smoke at s1: 950 ppm");
}

#[test]
fn the_sweep_escalates_due_alarms_soonest_first_in_batches() {
    let mut h = Harness::bare();
    h.ok("create-rule", smoke_rule(json!({})));
    h.ok(
        "create-rule",
        smoke_rule(json!({"id": "smoke-slow", "escalate_after_seconds": 3600})),
    );
    h.ok(
        "create-rule",
        smoke_rule(json!({"id": "smoke-never", "escalate_after_seconds": null})),
    );
    for (i, sensor) in ["a", "b", "c"].iter().enumerate() {
        h.now = T0 + i as i64 * SEC;
        h.ingest("sensor.smoke", json!({"sensor": sensor, "ppm": 900}), h.now);
    }
    // alm 1,4,7 = smoke (a,b,c), 2,5,8 = smoke-never, 3,6,9 = smoke-slow (ids in rule order).
    h.events();
    h.ok(
        "acknowledge-alarm",
        json!({"id": "alm-000004", "by": "wang"}),
    );
    h.now = T0 + 10 * MIN;
    assert_eq!(
        h.ok("escalate-due", json!({"limit": 1})),
        json!({"escalated": ["alm-000001"], "more": true})
    );
    assert_eq!(
        h.ok("escalate-due", json!({"limit": 5})),
        json!({"escalated": ["alm-000007"], "more": false})
    );
    assert_eq!(
        h.ok("escalate-due", json!({})),
        json!({"escalated": [], "more": false})
    );
    h.now = T0 + 2 * 3600 * SEC;
    assert_eq!(
        h.ok("escalate-due", json!({})),
        json!({"escalated": ["alm-000003", "alm-000006", "alm-000009"], "more": false})
    );
    assert_eq!(
        h.events(),
        [
            "alarm-acknowledged",
            "alarm-escalated",
            "alarm-escalated",
            "alarm-escalated",
            "alarm-escalated",
            "alarm-escalated"
        ]
    );
    assert_eq!(h.alarm("alm-000002")["state"], "raised", "never escalates");
    assert_eq!(count(&h.store, keys::DUE), 0);
}

// ---------------------------------------------------------------- cooldown

#[test]
fn a_cleared_key_cools_down_before_a_new_alarm() {
    let mut h = Harness::bare();
    h.ok("create-rule", smoke_rule(json!({"cooldown_seconds": 600})));
    let id = raised_smoke(&mut h);
    h.ok("acknowledge-alarm", json!({"id": id, "by": "wang"}));
    h.now = T0 + MIN;
    h.ok("clear-alarm", json!({"id": id, "by": "wang"}));
    h.events();
    h.now = T0 + 10 * MIN;
    let out = h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 900}), h.now);
    assert_eq!(out["results"][0]["outcome"], "suppressed");
    assert_eq!(
        out["results"][0]["reason"],
        "the last alarm of s1 was cleared; the rule's cooldown lasts until 2099-12-01T10:11:00Z"
    );
    // Another key is not cooling down.
    let out = h.ingest("sensor.smoke", json!({"sensor": "s2", "ppm": 900}), h.now);
    assert_eq!(
        Harness::outcome(&out),
        ("raised".into(), json!("alm-000002"))
    );
    h.now = T0 + 11 * MIN;
    let out = h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 900}), h.now);
    assert_eq!(
        Harness::outcome(&out),
        ("raised".into(), json!("alm-000003"))
    );
    assert_eq!(h.events(), ["alarm-raised", "alarm-raised"]);
}

#[test]
fn without_cooldown_the_next_event_raises_a_new_alarm_at_once() {
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    h.ok("acknowledge-alarm", json!({"id": id, "by": "wang"}));
    h.ok("clear-alarm", json!({"id": id, "by": "wang"}));
    assert_eq!(count(&h.store, keys::SLOT), 0, "nothing left to remember");
    let out = h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 900}), h.now);
    assert_eq!(
        Harness::outcome(&out),
        ("raised".into(), json!("alm-000002"))
    );
}

#[test]
fn deleting_a_rule_keeps_its_alarms() {
    let mut h = Harness::bare();
    h.ok("create-rule", smoke_rule(json!({"cooldown_seconds": 600})));
    let id = raised_smoke(&mut h);
    assert_eq!(
        h.ok("delete-rule", json!({"id": "smoke"})),
        json!({"id": "smoke", "deleted": true})
    );
    assert_eq!(
        h.ingest("sensor.smoke", json!({"sensor": "s1", "ppm": 900}), h.now)["results"],
        json!([])
    );
    h.ok("acknowledge-alarm", json!({"id": id, "by": "wang"}));
    assert_eq!(
        h.ok("clear-alarm", json!({"id": id, "by": "wang"}))["state"],
        "cleared"
    );
    assert_eq!(
        count(&h.store, keys::SLOT),
        0,
        "no cooldown for a deleted rule"
    );
}

// ---------------------------------------------------------------- listing alarms

#[test]
fn alarms_list_newest_first_with_filters_and_pages() {
    let mut h = Harness::bare();
    h.install("object-thrown");
    h.install("manhole-tilted");
    for w in ["01", "02", "03"] {
        h.ingest("camera.object-thrown", thrown(w), h.now); // critical: 1, 2, 3
    }
    h.ingest(
        "manhole.status",
        json!({"cover": "mh-1", "tilt_deg": 30}),
        h.now,
    ); // warning: 4
    h.ok(
        "acknowledge-alarm",
        json!({"id": "alm-000002", "by": "wang"}),
    );
    h.ok(
        "acknowledge-alarm",
        json!({"id": "alm-000003", "by": "wang"}),
    );
    h.ok("clear-alarm", json!({"id": "alm-000003", "by": "wang"}));
    let ids = |v: &Value| -> Vec<String> {
        v["alarms"]
            .as_array()
            .expect("alarms")
            .iter()
            .map(|a| a["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let all = h.ok("list-alarms", json!({}));
    assert_eq!(
        ids(&all),
        ["alm-000004", "alm-000003", "alm-000002", "alm-000001"]
    );
    assert_eq!(all["next"], Value::Null);
    let page = h.ok("list-alarms", json!({"limit": 2}));
    assert_eq!(
        (ids(&page), page["next"].clone()),
        (
            vec!["alm-000004".to_owned(), "alm-000003".to_owned()],
            json!("alm-000003")
        )
    );
    let page = h.ok("list-alarms", json!({"limit": 2, "after": "alm-000003"}));
    assert_eq!(
        (ids(&page), page["next"].clone()),
        (
            vec!["alm-000002".to_owned(), "alm-000001".to_owned()],
            Value::Null
        )
    );
    let open = h.ok(
        "list-alarms",
        json!({"states": ["raised", "escalated", "acknowledged"]}),
    );
    assert_eq!(ids(&open), ["alm-000004", "alm-000002", "alm-000001"]);
    let open = h.ok(
        "list-alarms",
        json!({"states": ["raised", "acknowledged"], "limit": 1, "after": "alm-000004"}),
    );
    assert_eq!(
        (ids(&open), open["next"].clone()),
        (vec!["alm-000002".to_owned()], json!("alm-000002"))
    );
    assert_eq!(
        ids(&h.ok("list-alarms", json!({"states": ["cleared"]}))),
        ["alm-000003"]
    );
    assert_eq!(
        ids(&h.ok("list-alarms", json!({"severities": ["warning"]}))),
        ["alm-000004"]
    );
    assert_eq!(
        ids(&h.ok(
            "list-alarms",
            json!({"rule": "object-thrown", "states": ["raised"]})
        )),
        ["alm-000001"]
    );
    assert_eq!(
        ids(&h.ok("list-alarms", json!({"states": [], "severities": []}))).len(),
        4,
        "empty filters filter nothing"
    );
    let m = invalid(h.call("list-alarms", json!({"after": "yesterday"})));
    assert!(m.contains("pass the `next` of the previous page"), "{m}");
}

#[test]
fn listing_applies_escalation_to_what_it_returns() {
    let mut h = Harness::bare();
    h.install("object-thrown");
    h.ingest("camera.object-thrown", thrown("01"), h.now);
    h.ingest("camera.object-thrown", thrown("02"), h.now);
    h.events();
    h.now = T0 + 5 * MIN;
    let raised = h.ok("list-alarms", json!({"states": ["raised"]}));
    assert_eq!(raised["alarms"], json!([]), "both are escalated by now");
    assert_eq!(
        h.events(),
        Vec::<String>::new(),
        "nothing returned, nothing persisted"
    );
    let escalated = h.ok("list-alarms", json!({"states": ["escalated"], "limit": 1}));
    assert_eq!(escalated["alarms"][0]["id"], "alm-000002");
    assert_eq!(h.events(), ["alarm-escalated"]);
    assert_eq!(
        h.ok("escalate-due", json!({})),
        json!({"escalated": ["alm-000001"], "more": false})
    );
}

#[test]
fn a_filtered_listing_reads_a_bounded_number_of_alarms_per_call() {
    let mut h = Harness::with(Config {
        default_templates: vec![],
        require_ack_before_clear: false,
        ..Config::default()
    });
    h.install("wristband-fall");
    h.ingest("wristband.fall", json!({"wristband": "wb-old"}), h.now);
    for i in 0..600 {
        h.ingest(
            "wristband.fall",
            json!({"wristband": format!("wb-{i}")}),
            h.now,
        );
        h.ok(
            "clear-alarm",
            json!({"id": format!("alm-{:06}", i + 2), "by": "wang"}),
        );
    }
    let page = h.ok("list-alarms", json!({"severities": ["info"]}));
    assert_eq!(page["alarms"], json!([]));
    assert_eq!(page["next"], "alm-000102", "stopped after 500 alarms");
    let page = h.ok("list-alarms", json!({"severities": ["critical"], "states": ["cleared"], "after": "alm-000102", "limit": 50}));
    assert_eq!(page["alarms"].as_array().map(Vec::len), Some(50));
    // The open index skips the cleared alarms altogether.
    let open = h.ok("list-alarms", json!({"states": ["raised"]}));
    assert_eq!(open["alarms"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (open["alarms"][0]["id"].as_str(), &open["next"]),
        (Some("alm-000001"), &Value::Null)
    );
}

// ---------------------------------------------------------------- idempotency

#[test]
fn every_changing_operation_replays_by_idempotency_key() {
    let mut h = Harness::bare();
    let calls: Vec<(&str, Value)> = vec![
        ("create-rule", smoke_rule(json!({}))),
        (
            "update-rule",
            json!({"id": "smoke", "changes": {"cooldown_seconds": 60}}),
        ),
        ("install-template", json!({"template": "wristband-fall"})),
        (
            "ingest",
            json!({"kind": "sensor.smoke", "payload": {"sensor": "s1", "ppm": 900}}),
        ),
        (
            "acknowledge-alarm",
            json!({"id": "alm-000001", "by": "wang"}),
        ),
        ("clear-alarm", json!({"id": "alm-000001", "by": "wang"})),
        ("escalate-due", json!({})),
        ("purge", json!({})),
        ("delete-rule", json!({"id": "smoke"})),
    ];
    for (i, (op, input)) in calls.into_iter().enumerate() {
        let key = format!("key-{i}");
        let first = h
            .call_with_key(op, Some(&key), input.clone())
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        let events = h.store.events.len();
        let state = h.store.data.clone();
        h.now += SEC;
        let again = h
            .call_with_key(op, Some(&key), input.clone())
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(first, again, "{op}");
        assert_eq!(h.store.data, state, "{op} changed nothing the second time");
        assert_eq!(
            h.store.events.len(),
            events,
            "{op} emitted nothing the second time"
        );
        if op != "purge" {
            let m = conflict(h.call_with_key("purge", Some(&key), json!({})));
            assert!(m.contains(&format!("was used for {op} already")), "{m}");
        }
        let mut other = input.clone();
        other["zzz"] = json!(1);
        let m = conflict(h.call_with_key(op, Some(&key), other));
        assert!(m.contains("with another input"), "{m}");
    }
    // Reads do not store replays.
    let before = count(&h.store, "idem/");
    h.call_with_key("list-alarms", Some("read-1"), json!({}))
        .expect("list");
    assert_eq!(count(&h.store, "idem/"), before);
}

#[test]
fn a_failed_call_stores_no_replay() {
    let mut h = Harness::bare();
    let id = raised_smoke(&mut h);
    conflict(h.call_with_key("clear-alarm", Some("k"), json!({"id": id, "by": "wang"})));
    h.ok("acknowledge-alarm", json!({"id": id, "by": "wang"}));
    let cleared = h
        .call_with_key("clear-alarm", Some("k"), json!({"id": id, "by": "wang"}))
        .expect("now it works");
    assert_eq!(cleared["state"], "cleared");
}

// ---------------------------------------------------------------- purge

#[test]
fn purge_removes_old_records_and_keeps_recent_ones() {
    let mut h = Harness::with(Config {
        default_templates: vec![],
        alarm_retention_days: 30,
        replay_retention_days: 1,
        require_ack_before_clear: false,
        ..Config::default()
    });
    h.ok("create-rule", smoke_rule(json!({"cooldown_seconds": 60})));
    h.install("crowd-gathering");
    for i in 0..3 {
        let out = h.call_with_key(
            "ingest",
            Some(&format!("k{i}")),
            json!({"kind": "sensor.smoke", "id": format!("e{i}"), "payload": {"sensor": format!("s{i}"), "ppm": 900}}),
        );
        out.expect("ingest");
    }
    h.ok("clear-alarm", json!({"id": "alm-000001", "by": "wang"}));
    h.now += 10 * 86_400_000;
    h.ok("clear-alarm", json!({"id": "alm-000002", "by": "wang"}));
    h.ingest(
        "camera.crowd-detected",
        json!({"camera": "c", "count": 20}),
        h.now,
    ); // a pending window
    // s0: cooldown over; s1: cooling down; s2: open alarm; c: a moving window.
    assert_eq!(count(&h.store, keys::SLOT), 4);

    // Ten days on: replays and event ids are past their day; no alarm is 30 days cleared;
    // s0's slot has nothing left.
    let out = h.ok("purge", json!({}));
    assert_eq!(
        out,
        json!({"alarms_deleted": 0, "records_deleted": 6, "slots_deleted": 1, "more": false})
    );
    assert_eq!(
        (count(&h.store, "idem/"), count(&h.store, "event/")),
        (0, 0)
    );
    // A retried event id after that is new again.
    let out = h.ok(
        "ingest",
        json!({"kind": "sensor.smoke", "id": "e2", "payload": {"sensor": "s2", "ppm": 900}}),
    );
    assert_eq!(out["duplicate"], false);

    h.now = T0 + 31 * 86_400_000;
    let out = h.ok("purge", json!({"limit": 1}));
    assert_eq!(out["alarms_deleted"], 1);
    assert_eq!(out["slots_deleted"], 1, "the crowd window went stale");
    assert_eq!(out["more"], true, "the walk over the slots is not finished");
    let m = not_found(h.call("get-alarm", json!({"id": "alm-000001"})));
    assert!(m.contains("unknown alarm"), "{m}");
    assert_eq!(
        h.alarm("alm-000002")["state"],
        "cleared",
        "cleared 21 days ago: kept"
    );
    h.now = T0 + 45 * 86_400_000;
    let out = h.ok("purge", json!({}));
    assert_eq!(out["alarms_deleted"], 1);
    assert_eq!(out["slots_deleted"], 1, "s1's cooldown is over");
    assert_eq!(
        h.alarm("alm-000003")["state"],
        "escalated",
        "open alarms are never purged"
    );
    assert_eq!(count(&h.store, keys::SLOT), 1);
}

#[test]
fn purge_walks_slots_a_page_at_a_time() {
    let mut h = Harness::bare();
    h.install("crowd-gathering");
    for i in 0..5 {
        h.ingest(
            "camera.crowd-detected",
            json!({"camera": format!("c{i}"), "count": 20}),
            h.now,
        );
    }
    h.now += 3 * 86_400_000;
    assert_eq!(h.ok("purge", json!({"limit": 2}))["slots_deleted"], 2);
    assert_eq!(h.ok("purge", json!({"limit": 2}))["slots_deleted"], 2);
    let last = h.ok("purge", json!({"limit": 2}));
    assert_eq!(
        (last["slots_deleted"].as_u64(), last["more"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(count(&h.store, keys::SLOT), 0);
    assert_eq!(count(&h.store, keys::SLOT_CURSOR), 0);
}

#[test]
fn every_operation_is_dispatched() {
    let mut h = Harness::bare();
    for op in OPERATIONS {
        match h.call(op, json!({"unexpected": true})) {
            Err(Error::InvalidInput(_)) => {}
            other => panic!("{op}: {other:?}"),
        }
    }
}
