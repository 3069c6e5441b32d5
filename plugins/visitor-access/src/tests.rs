//! Scenario tests through [`crate::dispatch`], as the host calls the plugin: each call
//! is atomic (a refused call leaves the state and the events as they were).

use crate::config::{Config, DAY_MS, MINUTE_MS};
use crate::dispatch;
use crate::store::{Session, TOUCH_EVENT_BUDGET};
use courtyard_sdk::testing::MemoryStore;
use courtyard_sdk::{Error, Value};
use serde_json::json;

const HOUR: i64 = 60 * MINUTE_MS;
/// 2030-01-01T00:00:00Z.
const T0: i64 = 1_893_456_000_000;
const FACE: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const FACE2: &str = "tpl-visitor-0002";
const PHONE: &str = "13812345678";

struct World {
    store: MemoryStore,
    now: i64,
    config: Config,
}

impl World {
    fn new() -> Self {
        Self::with(Config::default())
    }

    fn with(config: Config) -> Self {
        let mut w = Self {
            store: MemoryStore::default(),
            now: T0,
            config,
        };
        w.ok(
            "register-resident",
            json!({"unit": "3-2-501", "resident_id": "r-wang"}),
        );
        w.ok(
            "register-resident",
            json!({"unit": "3-2-502", "resident_id": "r-li"}),
        );
        w.store.events.clear();
        w
    }

    /// One call, atomic like the host's: on error, state and events are rolled back.
    fn call_keyed(&mut self, op: &str, key: Option<&str>, input: Value) -> Result<Value, Error> {
        let (now, config) = (self.now, self.config.clone());
        self.store.call(|store| {
            let mut s = Session::new(store, now, config, "nanhu", key.map(str::to_owned));
            dispatch(&mut s, op, input)
        })
    }

    fn call(&mut self, op: &str, input: Value) -> Result<Value, Error> {
        self.call_keyed(op, None, input)
    }

    fn ok(&mut self, op: &str, input: Value) -> Value {
        self.call(op, input.clone())
            .unwrap_or_else(|e| panic!("{op} {input}: {e}"))
    }

    fn err(&mut self, op: &str, input: Value) -> Error {
        match self.call(op, input.clone()) {
            Ok(v) => panic!("{op} {input}: expected a refusal, got {v}"),
            Err(e) => e,
        }
    }

    /// Registers a visit by `phone` with `face` for `[from, to)` to 3-2-501.
    fn register(&mut self, phone: &str, face: Option<&str>, from: i64, to: i64) -> String {
        let mut input = json!({
            "visitor_name": "Li Wei", "phone": phone, "unit": "3-2-501",
            "from_ms": from, "to_ms": to,
        });
        if let Some(face) = face {
            input["face_ref"] = json!(face);
        }
        let v = self.ok("register-visit", input);
        v["visit_id"].as_str().expect("id").to_owned()
    }

    /// A visit today from +2h to +10h, registered and confirmed by r-wang.
    fn confirmed(&mut self) -> (String, String) {
        let id = self.register(PHONE, Some(FACE), T0 + 2 * HOUR, T0 + 10 * HOUR);
        let v = self.ok("confirm-visit", by_wang(&id));
        (id, v["pass_code"].as_str().expect("code").to_owned())
    }

    /// A world at T0 + 3h, inside the window of a visit confirmed by r-wang; with the
    /// visit's id and pass code.
    fn visiting() -> (Self, String, String) {
        let mut w = Self::new();
        let (id, code) = w.confirmed();
        w.now = T0 + 3 * HOUR;
        (w, id, code)
    }

    fn gate(&mut self, credential: Value) -> Value {
        self.ok(
            "gate-check",
            merged(json!({"gate_id": "east-gate"}), credential),
        )
    }

    fn status(&mut self, id: &str) -> String {
        self.ok("get-visit", json!({"visit_id": id}))["status"]
            .as_str()
            .expect("status")
            .to_owned()
    }

    /// The kinds of the events emitted so far, without the plugin's prefix.
    fn kinds(&self) -> Vec<&str> {
        self.store
            .events
            .iter()
            .map(|(k, _)| k.trim_start_matches("visitor-access."))
            .collect()
    }
}

/// Asserts that every value in `all` serialises as its name in the API, `as_str`
/// (shared by the enums' unit tests).
pub(crate) fn assert_api_names<T: serde::Serialize + Copy + std::fmt::Debug>(
    all: &[T],
    as_str: fn(T) -> &'static str,
) {
    for &value in all {
        assert_eq!(
            serde_json::to_value(value).expect("json"),
            Value::String(as_str(value).into()),
            "{value:?}"
        );
    }
}

/// `base` with the fields of `changes` added or replaced (both are objects).
fn merged(mut base: Value, changes: Value) -> Value {
    let Value::Object(changes) = changes else {
        panic!("not an object: {changes}")
    };
    base.as_object_mut().expect("an object").extend(changes);
    base
}

/// The input of r-wang (a resident of 3-2-501) answering visit `id`.
fn by_wang(id: &str) -> Value {
    json!({"visit_id": id, "resident_id": "r-wang"})
}

fn message(e: &Error) -> &str {
    match e {
        Error::InvalidInput(m)
        | Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Unavailable(m)
        | Error::Internal(m) => m,
    }
}

fn assert_conflict(e: &Error, text: &str) {
    assert!(matches!(e, Error::Conflict(m) if m.contains(text)), "{e}");
}

// ---- registration -------------------------------------------------------------------

#[test]
fn registration_is_pending_with_a_respond_by_time_and_notifies() {
    let mut w = World::new();
    let v = w.ok(
        "register-visit",
        json!({"visitor_name": " Li Wei ", "phone": PHONE, "face_ref": FACE, "unit": "3-2-501",
               "from_ms": T0 + 2 * HOUR, "to_ms": T0 + 10 * HOUR, "purpose": "tea"}),
    );
    assert_eq!(v["visit_id"], "v00000001");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["visitor_name"], "Li Wei");
    assert_eq!(v["registered_at_ms"], T0);
    assert_eq!(
        v["respond_by_ms"],
        T0 + DAY_MS.min(10 * HOUR),
        "capped by the window"
    );
    assert_eq!(v["pass_code"], Value::Null);
    assert_eq!(w.kinds(), ["visit-registered"]);
    let payload = &w.store.events[0].1;
    assert_eq!(payload["phone_masked"], "138****5678");
    assert_eq!(payload["purpose"], "tea");
    assert!(
        payload.get("face_ref").is_none(),
        "no face reference in events"
    );
    let second = w.register("13900000000", None, T0, T0 + 3 * DAY_MS);
    assert_eq!(second, "v00000002");
    let v2 = w.ok("get-visit", json!({"visit_id": second}));
    assert_eq!(v2["respond_by_ms"], T0 + DAY_MS, "pending_ttl_minutes");
    assert_eq!(v2["face_ref"], Value::Null);
}

#[test]
fn registration_refusals() {
    let base = json!({"visitor_name": "Li Wei", "phone": PHONE, "unit": "3-2-501",
                      "from_ms": T0, "to_ms": T0 + HOUR});
    let with = |changes: Value| merged(base.clone(), changes);
    let mut w = World::new();

    let e = w.err("register-visit", with(json!({"unit": "9-9-909"})));
    assert!(
        matches!(&e, Error::NotFound(m) if m.contains("unit \"9-9-909\" has no registered resident")),
        "{e}"
    );

    let e = w.err(
        "register-visit",
        with(json!({"face_ref": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ"})),
    );
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("data URL")),
        "{e}"
    );

    let e = w.err(
        "register-visit",
        with(json!({"to_ms": T0 - 1, "from_ms": T0 - HOUR})),
    );
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("ends in the future")),
        "{e}"
    );

    let e = w.err("register-visit", with(json!({"to_ms": T0})));
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("must end after it starts")),
        "{e}"
    );

    let e = w.err("register-visit", with(json!({"visitor_name": "   "})));
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("visitor_name is blank")),
        "{e}"
    );

    w.ok(
        "blocklist-add",
        json!({"phone": PHONE, "reason": "harassment", "by": "s-zhao"}),
    );
    let e = w.err("register-visit", base.clone());
    assert_conflict(
        &e,
        "registration refused: this visitor's phone number is on the community's blocklist",
    );
    w.ok("blocklist-remove", json!({"phone": PHONE, "by": "s-zhao"}));
    w.ok(
        "blocklist-add",
        json!({"face_ref": FACE, "reason": "harassment", "by": "s-zhao"}),
    );
    let e = w.err("register-visit", with(json!({"face_ref": FACE})));
    assert_conflict(&e, "face reference is on the community's blocklist");
    w.ok("register-visit", base.clone());

    let mut strict = World::with(Config {
        require_face_ref: true,
        max_window_days: Some(1),
        ..Config::default()
    });
    let e = strict.err("register-visit", base.clone());
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("requires a face reference")),
        "{e}"
    );
    let e = strict.err(
        "register-visit",
        with(json!({"face_ref": FACE2, "to_ms": T0 + DAY_MS + 1})),
    );
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("max_window_days")),
        "{e}"
    );
    strict.ok("register-visit", with(json!({"face_ref": FACE2})));
}

#[test]
fn the_open_visit_cap_counts_phones_and_faces() {
    let mut w = World::with(Config {
        max_open_visits_per_visitor: 2,
        ..Config::default()
    });
    w.register(PHONE, None, T0, T0 + HOUR);
    let second = w.register(PHONE, Some(FACE), T0, T0 + HOUR);
    let e = w.err(
        "register-visit",
        json!({"visitor_name": "Li Wei", "phone": PHONE, "unit": "3-2-501", "from_ms": T0, "to_ms": T0 + HOUR}),
    );
    assert_conflict(
        &e,
        "phone number already has 2 open visits (v00000001, v00000002)",
    );
    assert!(message(&e).contains("max_open_visits_per_visitor"));
    // Another phone with the same face: one open visit with that face, one more allowed.
    w.register("13900000001", Some(FACE), T0, T0 + HOUR);
    let e = w.err(
        "register-visit",
        json!({"visitor_name": "Li Wei", "phone": "13900000002", "face_ref": FACE, "unit": "3-2-501", "from_ms": T0, "to_ms": T0 + HOUR}),
    );
    assert_conflict(&e, "face reference already has 2 open visits");
    // Cancelling one frees a place; so does expiry.
    w.ok("cancel-visit", json!({"visit_id": second, "phone": PHONE}));
    w.register(PHONE, None, T0, T0 + HOUR);
    w.now = T0 + HOUR;
    w.register(PHONE, None, T0, T0 + 2 * HOUR);
    w.register(PHONE, None, T0, T0 + 2 * HOUR);
}

// ---- the residents' answers -----------------------------------------------------------

#[test]
fn only_a_resident_of_the_unit_may_answer() {
    let mut w = World::new();
    let id = w.register(PHONE, Some(FACE), T0 + 2 * HOUR, T0 + 10 * HOUR);
    for (op, verb) in [("confirm-visit", "confirm"), ("refuse-visit", "refuse")] {
        for resident in ["r-li", "r-nobody"] {
            let e = w.err(op, json!({"visit_id": id, "resident_id": resident}));
            assert_conflict(
                &e,
                &format!(
                    "resident \"{resident}\" is not registered for unit \"3-2-501\", so cannot {verb} visit {id}"
                ),
            );
        }
    }
    let e = w.err(
        "cancel-visit",
        json!({"visit_id": id, "resident_id": "r-li"}),
    );
    assert_conflict(&e, "so cannot cancel visit");
    assert_eq!(w.status(&id), "pending");
    assert!(w.store.events.len() == 1, "only the registration's event");
    let e = w.err("confirm-visit", by_wang("v00000099"));
    assert!(
        matches!(&e, Error::NotFound(m) if m.contains("no visit \"v00000099\"")),
        "{e}"
    );
}

#[test]
fn confirm_issues_a_pass_kept_by_a_replay() {
    let mut w = World::new();
    let id = w.register(PHONE, Some(FACE), T0 + 2 * HOUR, T0 + 10 * HOUR);
    w.now += MINUTE_MS;
    let v = w
        .call_keyed("confirm-visit", Some("confirm-1"), by_wang(&id))
        .expect("confirm");
    assert_eq!(v["status"], "confirmed");
    assert_eq!(v["decided_by"], "r-wang");
    assert_eq!(v["decided_at_ms"], T0 + MINUTE_MS);
    let code = v["pass_code"].as_str().expect("code");
    assert_eq!(
        w.store.data[&crate::keys::pass(code)],
        json!(id),
        "the code's index"
    );
    assert_eq!(v["pass_valid_from_ms"], T0 + 2 * HOUR - 15 * MINUTE_MS);
    assert_eq!(w.kinds(), ["visit-registered", "visit-confirmed"]);
    assert_eq!(w.store.events[1].1["pass_code"], code);
    assert_eq!(w.store.events[1].1["phone"], PHONE);
    // The replay returns the same, changes nothing, emits nothing.
    let again = w
        .call_keyed("confirm-visit", Some("confirm-1"), by_wang(&id))
        .expect("replay");
    assert_eq!(again, v);
    assert_eq!(w.store.events.len(), 2);
    // Without the key, a second confirmation is a conflict naming who confirmed.
    let e = w.err("confirm-visit", by_wang(&id));
    assert_conflict(&e, "already confirmed by r-wang");
    let e = w.err("refuse-visit", by_wang(&id));
    assert_conflict(&e, "cancel the visit (cancel-visit)");
}

#[test]
fn refuse_is_final_and_denied_at_the_gate() {
    let mut w = World::new();
    let id = w.register(PHONE, Some(FACE), T0 + 2 * HOUR, T0 + 10 * HOUR);
    let v = w.ok(
        "refuse-visit",
        json!({"visit_id": id, "resident_id": "r-wang", "note": "not home"}),
    );
    assert_eq!(v["status"], "refused");
    assert_eq!(v["note"], "not home");
    assert_eq!(v["closed_at_ms"], T0);
    assert_eq!(w.kinds(), ["visit-registered", "visit-refused"]);
    for (op, input) in [
        ("confirm-visit", by_wang(&id)),
        ("refuse-visit", by_wang(&id)),
        ("cancel-visit", json!({"visit_id": id, "phone": PHONE})),
    ] {
        let e = w.err(op, input);
        assert_conflict(&e, "it was refused by r-wang");
    }
    w.now = T0 + 3 * HOUR;
    let check = w.gate(json!({"face_ref": FACE}));
    assert_eq!(check["decision"], "deny");
    assert_eq!(check["reason"], "refused");
    assert_eq!(check["visit_id"], id);
}

#[test]
fn a_confirmation_is_refused_for_a_blocklisted_visitor() {
    let mut w = World::new();
    let id = w.register(PHONE, Some(FACE), T0 + 2 * HOUR, T0 + 10 * HOUR);
    w.ok(
        "blocklist-add",
        json!({"face_ref": FACE, "reason": "x", "by": "s-zhao"}),
    );
    let e = w.err("confirm-visit", by_wang(&id));
    assert_conflict(
        &e,
        &format!(
            "cannot confirm visit {id}: this visitor's face reference is on the community's blocklist"
        ),
    );
    // The resident can still refuse.
    w.ok("refuse-visit", by_wang(&id));
}

// ---- cancellation ---------------------------------------------------------------------

#[test]
fn cancellation_by_each_party() {
    let mut w = World::new();
    // The visitor, proving it with the phone.
    let a = w.register(PHONE, None, T0, T0 + HOUR);
    let e = w.err(
        "cancel-visit",
        json!({"visit_id": a, "phone": "13900000000"}),
    );
    assert_conflict(&e, "the phone number given is not the visitor's");
    let v = w.ok(
        "cancel-visit",
        json!({"visit_id": a, "phone": PHONE, "note": "plans changed"}),
    );
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["cancelled_by"], "visitor");
    // A resident, of a confirmed visit: the pass stops working.
    let (b, code) = w.confirmed();
    let v = w.ok("cancel-visit", by_wang(&b));
    assert_eq!(v["cancelled_by"], "resident:r-wang");
    let cancelled = w.store.events.last().expect("event").1.clone();
    assert_eq!(cancelled["was"], "confirmed");
    w.now = T0 + 3 * HOUR;
    let check = w.gate(json!({"pass_code": code}));
    assert_eq!(check["reason"], "cancelled");
    // Staff.
    let c = w.register(PHONE, None, T0 + 3 * HOUR, T0 + 4 * HOUR);
    let v = w.ok("cancel-visit", json!({"visit_id": c, "staff_id": "s-zhao"}));
    assert_eq!(v["cancelled_by"], "staff:s-zhao");
    let e = w.err("cancel-visit", json!({"visit_id": c, "staff_id": "s-zhao"}));
    assert_conflict(&e, "it was cancelled by staff:s-zhao");
    // Exactly one party (the host's schema says so too).
    let e = w.err("cancel-visit", json!({"visit_id": c}));
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("exactly one")),
        "{e}"
    );
    let e = w.err(
        "cancel-visit",
        json!({"visit_id": c, "staff_id": "s", "phone": PHONE}),
    );
    assert!(matches!(e, Error::InvalidInput(_)));
}

// ---- time -------------------------------------------------------------------------------

#[test]
fn an_unanswered_visit_expires_on_read_once() {
    let mut w = World::new();
    let id = w.register(PHONE, Some(FACE), T0, T0 + 3 * DAY_MS);
    w.now = T0 + DAY_MS - 1;
    assert_eq!(w.status(&id), "pending");
    w.now = T0 + DAY_MS;
    let v = w.ok("get-visit", json!({"visit_id": id}));
    assert_eq!(v["status"], "expired");
    assert_eq!(v["closed_at_ms"], T0 + DAY_MS);
    assert_eq!(w.kinds(), ["visit-registered", "visit-expired"]);
    assert_eq!(w.store.events[1].1["was"], "pending");
    // Written down: the next read emits nothing more, and the sweep has nothing to do.
    assert_eq!(w.status(&id), "expired");
    assert_eq!(w.store.events.len(), 2);
    let sweep = w.ok("expire-due", json!({}));
    assert_eq!(sweep["expired"], 0);
    let e = w.err("confirm-visit", by_wang(&id));
    assert_conflict(&e, "it expired unanswered at 2030-01-02T00:00:00Z");
    let check = w.gate(json!({"face_ref": FACE}));
    assert_eq!(check["reason"], "no-pass");
    assert!(
        check["message"]
            .as_str()
            .expect("m")
            .contains("expired unanswered")
    );
}

#[test]
fn a_late_confirmation_is_refused_even_before_anything_wrote_the_expiry() {
    let mut w = World::new();
    let id = w.register(PHONE, None, T0, T0 + 3 * DAY_MS);
    w.now = T0 + DAY_MS + 5;
    let e = w.err("confirm-visit", by_wang(&id));
    assert_conflict(&e, "expired unanswered");
}

#[test]
fn the_sweep_expires_pending_visits_and_passes_with_events() {
    let mut w = World::new();
    let pending = w.register("13900000001", None, T0, T0 + 5 * DAY_MS);
    let (confirmed, code) = w.confirmed(); // window ends at T0 + 10h
    w.now = T0 + 10 * HOUR;
    let sweep = w.ok("expire-due", json!({}));
    assert_eq!(sweep["expired"], 1, "the pass, at the end of its window");
    assert_eq!(w.store.events.last().expect("e").1["was"], "confirmed");
    w.now = T0 + DAY_MS;
    let sweep = w.ok("expire-due", json!({}));
    assert_eq!(sweep["expired"], 1, "the unanswered visit");
    assert_eq!(sweep["more"], false);
    let raw: crate::visit::Visit =
        serde_json::from_value(w.store.data[&crate::keys::visit(&pending)].clone()).expect("visit");
    assert_eq!(raw.status, crate::visit::VisitStatus::Expired);
    assert!(!w.store.data.keys().any(|k| k.starts_with("due/")));
    let check = w.gate(json!({"pass_code": code}));
    assert_eq!(check["reason"], "expired");
    assert_eq!(check["visit_id"], confirmed);
}

#[test]
fn the_sweep_works_in_batches() {
    let mut w = World::with(Config {
        max_open_visits_per_visitor: 100,
        ..Config::default()
    });
    for _ in 0..7 {
        w.register(PHONE, None, T0, T0 + HOUR);
    }
    w.now = T0 + HOUR;
    let first = w.ok("expire-due", json!({"limit": 5}));
    assert_eq!(
        (first["expired"].as_u64(), first["more"].as_bool()),
        (Some(5), Some(true))
    );
    let second = w.ok("expire-due", json!({"limit": 5}));
    assert_eq!(
        (second["expired"].as_u64(), second["more"].as_bool()),
        (Some(2), Some(false))
    );
}

#[test]
fn reads_expire_within_the_event_budget_and_the_sweep_does_the_rest() {
    let mut w = World::with(Config {
        max_open_visits_per_visitor: 100,
        ..Config::default()
    });
    let n = TOUCH_EVENT_BUDGET + 8;
    for _ in 0..n {
        w.register(PHONE, None, T0, T0 + HOUR);
    }
    w.store.events.clear();
    w.now = T0 + HOUR;
    let page = w.ok("list-visits", json!({"unit": "3-2-501", "limit": 100}));
    let visits = page["visits"].as_array().expect("visits");
    assert_eq!(visits.len(), n);
    assert!(
        visits.iter().all(|v| v["status"] == "expired"),
        "all shown expired"
    );
    assert_eq!(
        w.store.events.len(),
        TOUCH_EVENT_BUDGET,
        "events within the budget"
    );
    let sweep = w.ok("expire-due", json!({}));
    assert_eq!(sweep["expired"], 8);
    assert_eq!(w.store.events.len(), n);
}

#[test]
fn retention_removes_closed_visits_checks_and_replays() {
    let (mut w, id, code) = World::visiting();
    w.gate(json!({"pass_code": code}));
    w.call_keyed(
        "blocklist-add",
        Some("b-1"),
        json!({"phone": "13900000009", "reason": "x", "by": "s-zhao"}),
    )
    .expect("block");
    w.now = T0 + 8 * DAY_MS;
    let sweep = w.ok("expire-due", json!({}));
    assert_eq!(sweep["expired"], 1);
    assert_eq!(sweep["purged_replays"], 1, "the blocklist-add's");
    assert!(
        !w.store
            .data
            .keys()
            .any(|k| k.starts_with("idem/") && !k.starts_with("idem/expire-due"))
    );
    w.now = T0 + 10 * HOUR + 180 * DAY_MS;
    let sweep = w.ok("expire-due", json!({}));
    assert_eq!(sweep["purged_visits"], 1);
    assert_eq!(sweep["purged_checks"], 1);
    let e = w.err("get-visit", json!({"visit_id": id}));
    assert!(
        matches!(&e, Error::NotFound(m) if m.contains("retention_days")),
        "{e}"
    );
    let left: Vec<&String> = w
        .store
        .data
        .keys()
        .filter(|k| !k.starts_with("r/") && !k.starts_with("seq/") && !k.starts_with("bl/"))
        .collect();
    assert!(left.is_empty(), "nothing of the visit is left: {left:?}");
    let check = w.gate(json!({"pass_code": code}));
    assert_eq!(check["reason"], "unknown");
}

// ---- the gate ------------------------------------------------------------------------

#[test]
fn a_pass_opens_the_gate_only_inside_its_window() {
    let mut w = World::new();
    let (id, code) = w.confirmed(); // window [T0+2h, T0+10h), opens 15 min early
    w.now = T0 + 2 * HOUR - 15 * MINUTE_MS - 1;
    let c = w.gate(json!({"pass_code": code}));
    assert_eq!(
        (c["decision"].as_str(), c["reason"].as_str()),
        (Some("deny"), Some("not-yet-valid"))
    );
    assert!(
        c["message"]
            .as_str()
            .expect("m")
            .contains("opens the gate from 2030-01-01T01:45:00Z")
    );
    w.now += 1;
    let c = w.gate(json!({"pass_code": code.to_lowercase()}));
    assert_eq!(c["decision"], "allow");
    assert_eq!(c["reason"], Value::Null);
    assert_eq!(c["valid_until_ms"], T0 + 10 * HOUR);
    assert_eq!(c["visitor_name"], "Li Wei");
    w.now = T0 + 10 * HOUR - 1;
    let c = w.gate(json!({"face_ref": FACE}));
    assert_eq!(c["decision"], "allow");
    assert_eq!(c["method"], "face");
    let v = w.ok("get-visit", json!({"visit_id": id}));
    assert_eq!(v["entries"], 2);
    assert_eq!(v["last_gate_id"], "east-gate");
    w.now = T0 + 10 * HOUR;
    let c = w.gate(json!({"pass_code": code}));
    assert_eq!(c["reason"], "expired");
    assert_eq!(
        w.kinds(),
        [
            "visit-registered",
            "visit-confirmed",
            "gate-denied",
            "gate-allowed",
            "gate-allowed",
            "visit-expired",
            "gate-denied"
        ]
    );
}

#[test]
fn unknown_and_malformed_credentials_are_denied_and_kept() {
    let mut w = World::new();
    let c = w.gate(json!({"pass_code": "ZZZZZZZZ"}));
    assert_eq!(
        (c["reason"].as_str(), c["visit_id"].as_str()),
        (Some("unknown"), None)
    );
    let c = w.gate(json!({"pass_code": "https://evil.example/x"}));
    assert_eq!(c["reason"], "unknown");
    assert_eq!(c["credential"], "(malformed)");
    let c = w.gate(json!({"face_ref": FACE2}));
    assert_eq!(c["reason"], "unknown");
    let list = w.ok("list-checks", json!({"gate_id": "east-gate"}));
    assert_eq!(list["checks"].as_array().expect("checks").len(), 3);
    // A face reference that is image data is the gate's bug: a denied check, recorded
    // without the data.
    let c = w.gate(json!({"face_ref": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"}));
    assert_eq!(c["reason"], "invalid-credential");
    assert!(c["message"].as_str().expect("m").contains("PNG"));
    // Neither credential (the host's schema says so too): refused, not a check.
    let e = w.err("gate-check", json!({"gate_id": "east-gate"}));
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("exactly one")),
        "{e}"
    );
    let list = w.ok("list-checks", json!({}));
    assert_eq!(list["checks"].as_array().expect("checks").len(), 4);
}

#[test]
fn a_face_picks_the_visit_that_opens_the_gate_or_the_nearest_reason() {
    let mut w = World::new();
    // Pending only: no pass.
    let pending = w.register(PHONE, Some(FACE), T0, T0 + 2 * DAY_MS);
    let c = w.gate(json!({"face_ref": FACE}));
    assert_eq!(
        (c["reason"].as_str(), c["visit_id"].as_str()),
        (Some("no-pass"), Some(pending.as_str()))
    );
    // A confirmed visit tomorrow: not yet valid beats no pass.
    let tomorrow = w.register(PHONE, Some(FACE), T0 + DAY_MS, T0 + DAY_MS + HOUR);
    w.ok("confirm-visit", by_wang(&tomorrow));
    let c = w.gate(json!({"face_ref": FACE}));
    assert_eq!(
        (c["reason"].as_str(), c["visit_id"].as_str()),
        (Some("not-yet-valid"), Some(tomorrow.as_str()))
    );
    // A confirmed visit now: allowed.
    let today = w.register(PHONE, Some(FACE), T0, T0 + HOUR);
    w.ok("confirm-visit", by_wang(&today));
    let c = w.gate(json!({"face_ref": FACE}));
    assert_eq!(
        (c["decision"].as_str(), c["visit_id"].as_str()),
        (Some("allow"), Some(today.as_str()))
    );
}

#[test]
fn the_blocklist_denies_at_the_gate_even_with_a_valid_pass() {
    let (mut w, id, code) = World::visiting();
    w.ok(
        "blocklist-add",
        json!({"phone": PHONE, "reason": "x", "by": "s-zhao", "until_ms": T0 + 4 * HOUR}),
    );
    for credential in [json!({"pass_code": code}), json!({"face_ref": FACE})] {
        let c = w.gate(credential);
        assert_eq!(
            (c["reason"].as_str(), c["visit_id"].as_str()),
            (Some("blocklisted"), Some(id.as_str()))
        );
        assert!(
            c["message"]
                .as_str()
                .expect("m")
                .contains("blocklist-remove")
        );
    }
    // A blocked face with no visit at all.
    w.ok(
        "blocklist-add",
        json!({"face_ref": FACE2, "reason": "x", "by": "s-zhao"}),
    );
    let c = w.gate(json!({"face_ref": FACE2}));
    assert_eq!(c["reason"], "blocklisted");
    assert_eq!(w.store.events.last().expect("e").1["reason"], "blocklisted");
    // The temporary entry lapses.
    w.now = T0 + 4 * HOUR;
    let c = w.gate(json!({"pass_code": code}));
    assert_eq!(c["decision"], "allow");
}

#[test]
fn every_check_is_in_the_trail_by_visit_and_by_gate() {
    let (mut w, id, code) = World::visiting();
    w.gate(json!({"pass_code": code}));
    w.ok(
        "gate-check",
        json!({"gate_id": "west-gate", "face_ref": FACE}),
    );
    w.gate(json!({"pass_code": "00000000"}));
    let by_visit = w.ok("list-checks", json!({"visit_id": id}));
    let checks = by_visit["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["check_id"], "c0000000001");
    assert_eq!(checks[1]["gate_id"], "west-gate");
    let west = w.ok("list-checks", json!({"gate_id": "west-gate"}));
    assert_eq!(west["checks"].as_array().expect("checks").len(), 1);
    let denied = w.ok("list-checks", json!({"decision": "deny"}));
    assert_eq!(denied["checks"][0]["check_id"], "c0000000003");
    let paged = w.ok("list-checks", json!({"limit": 2}));
    assert_eq!(paged["next"], "c0000000002");
    let rest = w.ok("list-checks", json!({"limit": 2, "after": "c0000000002"}));
    assert_eq!(rest["checks"].as_array().expect("checks").len(), 1);
    assert_eq!(rest["next"], Value::Null);
}

#[test]
fn a_retried_gate_check_is_another_check() {
    let (mut w, _, code) = World::visiting();
    let input = json!({"gate_id": "east-gate", "pass_code": code});
    let a = w
        .call_keyed("gate-check", Some("gate-east-0001"), input.clone())
        .expect("check");
    w.now += 1000;
    let b = w
        .call_keyed("gate-check", Some("gate-east-0001"), input)
        .expect("retry");
    assert_eq!(
        (a["decision"].as_str(), b["decision"].as_str()),
        (Some("allow"), Some("allow"))
    );
    assert_eq!(
        (a["check_id"].as_str(), b["check_id"].as_str()),
        (Some("c0000000001"), Some("c0000000002"))
    );
    assert_eq!(b["at_ms"], T0 + 3 * HOUR + 1000);
    let list = w.ok("list-checks", json!({}));
    assert_eq!(list["checks"].as_array().expect("checks").len(), 2);
}

#[test]
fn a_replayed_registration_is_one_visit() {
    let mut w = World::new();
    let input = json!({"visitor_name": "Li Wei", "phone": PHONE, "unit": "3-2-501", "from_ms": T0, "to_ms": T0 + HOUR});
    let a = w
        .call_keyed("register-visit", Some("reg-1"), input.clone())
        .expect("register");
    let b = w
        .call_keyed("register-visit", Some("reg-1"), input.clone())
        .expect("replay");
    assert_eq!(a, b);
    assert_eq!(w.store.events.len(), 1);
    let c = w
        .call_keyed("register-visit", Some("reg-2"), input)
        .expect("another");
    assert_eq!(c["visit_id"], "v00000002");
}

// ---- listings and the rest --------------------------------------------------------------

#[test]
fn visits_list_by_unit_phone_and_status() {
    let mut w = World::new();
    w.ok(
        "register-resident",
        json!({"unit": "3-2-5", "resident_id": "r-zhou"}),
    );
    let a = w.register(PHONE, None, T0, T0 + HOUR);
    let b = w.register("13900000000", None, T0, T0 + HOUR);
    w.ok("register-visit", json!({"visitor_name": "Zhou", "phone": PHONE, "unit": "3-2-5", "from_ms": T0, "to_ms": T0 + HOUR}));
    w.ok("confirm-visit", by_wang(&b));
    let ids = |v: &Value| -> Vec<String> {
        v["visits"]
            .as_array()
            .expect("visits")
            .iter()
            .map(|v| v["visit_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let unit = w.ok("list-visits", json!({"unit": "3-2-501"}));
    assert_eq!(ids(&unit), [a.clone(), b.clone()]);
    let phone = w.ok("list-visits", json!({"phone": PHONE}));
    assert_eq!(ids(&phone), [a.clone(), "v00000003".to_owned()]);
    let both = w.ok("list-visits", json!({"unit": "3-2-501", "phone": PHONE}));
    assert_eq!(ids(&both), [a.as_str()]);
    let pending = w.ok("list-visits", json!({"status": "pending"}));
    assert_eq!(ids(&pending), [a.clone(), "v00000003".to_owned()]);
    let page = w.ok("list-visits", json!({"limit": 1}));
    assert_eq!(page["next"], a);
    let next = w.ok("list-visits", json!({"limit": 2, "after": a}));
    assert_eq!(ids(&next), [b, "v00000003".to_owned()]);
    assert_eq!(next["next"], Value::Null);
}

#[test]
fn unknown_operations_and_bad_inputs() {
    let mut w = World::new();
    assert!(matches!(
        w.err("open-sesame", json!({})),
        Error::NotFound(_)
    ));
    assert!(matches!(
        w.err("get-visit", json!({"visit_id": "v00000001", "extra": 1})),
        Error::InvalidInput(_)
    ));
}

#[test]
fn every_operation_is_in_the_manifest_and_dispatched() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifest.json"))
        .expect("manifest");
    let manifest: Value = serde_json::from_str(&text).expect("json");
    let mut declared: Vec<&str> = manifest["operations"]
        .as_object()
        .expect("ops")
        .keys()
        .map(String::as_str)
        .collect();
    declared.sort_unstable();
    let mut ours = crate::OPERATIONS.to_vec();
    ours.sort_unstable();
    assert_eq!(declared, ours);
    let mut w = World::new();
    for op in crate::OPERATIONS {
        // An empty object is wrong for most, but never an unknown operation.
        if let Err(Error::NotFound(m)) = w.call(op, json!({})) {
            assert!(!m.contains("no operation"), "{op}: {m}");
        }
    }
}

// ---- regressions of the review ------------------------------------------------------------

/// Review 1: a reused idempotency key replayed the first result whatever the request.
#[test]
fn a_reused_key_with_another_request_is_a_conflict() {
    let mut w = World::new();
    let v1 = w.register(PHONE, None, T0 + 2 * HOUR, T0 + 10 * HOUR);
    let v2 = w.register("13900000001", None, T0 + 2 * HOUR, T0 + 10 * HOUR);
    let first = w
        .call_keyed("confirm-visit", Some("k"), by_wang(&v1))
        .expect("confirm v1");
    assert_eq!(first["visit_id"], v1);
    let e = w
        .call_keyed("confirm-visit", Some("k"), by_wang(&v2))
        .expect_err("another request with the same key");
    assert_conflict(&e, "already used for a different request (confirm-visit)");
    assert_conflict(&e, "use a new key");
    assert_eq!(w.status(&v2), "pending", "v2 was not touched");
    // The same request with the same key is still a replay.
    let again = w
        .call_keyed("confirm-visit", Some("k"), by_wang(&v1))
        .expect("replay");
    assert_eq!(again, first);
    // Equal JSON written in another order is the same request.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{"resident_id": "r-wang", "visit_id": "{v1}"}}"#
    ))
    .expect("json");
    assert_eq!(
        w.call_keyed("confirm-visit", Some("k"), reordered)
            .expect("replay"),
        first
    );
}

/// Review 1: a gate check is evaluated and audited every time, whatever its key.
#[test]
fn gate_checks_are_never_replayed() {
    let (mut w, id, code) = World::visiting();
    let allow = w
        .call_keyed(
            "gate-check",
            Some("K"),
            json!({"gate_id": "east-gate", "pass_code": code}),
        )
        .expect("check");
    assert_eq!(allow["decision"], "allow");
    w.ok(
        "cancel-visit",
        json!({"visit_id": id, "staff_id": "s-zhao"}),
    );
    let other = w
        .call_keyed(
            "gate-check",
            Some("K"),
            json!({"gate_id": "west-gate", "pass_code": "ZZZZZZZZ"}),
        )
        .expect("check");
    assert_eq!(
        (other["decision"].as_str(), other["reason"].as_str()),
        (Some("deny"), Some("unknown"))
    );
    assert_eq!(other["gate_id"], "west-gate");
    // An identical retry is evaluated again too: the pass was cancelled meanwhile.
    let retry = w
        .call_keyed(
            "gate-check",
            Some("K"),
            json!({"gate_id": "east-gate", "pass_code": code}),
        )
        .expect("check");
    assert_eq!(retry["reason"], "cancelled");
    let trail = w.ok("list-checks", json!({}));
    let ids: Vec<&str> = trail["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["check_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["c0000000001", "c0000000002", "c0000000003"]);
    assert!(
        !w.store
            .data
            .keys()
            .any(|k| k.starts_with("idem/gate-check")),
        "no replay record for gate checks"
    );
}

/// Review 2: pass codes were derived from public inputs; the same history in two
/// communities gave the same code.
#[test]
fn pass_codes_are_random_and_kept_by_a_replay() {
    let mut codes = std::collections::HashSet::new();
    for _ in 0..3 {
        let mut w = World::new();
        let id = w.register(PHONE, Some(FACE), T0 + 2 * HOUR, T0 + 10 * HOUR);
        let v = w
            .call_keyed("confirm-visit", Some("confirm-1"), by_wang(&id))
            .expect("confirm");
        let code = v["pass_code"].as_str().expect("code").to_owned();
        assert_eq!(
            crate::validate::normalize_pass_code(&code).as_deref(),
            Some(code.as_str())
        );
        let again = w
            .call_keyed("confirm-visit", Some("confirm-1"), by_wang(&id))
            .expect("replay");
        assert_eq!(again["pass_code"], code.as_str(), "a replay keeps the code");
        assert_eq!(
            w.ok("get-visit", json!({"visit_id": id}))["pass_code"],
            code
        );
        codes.insert(code);
    }
    assert_eq!(codes.len(), 3, "the same history gives different codes");
}

/// Review 3: the blocklist and the open-visit cap compared phones and faces as typed.
#[test]
fn phones_and_face_hashes_are_compared_in_canonical_form() {
    let mut w = World::with(Config {
        max_open_visits_per_visitor: 2,
        ..Config::default()
    });
    w.ok(
        "blocklist-add",
        json!({"phone": "13900000000", "reason": "sales", "by": "s-zhao"}),
    );
    for phone in ["+8613900000000", "008613900000000", "8613900000000"] {
        let e = w.err(
            "register-visit",
            json!({"visitor_name": "Sun Hao", "phone": phone, "unit": "3-2-501",
                   "from_ms": T0, "to_ms": T0 + HOUR}),
        );
        assert_conflict(&e, "phone number is on the community's blocklist");
    }
    let removed = w.ok(
        "blocklist-remove",
        json!({"phone": "+8613900000000", "by": "s-zhao"}),
    );
    assert_eq!(removed["value"], "13900000000");
    let added = w.ok(
        "blocklist-add",
        json!({"phone": "0086 13900000000".replace(' ', ""), "reason": "sales", "by": "s-zhao"}),
    );
    assert_eq!(added["value"], "13900000000");

    // The open-visit cap, whatever the format.
    let a = w.register("+8613812345678", None, T0, T0 + HOUR);
    let va = w.ok("get-visit", json!({"visit_id": a}));
    assert_eq!(va["phone"], PHONE, "stored in canonical form");
    w.register(PHONE, None, T0, T0 + HOUR);
    let e = w.err(
        "register-visit",
        json!({"visitor_name": "Li Wei", "phone": "008613812345678", "unit": "3-2-501",
               "from_ms": T0, "to_ms": T0 + HOUR}),
    );
    assert_conflict(&e, "phone number already has 2 open visits");
    let listed = w.ok("list-visits", json!({"phone": "+8613812345678"}));
    assert_eq!(listed["visits"].as_array().expect("visits").len(), 2);
    w.ok(
        "cancel-visit",
        json!({"visit_id": a, "phone": "+8613812345678"}),
    );

    // Face hashes, whatever the case of their hex.
    let upper = FACE.to_ascii_uppercase();
    w.ok(
        "blocklist-add",
        json!({"face_ref": upper, "reason": "x", "by": "s-zhao"}),
    );
    let e = w.err(
        "register-visit",
        json!({"visitor_name": "Li Wei", "phone": "13700000000", "face_ref": FACE,
               "unit": "3-2-501", "from_ms": T0, "to_ms": T0 + HOUR}),
    );
    assert_conflict(&e, "face reference is on the community's blocklist");
    w.ok(
        "blocklist-remove",
        json!({"face_ref": FACE, "by": "s-zhao"}),
    );
    let b = w.register("13700000000", Some(&upper), T0, T0 + HOUR);
    w.ok("confirm-visit", by_wang(&b));
    let c = w.gate(json!({"face_ref": FACE}));
    assert_eq!(
        (c["decision"].as_str(), c["visit_id"].as_str()),
        (Some("allow"), Some(b.as_str()))
    );
    let c = w.gate(json!({"face_ref": upper}));
    assert_eq!(c["credential"], FACE, "kept in canonical form");
    // The cap counts the face in either case.
    w.register("13700000001", Some(FACE), T0, T0 + HOUR);
    let e = w.err(
        "register-visit",
        json!({"visitor_name": "Li Wei", "phone": "13700000002", "face_ref": upper,
               "unit": "3-2-501", "from_ms": T0, "to_ms": T0 + HOUR}),
    );
    assert_conflict(&e, "face reference already has 2 open visits");
}

/// Review 4: image data at the gate left no trace in the audit trail.
#[test]
fn image_data_at_the_gate_is_a_recorded_denial() {
    let mut w = World::new();
    let image = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB";
    let c = w.gate(json!({"face_ref": image}));
    assert_eq!(
        (c["decision"].as_str(), c["reason"].as_str()),
        (Some("deny"), Some("invalid-credential"))
    );
    assert_eq!(c["method"], "face");
    assert_eq!(c["credential"], "(refused: not a face reference)");
    let m = c["message"].as_str().expect("message");
    assert!(m.contains("PNG") && m.contains("never an image"), "{m}");
    assert!(!m.contains(image));
    let trail = w.ok("list-checks", json!({"gate_id": "east-gate"}));
    assert_eq!(trail["checks"].as_array().expect("checks").len(), 1);
    assert_eq!(w.kinds(), ["gate-denied"]);
    assert_eq!(w.store.events[0].1["reason"], "invalid-credential");
    assert!(
        !serde_json::to_string(&w.store.data)
            .expect("json")
            .contains(image)
    );
}

/// Review 5: stale deadlines used up the sweep's scan and it said `more: false`.
#[test]
fn the_sweep_walks_past_stale_deadlines() {
    let mut w = World::new();
    for n in 0..12 {
        w.store.data.insert(
            crate::keys::due(T0 + n, &format!("v9999{n:04}")),
            json!(true),
        );
    }
    let id = w.register(PHONE, None, T0, T0 + HOUR);
    w.now = T0 + HOUR;
    let sweep = w.ok("expire-due", json!({"limit": 5}));
    assert_eq!(
        (sweep["expired"].as_u64(), sweep["more"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(w.store.data[&crate::keys::visit(&id)]["status"], "expired");
    assert!(!w.store.data.keys().any(|k| k.starts_with("due/")));
}
