//! The shelf listing and the kiosk's view of a copy.

use super::*;

#[test]
fn list_shelf_pages_in_slot_order() {
    let mut w = World::new();
    w.catalogue(&["B-1", "B-2", "B-3"]);
    w.place("B-1", 12);
    w.place("B-2", 1);
    w.place("B-3", 5);
    w.library_says("B-3", "withdrawn");
    let page = w.ok("list-shelf", json!({"limit": 2}));
    assert_eq!(
        page,
        json!({"items": [
            {"slot": 1, "copy_id": "B-2", "title": "Title B-2", "author": null, "library_status": "active", "borrowable": true},
            {"slot": 5, "copy_id": "B-3", "title": "Title B-3", "author": null, "library_status": "withdrawn", "borrowable": false}
        ], "next": 5})
    );
    let rest = w.ok("list-shelf", json!({"limit": 2, "after": 5}));
    assert_eq!(rest["items"][0]["slot"], json!(12));
    assert_eq!(rest["next"], Value::Null);
    assert_eq!(
        w.ok("list-shelf", json!({}))["items"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(
        w.ok("list-shelf", json!({"after": 12})),
        json!({"items": [], "next": null})
    );
}

#[test]
fn an_empty_shelf_lists_nothing() {
    let mut w = World::new();
    assert_eq!(
        w.ok("list-shelf", json!({})),
        json!({"items": [], "next": null})
    );
}

#[test]
fn get_copy_shows_the_record_and_the_whereabouts() {
    let mut w = World::new();
    w.sync(json!([
        {"copy_id": "B-1", "revision": 7, "status": "active", "title": "Camel Xiangzi", "author": "Lao She", "isbn": "9787020024759"},
        {"copy_id": "B-2", "revision": 1, "status": "elsewhere", "title": "Teahouse", "location": "Central branch"}
    ]));
    let not_held = w.ok("get-copy", json!({"copy_id": "B-1"}));
    assert_eq!(
        not_held,
        json!({"copy_id": "B-1", "title": "Camel Xiangzi", "author": "Lao She", "isbn": "9787020024759",
               "library_status": "active", "library_location": null, "revision": 7,
               "shelf": {"state": "not_held"}, "borrowable": false})
    );
    w.place("B-1", 4);
    let on_shelf = w.ok("get-copy", json!({"copy_id": "B-1"}));
    assert_eq!(on_shelf["shelf"], json!({"state": "on_shelf", "slot": 4}));
    assert_eq!(on_shelf["borrowable"], json!(true));
    w.register("RC-A");
    w.borrow("B-1", "RC-A");
    let on_loan = w.ok("get-copy", json!({"copy_id": "B-1"}));
    assert_eq!(
        on_loan["shelf"],
        json!({"state": "on_loan", "loan_id": "L00000001", "due_ms": T0 + 30 * DAY_MS})
    );
    assert_eq!(on_loan["borrowable"], json!(false));
    // The shelf is the truth for what is on it: a copy the library places elsewhere can
    // still be placed and borrowed.
    let elsewhere = w.ok("get-copy", json!({"copy_id": "B-2"}));
    assert_eq!(elsewhere["library_location"], json!("Central branch"));
    let placed = w.ok("place", json!({"copy_id": "B-2", "slot": 5}));
    assert_eq!(placed["library_status"], json!("elsewhere"));
    assert_eq!(placed["borrowable"], json!(true));
    w.borrow("B-2", "RC-A");
    w.check_invariants();
}

#[test]
fn remove_answers_the_freed_slot_and_the_slot_can_be_reused() {
    let mut w = World::new();
    w.catalogue(&["B-1", "B-2"]);
    w.place("B-1", 3);
    let out = w.ok("remove", json!({"copy_id": "B-1"}));
    assert_eq!(
        out,
        json!({"copy_id": "B-1", "title": "Title B-1", "slot": 3, "library_status": "active"})
    );
    assert_eq!(w.held("B-1"), None);
    w.place("B-2", 3);
    w.check_invariants();
}

#[test]
fn the_slot_count_comes_from_the_config() {
    let mut w = World::with_config(Config {
        slot_count: 4,
        ..Config::default()
    });
    w.catalogue(&["B-1"]);
    let err = w.refused("place", json!({"copy_id": "B-1", "slot": 5}));
    assert_invalid(&err, &["slot 5 does not exist", "slots 1 to 4"]);
    w.place("B-1", 4);
}
