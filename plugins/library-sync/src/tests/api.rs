//! The operation table against the manifest, idempotent replays through the dispatcher,
//! and the events against the manifest's declarations.

use super::*;
use std::collections::BTreeSet;

fn manifest() -> Value {
    serde_json::from_str(include_str!("../../manifest.json")).expect("manifest.json is JSON")
}

#[test]
fn the_manifest_declares_exactly_the_operations_served() {
    let manifest = manifest();
    let declared: BTreeSet<&str> = manifest["operations"]
        .as_object()
        .expect("operations")
        .keys()
        .map(String::as_str)
        .collect();
    let served: BTreeSet<&str> = crate::api::OPERATIONS.iter().copied().collect();
    assert_eq!(declared, served);
    let mut w = World::new();
    for op in crate::api::OPERATIONS {
        if let Err(Error::NotFound(m)) = w.op(op, json!({}))
            && m.contains("has no operation")
        {
            panic!("{op} is not dispatched");
        }
    }
    let err = w.refused("lend", json!({}));
    assert_not_found(&err, &["no operation \"lend\""]);
}

#[test]
fn input_schemas_close_their_objects_like_the_rust_inputs() {
    // Every input schema refuses unknown fields, as the Rust inputs do.
    let manifest = manifest();
    for (op, decl) in manifest["operations"].as_object().expect("operations") {
        assert_eq!(decl["input"]["additionalProperties"], json!(false), "{op}");
        let mut w = World::new();
        let err = w.refused(op, json!({"unexpected": 1}));
        assert!(matches!(err, Error::InvalidInput(_)), "{op}: {err:?}");
    }
}

#[test]
fn every_emitted_event_kind_is_declared() {
    let manifest = manifest();
    let declared: BTreeSet<String> = manifest["events"]
        .as_object()
        .expect("events")
        .keys()
        .cloned()
        .collect();
    let mut w = World::new();
    w.catalogue(&["B-1", "B-2"]);
    w.place("B-1", 1);
    w.place("B-2", 2);
    w.register("RC-A");
    w.borrow("B-1", "RC-A");
    w.borrow("B-2", "RC-A");
    w.ok("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    w.library_says("B-2", "withdrawn");
    w.ok("return", json!({"copy_id": "B-1", "slot": 1}));
    w.advance_days(40);
    w.ok("sweep-overdue", json!({}));
    let emitted: BTreeSet<String> = w.kinds().into_iter().collect();
    assert_eq!(emitted, declared);
    for (kind, payload) in &w.store.events {
        let props = manifest["events"][kind]["payload"]["properties"]
            .as_object()
            .expect("payload properties");
        let keys: BTreeSet<&String> = payload.as_object().expect("object").keys().collect();
        let declared: BTreeSet<&String> = props.keys().collect();
        assert_eq!(keys, declared, "{kind}");
    }
}

#[test]
fn a_replayed_idempotency_key_returns_the_first_answer_and_changes_nothing() {
    let mut w = World::new();
    w.catalogue(&["B-1"]);
    w.place("B-1", 1);
    w.register("RC-A");
    let body = json!({"copy_id": "B-1", "card": "RC-A"});
    let first = w
        .op_keyed("borrow", Some("scan-1"), body.clone())
        .expect("borrow");
    let before = w.store.clone();
    w.advance_days(1);
    let again = w
        .op_keyed("borrow", Some("scan-1"), body.clone())
        .expect("replay");
    assert_eq!(again, first);
    assert_eq!(w.store, before, "the replay wrote and emitted nothing");
    // Without the key, the same scan is refused: the copy is out.
    let err = w.refused("borrow", body);
    assert_conflict(&err, &["already on loan to this card"]);
    // The key reused for another request is refused.
    let err = w
        .op_keyed(
            "borrow",
            Some("scan-1"),
            json!({"copy_id": "B-1", "card": "RC-B"}),
        )
        .expect_err("reused key");
    assert_conflict(
        &err,
        &["Idempotency-Key \"scan-1\"", "different borrow request"],
    );
}

#[test]
fn a_refused_call_can_be_retried_with_the_same_key() {
    let mut w = World::new();
    w.catalogue(&["B-1"]);
    w.register("RC-A");
    let body = json!({"copy_id": "B-1", "card": "RC-A"});
    assert!(w.op_keyed("borrow", Some("k"), body.clone()).is_err());
    w.place("B-1", 1);
    assert!(w.op_keyed("borrow", Some("k"), body).is_ok());
}

#[test]
fn every_changing_operation_replays() {
    let mut w = World::new();
    let calls = [
        (
            "sync",
            json!({"cursor": null, "changes": [{"copy_id": "B-1", "revision": 1, "status": "active", "title": "T"}], "next_cursor": "c1"}),
        ),
        ("register-card", json!({"card": "RC-A"})),
        ("place", json!({"copy_id": "B-1", "slot": 1})),
        ("borrow", json!({"copy_id": "B-1", "card": "RC-A"})),
        ("renew", json!({"copy_id": "B-1", "card": "RC-A"})),
        ("return", json!({"copy_id": "B-1", "slot": 2})),
        ("remove", json!({"copy_id": "B-1"})),
        ("deactivate-card", json!({"card": "RC-A"})),
        ("sweep-overdue", json!({})),
        ("reset-sync", json!({})),
    ];
    for (i, (op, body)) in calls.iter().enumerate() {
        let key = format!("k{i}");
        let first = w
            .op_keyed(op, Some(&key), body.clone())
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        let before = w.store.clone();
        let again = w.op_keyed(op, Some(&key), body.clone()).expect("replay");
        assert_eq!(again, first, "{op}");
        assert_eq!(w.store, before, "{op} replay changed state");
    }
}

/// Reviewer's finding: replay records were never purged. The sweep forgets those older
/// than `replay_retention_days` (default 7).
#[test]
fn the_overdue_sweep_purges_replay_records_older_than_the_retention() {
    let mut w = World::new();
    w.op_keyed("register-card", Some("old"), json!({"card": "RC-A"}))
        .expect("old");
    w.advance_days(6);
    w.op_keyed("register-card", Some("recent"), json!({"card": "RC-B"}))
        .expect("recent");
    w.now = T0 + 7 * DAY_MS;
    assert_eq!(w.ok("sweep-overdue", json!({}))["replays_purged"], json!(0));
    // Exactly at the retention age a record is kept.
    assert!(w.store.data.contains_key("idem/register-card/old"));
    w.now += 1;
    assert_eq!(w.ok("sweep-overdue", json!({}))["replays_purged"], json!(1));
    assert!(!w.store.data.contains_key("idem/register-card/old"));
    assert!(w.store.data.contains_key("idem/register-card/recent"));
    // The key is forgotten: reusing it runs the request again.
    let err = w
        .op_keyed("register-card", Some("old"), json!({"card": "RC-A"}))
        .expect_err("runs again");
    assert_conflict(&err, &["already registered"]);
}

#[test]
fn the_replay_retention_is_configurable() {
    let mut w = World::with_config(Config {
        replay_retention_days: 1,
        ..Config::default()
    });
    w.op_keyed("register-card", Some("k"), json!({"card": "RC-A"}))
        .expect("register");
    w.now = T0 + DAY_MS + 1;
    assert_eq!(w.ok("sweep-overdue", json!({}))["replays_purged"], json!(1));
    assert!(!w.store.data.contains_key("idem/register-card/k"));
}
