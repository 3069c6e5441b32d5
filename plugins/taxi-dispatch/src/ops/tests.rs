//! The operations end to end over an in-memory store, as the host would run them: a
//! call that fails leaves no writes and no events (the host discards them).

use super::*;
use crate::events;
use crate::test_support::{check_store, declared, event_kinds, keys, manifest, sorted};
use courtyard_sdk::json;
use courtyard_sdk::testing::{MemoryStore, difference, doc_steps, error_body, run_doc_example};
use std::collections::BTreeMap;

const T0: i64 = 4_102_444_800_000; // 2100-01-01T00:00:00Z
const S: i64 = 1000;

/// The pickup of the test screen "tower-a".
const LAT: f64 = 36.0;
const LON: f64 = 120.0;

/// A community: its store, config and clock.
struct World {
    store: MemoryStore,
    config: Config,
    now: i64,
}

impl World {
    fn new() -> Self {
        Self {
            store: MemoryStore::default(),
            config: Config::default(),
            now: T0,
        }
    }

    fn with(config: Config) -> Self {
        Self {
            config,
            ..Self::new()
        }
    }

    /// A call with an optional idempotency key; a failure rolls back like the host.
    fn call_with(&mut self, key: Option<&str>, op: &str, input: Value) -> Result<Value, Error> {
        let call = Call {
            now_ms: self.now,
            idempotency_key: key,
        };
        let events_before = self.store.events.len();
        let config = &self.config;
        let result = self.store.call(|store| {
            let result = invoke(store, config, call, op, input.clone());
            check_store(store);
            result
        });
        record(op, &input, &result, &self.store.events[events_before..]);
        result
    }

    fn call(&mut self, op: &str, input: Value) -> Result<Value, Error> {
        self.call_with(None, op, input)
    }

    fn ok(&mut self, op: &str, input: Value) -> Value {
        match self.call(op, input.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{op} {input} failed: {e}"),
        }
    }

    fn conflict(&mut self, op: &str, input: Value) -> String {
        match self.call(op, input.clone()) {
            Err(Error::Conflict(m)) => m,
            other => panic!("{op} {input}: expected a conflict, got {other:?}"),
        }
    }

    fn not_found(&mut self, op: &str, input: Value) -> String {
        match self.call(op, input.clone()) {
            Err(Error::NotFound(m)) => m,
            other => panic!("{op} {input}: expected not found, got {other:?}"),
        }
    }

    fn invalid(&mut self, op: &str, input: Value) -> String {
        match self.call(op, input.clone()) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("{op} {input}: expected invalid input, got {other:?}"),
        }
    }

    fn screen(&mut self, id: &str, lat: f64, lon: f64) {
        self.ok(
            "register-screen",
            json!({"screen_id": id, "pickup": {"lat": lat, "lon": lon, "description": format!("{id} door")}}),
        );
    }

    /// Driver `id` reports `metres` north of the tower-a pickup, available.
    fn driver(&mut self, id: &str, metres: f64) -> Value {
        self.ok(
            "report-driver",
            json!({"driver_id": id, "lat": LAT + metres / 111_195.08, "lon": LON, "available": true, "vehicle_plate": format!("P-{id}")}),
        )
    }

    fn press(&mut self, screen: &str) -> Value {
        self.ok("request-ride", json!({"screen_id": screen}))
    }

    /// A press sent with an idempotency key.
    fn press_with_key(&mut self, key: &str, screen: &str) -> Result<Value, Error> {
        self.call_with(Some(key), "request-ride", json!({"screen_id": screen}))
    }

    fn ride(&mut self, id: &str) -> Value {
        self.ok("get-ride", json!({"ride_id": id}))
    }

    fn events_since(&self, n: usize) -> Vec<&str> {
        self.store.events[n..]
            .iter()
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The invariants between rides and their indexes, drivers and screens.
    fn check_invariants(&self) {
        let data = &self.store.data;
        let rides: Vec<Ride> = data
            .iter()
            .filter(|(k, _)| k.starts_with("ride/"))
            .map(|(_, v)| serde_json::from_value(v.clone()).expect("ride"))
            .collect();
        let mut expected: BTreeMap<String, Value> = BTreeMap::new();
        let mut busy: BTreeMap<String, String> = BTreeMap::new();
        let mut screen_open: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ride in &rides {
            let id = json!(ride.ride_id);
            if !ride.state.is_final() {
                expected.insert(keys::open(ride.state, &ride.ride_id), id.clone());
            }
            if let Some(key) = due_key(ride) {
                expected.insert(key, id.clone());
            }
            for d in ride.open_offers() {
                expected.insert(keys::offer(d, &ride.ride_id), id.clone());
            }
            if let Some(d) = ride.busy_driver() {
                assert!(
                    busy.insert(d.to_owned(), ride.ride_id.clone()).is_none(),
                    "driver {d} holds two rides"
                );
            }
            if let Some(s) = &ride.screen_id
                && ride.state.rider_waiting()
            {
                screen_open
                    .entry(s.clone())
                    .or_default()
                    .push(ride.ride_id.clone());
            }
        }
        let actual: BTreeMap<String, Value> = data
            .iter()
            .filter(|(k, _)| {
                k.starts_with("open/") || k.starts_with("due/") || k.starts_with("offer/")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(actual, expected, "indexes out of step with the rides");
        for (key, value) in data.iter().filter(|(k, _)| k.starts_with("driver/")) {
            let driver: Driver = serde_json::from_value(value.clone()).expect("driver");
            assert_eq!(
                driver.ride_id.as_ref(),
                busy.get(&driver.driver_id),
                "busy flag of {key}"
            );
        }
        for (_, value) in data.iter().filter(|(k, _)| k.starts_with("screen/")) {
            let screen: Screen = serde_json::from_value(value.clone()).expect("screen");
            let open = screen_open.remove(&screen.screen_id).unwrap_or_default();
            assert_eq!(
                screen.open_rides, open,
                "open rides of {}",
                screen.screen_id
            );
            let history = data
                .keys()
                .filter(|k| k.starts_with(&keys::history_prefix(&screen.screen_id)))
                .count() as u64;
            assert_eq!(screen.rides_total, history);
        }
        assert!(screen_open.is_empty(), "rides of unknown screens");
        assert_eq!(keys(&self.store, "all/").len(), rides.len());
        for (kind, _) in &self.store.events {
            assert!(events::ALL.contains(&kind.as_str()), "undeclared {kind}");
        }
    }
}

/// With `TAXI_DISPATCH_CALLS=<file>`, every call of every test is appended to the file
/// (JSON lines: operation, input, output or error, events), for checking inputs, outputs
/// and event payloads against the manifest's schemas outside Rust.
fn record(op: &str, input: &Value, result: &Result<Value, Error>, events: &[(String, Value)]) {
    use std::io::Write;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let Ok(path) = std::env::var("TAXI_DISPATCH_CALLS") else {
        return;
    };
    let line = json!({
        "operation": op,
        "input": input,
        "output": result.as_ref().ok(),
        "error": result.as_ref().err().map(|e| e.to_string()),
        "events": events.iter().map(|(k, p)| json!({"kind": k, "payload": p})).collect::<Vec<_>>(),
    });
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("calls file");
    writeln!(file, "{line}").expect("write");
}

/// The input of `accept-ride`, `pick-up` and `release-ride` (without a reason).
fn ride_and_driver(ride_id: &str, driver_id: &str) -> Value {
    json!({"ride_id": ride_id, "driver_id": driver_id})
}

fn ids(rides: &Value) -> Vec<String> {
    rides
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["ride_id"].as_str().expect("id").to_owned())
        .collect()
}

fn offered(ride: &Value) -> Vec<(String, u64)> {
    ride["offered"]
        .as_array()
        .expect("offered")
        .iter()
        .map(|o| {
            (
                o["driver_id"].as_str().expect("id").to_owned(),
                o["round"].as_u64().expect("round"),
            )
        })
        .collect()
}

/// A community with `config` and the screen tower-a at the pickup.
fn tower_a(config: Config) -> World {
    let mut w = World::with(config);
    w.screen("tower-a", LAT, LON);
    w
}

/// tower-a, which may have `max_open` rides waiting, and a at 100 m.
fn screen_with_max_open(max_open: u32) -> World {
    let mut w = tower_a(Config {
        max_open_rides_per_screen: max_open,
        ..Config::default()
    });
    w.driver("a", 100.0);
    w
}

/// tower-a at the pickup; a at 500 m, b at 900 m, far at 5000 m.
fn world() -> World {
    let mut w = tower_a(Config::default());
    w.driver("a", 500.0);
    w.driver("b", 900.0);
    w.driver("far", 5000.0);
    w
}

/// [`world`] with ride 1 pressed at tower-a and accepted by a.
fn accepted_by_a() -> World {
    let mut w = world();
    w.press("tower-a");
    w.ok("accept-ride", ride_and_driver("ride-00000001", "a"));
    w
}

// ---- the manifest ------------------------------------------------------------------------

#[test]
fn the_manifest_declares_exactly_the_operations_served() {
    assert_eq!(declared("operations"), sorted(&OPERATIONS));
    for op in MUTATING {
        assert!(OPERATIONS.contains(&op), "{op}");
    }
    let manifest = manifest();
    assert_eq!(manifest["name"], "taxi-dispatch");
    assert_eq!(manifest["capabilities"], json!(["state", "events"]));
}

#[test]
fn every_operation_is_routed_and_unknown_ones_are_not_found() {
    let mut w = world();
    for op in OPERATIONS {
        // An empty input is refused by the parser or answered; never "no operation".
        if let Err(Error::NotFound(m)) = w.call(op, json!({})) {
            assert!(!m.contains("no operation"), "{op}: {m}");
        }
    }
    let m = w.not_found("fly", json!({}));
    assert!(m.contains("no operation \"fly\""), "{m}");
}

#[test]
fn inputs_with_unknown_fields_are_invalid() {
    let mut w = world();
    let m = w.invalid("get-ride", json!({"ride_id": "ride-00000001", "x": 1}));
    assert!(m.contains("unknown field"), "{m}");
}

// ---- screens -----------------------------------------------------------------------------

#[test]
fn screens_are_registered_updated_read_and_listed() {
    let mut w = World::new();
    let s = w.ok(
        "register-screen",
        json!({"screen_id": "tower-a", "pickup": {"lat": LAT, "lon": LON, "description": "Tower A door"}}),
    );
    assert_eq!(s["active"], true);
    assert_eq!(s["open_rides"], json!([]));
    assert_eq!(s["rides_total"], 0);
    w.now += 60 * S;
    let s = w.ok(
        "register-screen",
        json!({"screen_id": "tower-a", "pickup": {"lat": LAT, "lon": LON, "description": "Tower A east door"}, "active": false}),
    );
    assert_eq!(s["pickup"]["description"], "Tower A east door");
    assert_eq!(
        (s["registered_at_ms"].as_i64(), s["updated_at_ms"].as_i64()),
        (Some(T0), Some(T0 + 60 * S))
    );
    assert_eq!(w.ok("get-screen", json!({"screen_id": "tower-a"})), s);
    let m = w.not_found("get-screen", json!({"screen_id": "nope"}));
    assert_eq!(
        m,
        "no screen \"nope\" is registered in this community; register it with register-screen first"
    );
    for id in ["b", "c", "d"] {
        w.screen(id, LAT, LON);
    }
    let page = w.ok("list-screens", json!({"limit": 3}));
    let names: Vec<&str> = page["screens"]
        .as_array()
        .expect("screens")
        .iter()
        .map(|s| s["screen_id"].as_str().expect("id"))
        .collect();
    assert_eq!(names, ["b", "c", "d"]);
    assert_eq!(page["next"], "d");
    let page = w.ok("list-screens", json!({"after": "d", "limit": 3}));
    assert_eq!(page["screens"][0]["screen_id"], "tower-a");
    assert_eq!(page["next"], Value::Null);
}

#[test]
fn a_screen_pickup_out_of_range_is_invalid() {
    let mut w = World::new();
    let m = w.invalid(
        "register-screen",
        json!({"screen_id": "x", "pickup": {"lat": 95.0, "lon": LON, "description": "d"}}),
    );
    assert!(m.contains("latitude 95"), "{m}");
    let m = w.invalid(
        "register-screen",
        json!({"screen_id": "x", "pickup": {"lat": LAT, "lon": LON, "description": " "}}),
    );
    assert!(m.contains("description"), "{m}");
}

#[test]
fn presses_on_unknown_inactive_or_busy_screens_are_refused() {
    let mut w = world();
    let m = w.not_found("request-ride", json!({"screen_id": "ghost"}));
    assert!(m.contains("no screen \"ghost\""), "{m}");

    w.ok(
        "register-screen",
        json!({"screen_id": "tower-a", "pickup": {"lat": LAT, "lon": LON, "description": "d"}, "active": false}),
    );
    let m = w.conflict("request-ride", json!({"screen_id": "tower-a"}));
    assert!(m.contains("out of service"), "{m}");
    w.screen("tower-a", LAT, LON);

    let ride = w.press("tower-a");
    let m = w.conflict("request-ride", json!({"screen_id": "tower-a"}));
    assert_eq!(
        m,
        "screen \"tower-a\" already has a ride waiting (ride-00000001) and may have 1 at a time; wait for it or cancel it first"
    );
    assert_eq!(ride["ride_id"], "ride-00000001");
    // Once the rider is in the car the screen is free again.
    w.ok("accept-ride", ride_and_driver("ride-00000001", "a"));
    w.conflict("request-ride", json!({"screen_id": "tower-a"}));
    w.ok("pick-up", ride_and_driver("ride-00000001", "a"));
    let second = w.press("tower-a");
    assert_eq!(second["ride_id"], "ride-00000002");
    w.check_invariants();
}

#[test]
fn a_screen_may_have_more_open_rides_when_configured() {
    let mut w = screen_with_max_open(2);
    w.press("tower-a");
    w.press("tower-a");
    let m = w.conflict("request-ride", json!({"screen_id": "tower-a"}));
    assert!(
        m.contains("has 2 rides waiting (ride-00000001, ride-00000002) and may have 2 at a time; wait for one"),
        "{m}"
    );
    w.check_invariants();
}

#[test]
fn a_request_names_a_screen_or_a_pickup_not_both() {
    let mut w = world();
    let pickup = json!({"lat": LAT, "lon": LON, "description": "Gate 2"});
    let m = w.invalid(
        "request-ride",
        json!({"screen_id": "tower-a", "pickup": pickup}),
    );
    assert!(m.contains("either screen_id"), "{m}");
    w.invalid("request-ride", json!({}));
    assert!(keys(&w.store, "ride/").is_empty());
}

// ---- drivers -----------------------------------------------------------------------------

#[test]
fn drivers_report_and_go_stale() {
    let mut w = World::new();
    let d = w.driver("a", 0.0);
    assert_eq!(d["status"], "available");
    assert_eq!(d["reported_at_ms"], T0);
    assert_eq!(d["offers"], json!([]));
    assert_eq!(d["vehicle_plate"], "P-a");
    w.now += 120 * S;
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["status"],
        "available"
    );
    w.now += 1;
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["status"],
        "stale"
    );
    let d = w.ok(
        "report-driver",
        json!({"driver_id": "a", "lat": LAT, "lon": LON, "available": false}),
    );
    assert_eq!(d["status"], "unavailable");
    assert_eq!(d["vehicle_plate"], "P-a", "the plate is kept");
    let m = w.not_found("get-driver", json!({"driver_id": "b"}));
    assert!(m.contains("report-driver first"), "{m}");
    let m = w.invalid(
        "report-driver",
        json!({"driver_id": "a", "lat": LAT, "lon": 181.0, "available": true}),
    );
    assert!(m.contains("longitude"), "{m}");
}

#[test]
fn drivers_are_listed_with_their_status() {
    let mut w = accepted_by_a();
    w.ok(
        "report-driver",
        json!({"driver_id": "b", "lat": LAT, "lon": LON, "available": false}),
    );
    let page = w.ok("list-drivers", json!({"limit": 2}));
    let statuses: Vec<(&str, &str)> = page["drivers"]
        .as_array()
        .expect("drivers")
        .iter()
        .map(|d| {
            (
                d["driver_id"].as_str().expect("id"),
                d["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(statuses, [("a", "busy"), ("b", "unavailable")]);
    assert_eq!(page["next"], "b");
    assert!(page["drivers"][0].get("offers").is_none());
    assert_eq!(page["drivers"][0]["ride_id"], "ride-00000001");
    let page = w.ok("list-drivers", json!({"after": "b"}));
    assert_eq!(page["drivers"][0]["driver_id"], "far");
    assert_eq!(page["drivers"][0]["status"], "available");
    assert_eq!(page["next"], Value::Null);
}

#[test]
fn a_driver_sees_its_open_offers_with_its_current_distance() {
    let mut w = world();
    w.press("tower-a");
    let d = w.ok("get-driver", json!({"driver_id": "b"}));
    let offers = d["offers"].as_array().expect("offers");
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0]["ride_id"], "ride-00000001");
    assert_eq!(offers[0]["distance_m"], 900);
    assert_eq!(offers[0]["round"], 1);
    assert_eq!(offers[0]["round_deadline_ms"], T0 + 45 * S);
    assert_eq!(offers[0]["pickup"]["description"], "tower-a door");
    // The driver moves closer: its report answers with the offer at the new distance.
    let d = w.driver("b", 200.0);
    assert_eq!(d["offers"][0]["distance_m"], 200);
    // far was never offered it.
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "far"}))["offers"],
        json!([])
    );
    // Once a takes it, b's offer is gone.
    w.ok("accept-ride", ride_and_driver("ride-00000001", "a"));
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "b"}))["offers"],
        json!([])
    );
    w.check_invariants();
}

// ---- requests and offers -----------------------------------------------------------------

#[test]
fn a_press_offers_the_ride_to_the_nearest_available_drivers() {
    let mut w = world();
    let ride = w.press("tower-a");
    assert_eq!(ride["ride_id"], "ride-00000001");
    assert_eq!(ride["state"], "offering");
    assert_eq!(ride["source"], "screen");
    assert_eq!(ride["screen_id"], "tower-a");
    assert_eq!(
        ride["pickup"],
        json!({"lat": LAT, "lon": LON, "description": "tower-a door"})
    );
    assert_eq!(
        (ride["round"].clone(), ride["radius_m"].clone()),
        (json!(1), json!(2000))
    );
    assert_eq!(
        ride["offered"],
        json!([
            {"driver_id": "a", "distance_m": 500, "round": 1},
            {"driver_id": "b", "distance_m": 900, "round": 1}
        ])
    );
    assert_eq!(ride["times"]["round_deadline_ms"], T0 + 45 * S);
    assert_eq!(
        event_kinds(&w.store),
        [events::RIDE_REQUESTED, events::RIDE_OFFERED]
    );
    let (_, offered_event) = &w.store.events[1];
    assert_eq!(offered_event["round"], 1);
    assert_eq!(offered_event["expires_at_ms"], T0 + 45 * S);
    assert_eq!(
        offered_event["drivers"][0],
        json!({"driver_id": "a", "distance_m": 500})
    );
    let screen = w.ok("get-screen", json!({"screen_id": "tower-a"}));
    assert_eq!(screen["open_rides"], json!(["ride-00000001"]));
    assert_eq!(screen["rides_total"], 1);
    w.check_invariants();
}

#[test]
fn a_phone_request_carries_its_own_pickup() {
    let mut w = world();
    let ride = w.ok(
        "request-ride",
        json!({"pickup": {"lat": LAT, "lon": LON, "description": " Gate 2 "}, "rider_ref": "app-user-7", "note": "wheelchair"}),
    );
    assert_eq!(ride["source"], "phone");
    assert_eq!(ride["screen_id"], Value::Null);
    assert_eq!(ride["pickup"]["description"], "Gate 2");
    assert_eq!(ride["rider_ref"], "app-user-7");
    assert_eq!(ride["note"], "wheelchair");
    assert_eq!(w.store.events[0].1["screen_id"], Value::Null);
    assert_eq!(w.store.events[1].1["note"], "wheelchair");
    w.check_invariants();
}

#[test]
fn stale_unavailable_and_busy_drivers_get_no_offers() {
    let mut w = world();
    w.now += 121 * S; // a, b and far are stale
    w.driver("fresh", 1500.0);
    let ride = w.press("tower-a");
    assert_eq!(offered(&ride), [("fresh".to_owned(), 1)]);
    w.ok("accept-ride", ride_and_driver("ride-00000001", "fresh"));
    // fresh is busy: a phone ride right next to it escalates.
    let ride = w.ok(
        "request-ride",
        json!({"pickup": {"lat": LAT, "lon": LON, "description": "Gate 2"}}),
    );
    assert_eq!(ride["state"], "escalated");
    w.check_invariants();
}

#[test]
fn nobody_available_escalates_at_once_for_staff() {
    let mut w = tower_a(Config::default());
    let ride = w.press("tower-a");
    assert_eq!(ride["state"], "escalated");
    assert_eq!(ride["round"], 3);
    assert_eq!(ride["radius_m"], 8000);
    assert_eq!(
        ride["escalation_reason"],
        "no available driver within 8000 m of the pickup in 3 round(s)"
    );
    assert_eq!(ride["times"]["escalated_ms"], T0);
    assert_eq!(
        event_kinds(&w.store),
        [events::RIDE_REQUESTED, events::RIDE_ESCALATED]
    );
    let payload = &w.store.events[1].1;
    assert_eq!(payload["drivers_offered"], 0);
    assert_eq!(payload["reason"], ride["escalation_reason"]);
    let listed = w.ok("list-rides", json!({"state": "escalated"}));
    assert_eq!(ids(&listed["rides"]), ["ride-00000001"]);
    // The screen still has the ride open: the rider waits for staff.
    w.conflict("request-ride", json!({"screen_id": "tower-a"}));
    w.check_invariants();
}

// ---- accept: first wins ------------------------------------------------------------------

#[test]
fn the_first_accept_wins_and_every_later_accept_is_a_conflict() {
    let mut w = world();
    w.press("tower-a");
    w.now += 10 * S;
    let n = w.store.events.len();
    let ride = w.ok("accept-ride", ride_and_driver("ride-00000001", "b"));
    assert_eq!(ride["state"], "accepted");
    assert_eq!(ride["driver_id"], "b");
    assert_eq!(ride["vehicle_plate"], "P-b");
    assert_eq!(ride["pickup"]["lat"], LAT);
    assert_eq!(ride["times"]["accepted_ms"], T0 + 10 * S);
    assert_eq!(ride["times"]["round_deadline_ms"], Value::Null);
    assert_eq!(w.events_since(n), [events::RIDE_ACCEPTED]);
    let payload = &w.store.events[n].1;
    assert_eq!(payload["driver_id"], "b");
    assert_eq!(payload["pickup"]["description"], "tower-a door");

    let m = w.conflict("accept-ride", ride_and_driver("ride-00000001", "a"));
    assert_eq!(
        m,
        "ride already taken: ride ride-00000001 was accepted by another driver"
    );
    // A stranger gets the same answer once it is taken.
    w.conflict("accept-ride", ride_and_driver("ride-00000001", "far"));
    // The winner retrying gets its ride again, and nothing is emitted twice.
    let again = w.ok("accept-ride", ride_and_driver("ride-00000001", "b"));
    assert_eq!(again, ride);
    assert_eq!(w.events_since(n), [events::RIDE_ACCEPTED]);

    let b = w.ok("get-driver", json!({"driver_id": "b"}));
    assert_eq!(
        (b["status"].clone(), b["ride_id"].clone()),
        (json!("busy"), json!("ride-00000001"))
    );
    w.check_invariants();
}

#[test]
fn an_accept_by_a_driver_the_ride_was_not_offered_to_is_refused() {
    let mut w = world();
    w.press("tower-a");
    let m = w.conflict("accept-ride", ride_and_driver("ride-00000001", "far"));
    assert_eq!(
        m,
        "ride ride-00000001 was not offered to driver \"far\"; a driver can only accept rides offered to it (see get-driver)"
    );
    // Nor by a driver that never reported.
    w.conflict("accept-ride", ride_and_driver("ride-00000001", "nobody"));
    assert_eq!(w.ride("ride-00000001")["state"], "offering");
}

#[test]
fn accepting_an_unknown_ride_is_not_found() {
    let mut w = world();
    let m = w.not_found("accept-ride", ride_and_driver("ride-00000042", "a"));
    assert!(m.contains("no ride \"ride-00000042\""), "{m}");
}

#[test]
fn a_driver_on_a_ride_cannot_accept_another() {
    let mut w = world();
    w.screen("tower-b", LAT, LON);
    w.press("tower-a");
    w.press("tower-b");
    w.ok("accept-ride", ride_and_driver("ride-00000001", "a"));
    let m = w.conflict("accept-ride", ride_and_driver("ride-00000002", "a"));
    assert!(
        m.contains("driver \"a\" is busy with ride ride-00000001"),
        "{m}"
    );
    w.ok("accept-ride", ride_and_driver("ride-00000002", "b"));
    w.check_invariants();
}

// ---- pick-up, completion, cancel, release ------------------------------------------------

#[test]
fn the_whole_ride_frees_the_driver_and_the_screen() {
    let mut w = accepted_by_a();
    let m = w.conflict("pick-up", ride_and_driver("ride-00000001", "b"));
    assert_eq!(
        m,
        "ride ride-00000001 is assigned to another driver, not to driver \"b\"; only its driver can pick it up"
    );
    let m = w.conflict(
        "complete-ride",
        json!({"ride_id": "ride-00000001", "by": "driver", "driver_id": "a"}),
    );
    assert!(m.contains("call pick-up first"), "{m}");
    w.now += 300 * S;
    let ride = w.ok("pick-up", ride_and_driver("ride-00000001", "a"));
    assert_eq!(ride["state"], "picked_up");
    assert_eq!(
        w.ok("get-screen", json!({"screen_id": "tower-a"}))["open_rides"],
        json!([])
    );
    let m = w.conflict(
        "cancel-ride",
        json!({"ride_id": "ride-00000001", "by": "rider"}),
    );
    assert!(m.contains("can no longer be cancelled"), "{m}");
    w.now += 900 * S;
    let ride = w.ok(
        "complete-ride",
        json!({"ride_id": "ride-00000001", "by": "driver", "driver_id": "a"}),
    );
    assert_eq!(ride["state"], "completed");
    assert_eq!(ride["completed_by"], "driver");
    assert_eq!(ride["times"]["completed_ms"], T0 + 1200 * S);
    let a = w.ok("get-driver", json!({"driver_id": "a"}));
    assert_eq!(a["ride_id"], Value::Null);
    assert_eq!(
        event_kinds(&w.store),
        [
            events::RIDE_REQUESTED,
            events::RIDE_OFFERED,
            events::RIDE_ACCEPTED,
            events::RIDE_PICKED_UP,
            events::RIDE_COMPLETED
        ]
    );
    assert_eq!(w.store.events[4].1["completed_by"], "driver");
    let m = w.conflict(
        "complete-ride",
        json!({"ride_id": "ride-00000001", "by": "staff"}),
    );
    assert!(m.contains("already completed"), "{m}");
    w.check_invariants();
}

#[test]
fn staff_complete_a_ride_whose_driver_cannot() {
    let mut w = accepted_by_a();
    w.ok("pick-up", ride_and_driver("ride-00000001", "a"));
    let m = w.invalid(
        "complete-ride",
        json!({"ride_id": "ride-00000001", "by": "driver"}),
    );
    assert!(m.contains("needs the driver_id"), "{m}");
    let ride = w.ok(
        "complete-ride",
        json!({"ride_id": "ride-00000001", "by": "staff"}),
    );
    assert_eq!(ride["completed_by"], "staff");
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["status"],
        "available"
    );
    w.check_invariants();
}

#[test]
fn cancelling_closes_offers_and_frees_driver_and_screen() {
    let mut w = world();
    w.press("tower-a");
    let ride = w.ok(
        "cancel-ride",
        json!({"ride_id": "ride-00000001", "by": "rider", "reason": "pressed by mistake"}),
    );
    assert_eq!(ride["state"], "cancelled");
    assert_eq!(ride["cancelled_by"], "rider");
    assert_eq!(ride["cancel_reason"], "pressed by mistake");
    let payload = &w.store.events.last().expect("event").1;
    assert_eq!(payload["previous_state"], "offering");
    assert_eq!(payload["driver_id"], Value::Null);
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["offers"],
        json!([])
    );
    w.check_invariants();

    // Accepted, then cancelled by staff: the driver is free.
    w.press("tower-a");
    w.ok("accept-ride", ride_and_driver("ride-00000002", "a"));
    w.ok(
        "cancel-ride",
        json!({"ride_id": "ride-00000002", "by": "staff"}),
    );
    let payload = &w.store.events.last().expect("event").1;
    assert_eq!(payload["previous_state"], "accepted");
    assert_eq!(payload["driver_id"], "a");
    assert_eq!(payload["cancelled_by"], "staff");
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["status"],
        "available"
    );
    let m = w.conflict(
        "cancel-ride",
        json!({"ride_id": "ride-00000002", "by": "staff"}),
    );
    assert_eq!(m, "ride ride-00000002 is already cancelled");
    let m = w.conflict("accept-ride", ride_and_driver("ride-00000002", "b"));
    assert!(m.contains("was cancelled"), "{m}");
    w.check_invariants();
}

#[test]
fn a_released_ride_is_offered_again_without_its_driver() {
    let mut w = accepted_by_a();
    let m = w.conflict("release-ride", ride_and_driver("ride-00000001", "b"));
    assert!(m.contains("assigned to another driver"), "{m}");
    w.now += 30 * S;
    let n = w.store.events.len();
    let ride = w.ok(
        "release-ride",
        json!({"ride_id": "ride-00000001", "driver_id": "a", "reason": "flat tyre"}),
    );
    assert_eq!(ride["state"], "offering");
    assert_eq!(ride["driver_id"], Value::Null);
    assert_eq!(offered(&ride), [("b".to_owned(), 1)]);
    assert_eq!(ride["releases"][0]["driver_id"], "a");
    assert_eq!(ride["releases"][0]["reason"], "flat tyre");
    assert_eq!(ride["times"]["round_deadline_ms"], T0 + 75 * S);
    assert_eq!(
        w.events_since(n),
        [events::RIDE_RELEASED, events::RIDE_OFFERED]
    );
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["status"],
        "available"
    );
    let m = w.conflict("accept-ride", ride_and_driver("ride-00000001", "a"));
    assert!(m.contains("not offered"), "{m}");
    w.ok("accept-ride", ride_and_driver("ride-00000001", "b"));
    w.check_invariants();
}

// ---- timeouts: reads and tick ------------------------------------------------------------

#[test]
fn reading_a_ride_applies_its_due_round() {
    let mut w = world();
    w.driver("c", 3000.0);
    w.press("tower-a");
    w.now = T0 + 45 * S - 1;
    assert_eq!(w.ride("ride-00000001")["round"], 1);
    w.now = T0 + 45 * S;
    let n = w.store.events.len();
    let ride = w.ride("ride-00000001");
    assert_eq!(
        (ride["round"].clone(), ride["radius_m"].clone()),
        (json!(2), json!(4000))
    );
    assert_eq!(offered(&ride).last(), Some(&("c".to_owned(), 2)));
    assert_eq!(ride["times"]["round_deadline_ms"], T0 + 90 * S);
    assert_eq!(w.events_since(n), [events::RIDE_OFFERED]);
    // Reading again changes nothing.
    assert_eq!(w.ride("ride-00000001"), ride);
    assert_eq!(w.events_since(n).len(), 1);
    // The drivers' offers follow: c now sees it.
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "c"}))["offers"][0]["round"],
        2
    );
    w.check_invariants();
}

#[test]
fn an_accept_at_the_deadline_sees_the_new_round_first() {
    let mut w = world();
    w.driver("c", 3000.0);
    w.press("tower-a");
    w.now = T0 + 45 * S;
    // c was not offered the ride in round 1, but round 2 (applied first) offers it.
    let ride = w.ok("accept-ride", ride_and_driver("ride-00000001", "c"));
    assert_eq!(ride["state"], "accepted");
    assert_eq!(ride["round"], 2);
    let kinds = event_kinds(&w.store);
    assert_eq!(
        &kinds[kinds.len() - 2..],
        [events::RIDE_OFFERED, events::RIDE_ACCEPTED]
    );
    w.check_invariants();
}

/// Reviewer's finding: an accept by a driver already offered the ride, arriving after the
/// round's deadline but before `tick`, first started the next round (offering the ride to
/// new drivers) and then succeeded in the same call.
#[test]
fn an_offered_drivers_late_accept_wins_before_the_next_round_starts() {
    let mut w = world();
    let ride = w.press("tower-a");
    assert_eq!(offered(&ride), [("a".into(), 1), ("b".into(), 1)]);
    w.now = T0 + 45 * S + 3 * S;
    let n = w.store.events.len();
    let ride = w.ok("accept-ride", ride_and_driver("ride-00000001", "a"));
    assert_eq!(ride["state"], "accepted");
    assert_eq!(ride["round"], 1);
    assert_eq!(offered(&ride), [("a".into(), 1), ("b".into(), 1)]);
    assert_eq!(w.events_since(n), [events::RIDE_ACCEPTED]);
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "far"}))["offers"],
        json!([])
    );
    assert!(keys(&w.store, "due/").is_empty());
    w.check_invariants();
}

/// The same after the last round: an offered driver's accept that arrives before the
/// escalation was noticed takes the ride instead of escalating it.
#[test]
fn an_offered_drivers_accept_after_the_last_deadline_wins_over_the_escalation() {
    let mut w = tower_a(Config {
        max_rounds: 1,
        ..Config::default()
    });
    w.driver("a", 500.0);
    w.press("tower-a");
    w.now = T0 + 50 * S;
    let n = w.store.events.len();
    let ride = w.ok("accept-ride", ride_and_driver("ride-00000001", "a"));
    assert_eq!(ride["state"], "accepted");
    assert_eq!(w.events_since(n), [events::RIDE_ACCEPTED]);
    w.check_invariants();
}

#[test]
fn rounds_widen_then_escalate_with_controlled_time() {
    // 1000 m, x3, 2 drivers per round, 30 s, 3 rounds.
    let mut w = tower_a(Config {
        initial_radius_m: 1000,
        radius_growth: 3.0,
        drivers_per_round: 2,
        offer_timeout_s: 30,
        ..Config::default()
    });
    let drivers = [
        ("a", 300.0),
        ("b", 600.0),
        ("c", 900.0),
        ("d", 2500.0),
        ("e", 8900.0),
    ];
    for (id, m) in drivers {
        w.driver(id, m);
    }
    let ride = w.press("tower-a");
    assert_eq!(offered(&ride), [("a".into(), 1), ("b".into(), 1)]);
    assert_eq!(ride["radius_m"], 1000);

    // Round 2 at 30 s: 3000 m, the next two nearest (c, d).
    w.now = T0 + 30 * S;
    let ride = w.ride("ride-00000001");
    assert_eq!(ride["radius_m"], 3000);
    assert_eq!(offered(&ride)[2..], [("c".into(), 2), ("d".into(), 2)]);

    // Round 3 at 60 s: 9000 m, e. Everyone re-reports to stay fresh.
    w.now = T0 + 60 * S;
    for (id, m) in drivers {
        w.driver(id, m);
    }
    let ride = w.ride("ride-00000001");
    assert_eq!(ride["radius_m"], 9000);
    assert_eq!(offered(&ride)[4..], [("e".into(), 3)]);

    // A round-1 driver may still take it in round 3.
    let mut late = World {
        store: w.store.clone(),
        config: w.config.clone(),
        now: T0 + 89 * S,
    };
    late.ok("accept-ride", ride_and_driver("ride-00000001", "a"));

    // Nobody does: escalated at 90 s.
    w.now = T0 + 90 * S - 1;
    assert_eq!(w.ride("ride-00000001")["state"], "offering");
    w.now = T0 + 90 * S;
    let n = w.store.events.len();
    let ride = w.ride("ride-00000001");
    assert_eq!(ride["state"], "escalated");
    assert_eq!(
        ride["escalation_reason"],
        "no driver accepted within 3 round(s) of 30 s (5 driver(s) offered, up to 9000 m)"
    );
    assert_eq!(w.events_since(n), [events::RIDE_ESCALATED]);
    let payload = &w.store.events[n].1;
    assert_eq!(payload["rounds"], 3);
    assert_eq!(payload["drivers_offered"], 5);
    assert_eq!(payload["at_ms"], T0 + 90 * S);
    let m = w.conflict("accept-ride", ride_and_driver("ride-00000001", "a"));
    assert!(m.contains("escalated to staff"), "{m}");
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["offers"],
        json!([])
    );
    w.check_invariants();
}

#[test]
fn staff_reoffer_an_escalated_ride() {
    let mut w = tower_a(Config::default());
    w.press("tower-a");
    // Escalated at once (nobody around); a re-offer with nobody around stays escalated.
    w.now += 30 * S;
    let ride = w.ok("reoffer-ride", json!({"ride_id": "ride-00000001"}));
    assert_eq!(ride["state"], "escalated");
    assert_eq!(ride["times"]["escalated_ms"], T0 + 30 * S);
    // A driver shows up; staff re-offer.
    w.now += 30 * S;
    w.driver("a", 400.0);
    let ride = w.ok("reoffer-ride", json!({"ride_id": "ride-00000001"}));
    assert_eq!(ride["state"], "offering");
    assert_eq!(ride["escalation_reason"], Value::Null);
    assert_eq!(offered(&ride), [("a".into(), 1)]);
    let m = w.conflict("reoffer-ride", json!({"ride_id": "ride-00000001"}));
    assert_eq!(
        m,
        "ride ride-00000001 is offering; only an escalated ride can be re-offered"
    );
    w.ok("accept-ride", ride_and_driver("ride-00000001", "a"));
    w.check_invariants();
}

#[test]
fn tick_advances_due_rides_soonest_first_in_slices() {
    let mut w = screen_with_max_open(20);
    // Five rides, one per second: deadlines at 45..49 s.
    for i in 0..5 {
        w.now = T0 + i * S;
        w.press("tower-a");
    }
    w.now = T0 + 44 * S;
    let out = w.ok("tick", json!({}));
    assert_eq!(
        out,
        json!({"due_handled": 0, "reoffered": 0, "escalated": 0, "more": false, "next_due_ms": T0 + 45 * S, "replays_purged": 0, "drivers_removed": 0})
    );

    // At 47 s three are due; a tick of two handles the two soonest and says there is more.
    w.now = T0 + 47 * S;
    let n = w.store.events.len();
    let out = w.ok("tick", json!({"limit": 2}));
    assert_eq!(out["due_handled"], 2);
    assert_eq!(out["escalated"], 2, "nobody new in rounds 2 and 3");
    assert_eq!(out["more"], true);
    assert_eq!(out["next_due_ms"], T0 + 47 * S);
    assert_eq!(
        w.events_since(n),
        [events::RIDE_ESCALATED, events::RIDE_ESCALATED]
    );
    assert_eq!(w.store.events[n].1["ride_id"], "ride-00000001");
    assert_eq!(w.store.events[n + 1].1["ride_id"], "ride-00000002");

    let out = w.ok("tick", json!({"limit": 2}));
    assert_eq!(
        (out["due_handled"].clone(), out["more"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(out["next_due_ms"], T0 + 48 * S);

    // A new driver far out appears: the next due ride is offered to it in a wider round.
    w.now = T0 + 48 * S;
    w.driver("b", 3500.0);
    let out = w.ok("tick", json!({}));
    assert_eq!(
        (
            out["due_handled"].clone(),
            out["reoffered"].clone(),
            out["escalated"].clone()
        ),
        (json!(1), json!(1), json!(0))
    );
    let ride = w.ride("ride-00000004");
    assert_eq!(ride["round"], 2);
    assert_eq!(offered(&ride)[1], ("b".into(), 2));
    // Ride 5 (due at 49 s) was offered to b in round 2 too, when it is due.
    w.now = T0 + 49 * S;
    let out = w.ok("tick", json!({}));
    assert_eq!(out["reoffered"], 1);
    assert_eq!(out["next_due_ms"], T0 + 93 * S);
    w.check_invariants();
}

#[test]
fn tick_drops_index_entries_of_vanished_rides() {
    let mut w = world();
    w.store
        .put("due/000000000000001/ride-00000099", &json!("ride-00000099"))
        .expect("put");
    let out = w.ok("tick", json!({}));
    assert_eq!(out["due_handled"], 1);
    assert!(keys(&w.store, "due/").is_empty());
}

#[test]
fn tick_purges_old_replay_records() {
    let mut w = world();
    w.call_with(
        Some("k1"),
        "report-driver",
        json!({"driver_id": "a", "lat": LAT, "lon": LON, "available": true}),
    )
    .expect("report");
    w.now += 48 * 3_600 * S + 1;
    let out = w.ok("tick", json!({}));
    assert_eq!(out["replays_purged"], 1);
    assert!(keys(&w.store, "idem/").is_empty());
}

/// Reviewer's finding: drivers were never removed, and every offer round loads them all.
/// `tick` removes those not heard from for `driver_retention_h` (default 7 days), unless
/// a ride holds them.
#[test]
fn tick_removes_drivers_not_heard_from_for_a_week() {
    let mut w = accepted_by_a();
    let week = 7 * 24 * 3_600 * S;
    w.now = T0 + week;
    w.driver("fresh", 300.0);
    assert_eq!(w.ok("tick", json!({}))["drivers_removed"], 0);
    // Exactly at the age a driver is kept.
    assert_eq!(keys(&w.store, "driver/").len(), 4);
    w.now += 1;
    assert_eq!(w.ok("tick", json!({}))["drivers_removed"], 2);
    assert_eq!(keys(&w.store, "driver/"), ["driver/a", "driver/fresh"]);
    let m = w.not_found("get-driver", json!({"driver_id": "b"}));
    assert!(m.contains("report-driver"), "{m}");
    // a is busy with ride 1 and kept; reporting again brings b back.
    assert_eq!(
        w.ok("get-driver", json!({"driver_id": "a"}))["status"],
        "busy"
    );
    w.driver("b", 900.0);
    assert_eq!(keys(&w.store, "driver/").len(), 3);
    w.check_invariants();
}

#[test]
fn idle_drivers_are_removed_a_slice_at_a_time_and_never_while_offered() {
    let mut w = tower_a(Config {
        driver_retention_h: 1,
        ..Config::default()
    });
    for i in 0..(DRIVER_SWEEP_BUDGET + 5) {
        w.driver(&format!("d{i:04}"), 100.0);
    }
    w.now += 3_600 * S + 1;
    let out = w.ok("tick", json!({}));
    assert_eq!(out["drivers_removed"], DRIVER_SWEEP_BUDGET);
    assert!(w.store.data.contains_key(keys::DRIVER_SWEEP_CURSOR));
    assert_eq!(w.ok("tick", json!({}))["drivers_removed"], 5);
    assert!(!w.store.data.contains_key(keys::DRIVER_SWEEP_CURSOR));
    assert!(keys(&w.store, "driver/").is_empty());

    // A driver with an open offer is kept, however long it has been silent.
    w.driver("a", 100.0);
    w.press("tower-a");
    w.now += 3_600 * S + 1;
    let config = w.config.clone();
    let mut db = Db::new(&mut w.store, &config, w.now);
    assert_eq!(
        db.remove_idle_drivers(config.driver_retention_ms(), 10),
        Ok(0)
    );
    assert_eq!(keys(&w.store, "driver/"), ["driver/a"]);
}

// ---- listings ----------------------------------------------------------------------------

#[test]
fn rides_are_listed_newest_first_or_by_state_oldest_first() {
    let mut w = screen_with_max_open(10);
    w.screen("tower-b", LAT, LON);
    w.driver("b", 200.0);
    for screen in ["tower-a", "tower-b", "tower-a", "tower-a"] {
        w.press(screen);
    }
    w.ok("accept-ride", ride_and_driver("ride-00000002", "a"));
    w.ok(
        "cancel-ride",
        json!({"ride_id": "ride-00000003", "by": "staff"}),
    );

    let page = w.ok("list-rides", json!({"limit": 3}));
    assert_eq!(
        ids(&page["rides"]),
        ["ride-00000004", "ride-00000003", "ride-00000002"]
    );
    assert_eq!(page["next"], "ride-00000002");
    let page = w.ok("list-rides", json!({"after": "ride-00000002", "limit": 3}));
    assert_eq!(ids(&page["rides"]), ["ride-00000001"]);
    assert_eq!(page["next"], Value::Null);

    let page = w.ok("list-rides", json!({"state": "offering"}));
    assert_eq!(ids(&page["rides"]), ["ride-00000001", "ride-00000004"]);
    let page = w.ok("list-rides", json!({"state": "offering", "limit": 1}));
    assert_eq!(page["next"], "ride-00000001");
    let page = w.ok(
        "list-rides",
        json!({"state": "offering", "after": "ride-00000001"}),
    );
    assert_eq!(ids(&page["rides"]), ["ride-00000004"]);
    let page = w.ok("list-rides", json!({"state": "accepted"}));
    assert_eq!(ids(&page["rides"]), ["ride-00000002"]);

    let m = w.invalid("list-rides", json!({"after": "r2"}));
    assert!(m.contains("not a ride id"), "{m}");
    let m = w.invalid("list-rides", json!({"state": "cancelled"}));
    assert!(m.contains("final state cancelled"), "{m}");

    let history = w.ok(
        "screen-history",
        json!({"screen_id": "tower-a", "limit": 2}),
    );
    assert_eq!(history["screen_id"], "tower-a");
    assert_eq!(ids(&history["rides"]), ["ride-00000004", "ride-00000003"]);
    assert_eq!(history["next"], "ride-00000003");
    let history = w.ok(
        "screen-history",
        json!({"screen_id": "tower-a", "after": "ride-00000003", "limit": 2}),
    );
    assert_eq!(ids(&history["rides"]), ["ride-00000001"]);
    assert_eq!(history["next"], Value::Null);
    let history = w.ok("screen-history", json!({"screen_id": "tower-b"}));
    assert_eq!(ids(&history["rides"]), ["ride-00000002"]);
    w.not_found("screen-history", json!({"screen_id": "ghost"}));
    w.check_invariants();
}

#[test]
fn listing_brings_rides_up_to_date() {
    let mut w = tower_a(Config::default());
    w.driver("a", 500.0);
    w.press("tower-a");
    w.now = T0 + 45 * S;
    // Listed as offering, found due: escalated while listed (nobody new around).
    let page = w.ok("list-rides", json!({"state": "offering"}));
    assert_eq!(page["rides"][0]["state"], "escalated");
    assert_eq!(
        w.ok("list-rides", json!({"state": "offering"}))["rides"],
        json!([])
    );
    w.check_invariants();
}

// ---- idempotency -------------------------------------------------------------------------

#[test]
fn a_replayed_press_creates_one_ride_and_emits_once() {
    let mut w = world();
    let first = w.press_with_key("press-1", "tower-a").expect("first");
    let n = w.store.events.len();
    w.now += 2 * S;
    let again = w.press_with_key("press-1", "tower-a").expect("again");
    assert_eq!(first, again);
    assert_eq!(w.store.events.len(), n);
    assert_eq!(keys(&w.store, "ride/").len(), 1);
    let m = match w.call_with(
        Some("press-1"),
        "request-ride",
        json!({"pickup": {"lat": LAT, "lon": LON, "description": "x"}}),
    ) {
        Err(Error::Conflict(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(m.contains("different request-ride request"), "{m}");
    // A different key is a new press: refused while the first is open.
    assert!(matches!(
        w.press_with_key("press-2", "tower-a"),
        Err(Error::Conflict(_))
    ));
    w.check_invariants();
}

#[test]
fn a_replayed_accept_returns_the_first_answer() {
    let mut w = world();
    w.press("tower-a");
    let input = ride_and_driver("ride-00000001", "a");
    let first = w
        .call_with(Some("acc-a"), "accept-ride", input.clone())
        .expect("accept");
    w.ok("pick-up", ride_and_driver("ride-00000001", "a"));
    // The app retries the accept after the pick-up: the recorded answer, nothing changes.
    let again = w
        .call_with(Some("acc-a"), "accept-ride", input)
        .expect("replay");
    assert_eq!(again, first);
    assert_eq!(w.ride("ride-00000001")["state"], "picked_up");
}

#[test]
fn a_replayed_position_report_does_not_move_the_driver_back() {
    let mut w = world();
    let old = json!({"driver_id": "a", "lat": LAT, "lon": LON, "available": true});
    w.call_with(Some("pos-1"), "report-driver", old.clone())
        .expect("first");
    w.now += 10 * S;
    w.driver("a", 700.0);
    w.call_with(Some("pos-1"), "report-driver", old)
        .expect("replay");
    let a = w.ok("get-driver", json!({"driver_id": "a"}));
    assert_eq!(a["reported_at_ms"], T0 + 10 * S);
    assert_ne!(a["lat"], json!(LAT));
}

#[test]
fn refusals_leave_no_replay_record_so_a_retry_can_succeed() {
    let mut w = world();
    let input = ride_and_driver("ride-00000001", "a");
    assert!(
        w.call_with(Some("k"), "accept-ride", input.clone())
            .is_err()
    );
    w.press("tower-a");
    assert!(w.call_with(Some("k"), "accept-ride", input).is_ok());
}

// ---- the worked example of the docs ------------------------------------------------------

/// Runs the worked example of the docs with "now" from `start_ms`, one community per
/// [`World`] (fresh, default config), and answers what it did: each step's operation,
/// input and output, then every event.
fn run_worked_example(start_ms: i64) -> Vec<Value> {
    let doc = include_str!("../../../../docs/plugins/taxi-dispatch.md");
    let steps = doc_steps(doc);
    assert!((8..=25).contains(&steps.len()), "{} steps", steps.len());
    for step in &steps {
        assert_eq!(step.plugin, "taxi-dispatch", "line {}", step.line);
    }
    // Every step is a JSON call of the /v1 API.
    assert_eq!(
        doc.matches("localhost:8080/v1/communities/").count(),
        steps.len()
    );
    assert_eq!(
        doc.matches("-H 'Content-Type: application/json'").count(),
        steps.len()
    );
    // Refused by the input schema before the plugin runs: checked by the schema check of
    // the manifest (see the report), not here.
    let mut refusals = steps.iter().filter(|s| s.refused_by_schema()).count();
    let mut communities: BTreeMap<String, World> = BTreeMap::new();
    let mut outputs: BTreeMap<String, Value> = BTreeMap::new();
    let ran = run_doc_example(doc, start_ms, |ctx, input| {
        let world = communities
            .entry(ctx.community.clone())
            .or_insert_with(World::new);
        world.now = ctx.now_ms;
        let result = world.call_with(ctx.idempotency_key.as_deref(), &ctx.operation, input);
        let output = match &result {
            Ok(v) => v.clone(),
            Err(e) => {
                refusals += 1;
                error_body(e)
            }
        };
        outputs.insert(ctx.request_id.clone(), output);
        result
    });
    assert_eq!(ran, outputs.len());
    assert!(refusals >= 2, "the example shows at least two refusals");
    let mut dump: Vec<Value> = steps
        .iter()
        .map(|step| match outputs.get(&format!("doc-{}", step.line)) {
            Some(output) => {
                json!({"operation": step.operation, "input": step.input, "output": output})
            }
            None => {
                json!({"operation": step.operation, "input": step.input, "schema_refusal": true})
            }
        })
        .collect();
    for world in communities.values() {
        world.check_invariants();
        for (kind, payload) in &world.store.events {
            dump.push(json!({"event": kind, "payload": payload}));
        }
    }
    dump
}

#[test]
fn the_worked_example_of_the_docs_runs_as_documented_in_2026() {
    run_worked_example(1_780_308_000_000); // 2026-06-01
}

#[test]
fn the_worked_example_of_the_docs_runs_as_documented_in_2035() {
    let dump = run_worked_example(2_081_376_000_000); // 2035-12-15
    if let Ok(path) = std::env::var("TAXI_DISPATCH_DUMP") {
        std::fs::write(path, serde_json::to_string_pretty(&dump).expect("json")).expect("dump");
    }
}

#[test]
fn the_example_matcher_is_strict_about_keys_and_order() {
    assert_eq!(difference(&json!({"a": "<any>"}), &json!({"a": [1]})), None);
    assert!(difference(&json!({"a": 1}), &json!({"a": 1, "b": 2})).is_some());
    assert!(difference(&json!([1, 2]), &json!([2, 1])).is_some());
    assert_eq!(difference(&json!(2000), &json!(2000)), None);
}
