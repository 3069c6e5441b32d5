//! Loan rules: cards, limits, overdue blocking, renewals, late returns, the overdue
//! listing and the sweep.

use super::*;
use crate::loans::done_key;
use crate::store::save;

fn shelf_with(copies: &[&str], config: Config) -> World {
    let mut w = World::with_config(config);
    w.catalogue(copies);
    for (i, copy) in copies.iter().enumerate() {
        w.place(copy, u32::try_from(i).expect("small") + 1);
    }
    w.register("RC-A");
    w.register("RC-B");
    w.store.events.clear();
    w
}

#[test]
fn an_unknown_card_is_not_found_before_anything_else() {
    let mut w = shelf_with(&["B-1"], Config::default());
    for (op, body) in [
        ("borrow", json!({"copy_id": "NOPE", "card": "RC-Z"})),
        ("borrow", json!({"copy_id": "B-1", "card": "RC-Z"})),
        ("renew", json!({"copy_id": "B-1", "card": "RC-Z"})),
        ("get-card", json!({"card": "RC-Z"})),
    ] {
        let err = w.refused(op, body);
        assert_not_found(&err, &["card \"RC-Z\" is not registered", "register-card"]);
    }
}

#[test]
fn a_deactivated_card_cannot_borrow_or_renew_but_can_return() {
    let mut w = shelf_with(&["B-1", "B-2"], Config::default());
    w.borrow("B-1", "RC-A");
    let off = w.ok("deactivate-card", json!({"card": "RC-A"}));
    assert_eq!(off["active"], json!(false));
    assert_eq!(
        off["loans"][0]["copy_id"],
        json!("B-1"),
        "open loans are listed"
    );
    for (op, body) in [
        ("borrow", json!({"copy_id": "B-2", "card": "RC-A"})),
        ("renew", json!({"copy_id": "B-1", "card": "RC-A"})),
    ] {
        let err = w.refused(op, body);
        assert_conflict(
            &err,
            &["card \"RC-A\" was deactivated", "register it again"],
        );
    }
    w.ok("return", json!({"copy_id": "B-1", "slot": 1}));
    assert!(w.card("RC-A").loans.is_empty());
    // Registered again, it borrows again.
    w.register("RC-A");
    w.borrow("B-2", "RC-A");
    w.check_invariants();
}

#[test]
fn the_loan_limit_is_per_card_and_frees_up_on_return() {
    let config = Config {
        max_loans: 2,
        ..Config::default()
    };
    let mut w = shelf_with(&["B-1", "B-2", "B-3"], config);
    w.borrow("B-1", "RC-A");
    w.borrow("B-2", "RC-A");
    let err = w.refused("borrow", json!({"copy_id": "B-3", "card": "RC-A"}));
    assert_conflict(
        &err,
        &[
            "card \"RC-A\" already has 2 books on loan",
            "max_loans = 2",
            "return one first",
        ],
    );
    // Another card is not affected.
    w.borrow("B-3", "RC-B");
    w.ok("return", json!({"copy_id": "B-3", "slot": 3}));
    w.ok("return", json!({"copy_id": "B-1", "slot": 1}));
    w.borrow("B-3", "RC-A");
    assert_eq!(w.card("RC-A").loans.len(), 2);
    w.check_invariants();
}

#[test]
fn an_overdue_book_blocks_new_loans_when_configured() {
    let mut w = shelf_with(&["B-1", "B-2"], Config::default());
    w.borrow("B-1", "RC-A");
    w.advance_days(30);
    // Due exactly now: not overdue yet.
    w.borrow("B-2", "RC-A");
    w.ok("return", json!({"copy_id": "B-2", "slot": 2}));
    w.now += 1;
    let err = w.refused("borrow", json!({"copy_id": "B-2", "card": "RC-A"}));
    assert_conflict(
        &err,
        &[
            "card \"RC-A\" has an overdue book",
            "\"B-1\"",
            "due 2026-07-01 00:00 UTC",
            "return it",
        ],
    );
    // Other cards are not blocked.
    w.borrow("B-2", "RC-B");

    let mut lenient = shelf_with(
        &["B-1", "B-2"],
        Config {
            block_when_overdue: false,
            ..Config::default()
        },
    );
    lenient.borrow("B-1", "RC-A");
    lenient.advance_days(40);
    lenient.borrow("B-2", "RC-A");
}

#[test]
fn the_loan_period_comes_from_the_config() {
    let mut w = shelf_with(
        &["B-1"],
        Config {
            loan_days: 14,
            ..Config::default()
        },
    );
    let out = w.borrow("B-1", "RC-A");
    assert_eq!(out["loan"]["borrowed_ms"], json!(T0));
    assert_eq!(out["loan"]["due_ms"], json!(T0 + 14 * DAY_MS));
    assert_eq!(out["loan"]["renewals_left"], json!(2));
    let event = &w.store.events[0];
    assert_eq!(event.0, "library-sync.book-borrowed");
    assert_eq!(
        event.1,
        json!({"loan_id": "L00000001", "copy_id": "B-1", "title": "Title B-1", "card": "RC-A", "slot": 1, "due_ms": T0 + 14 * DAY_MS})
    );
}

#[test]
fn a_renewal_runs_loan_days_from_the_renewal_never_shortening_the_loan() {
    let mut w = shelf_with(&["B-1"], Config::default());
    w.borrow("B-1", "RC-A");
    // Renewing at once changes nothing but the count.
    let first = w.ok("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    assert_eq!(first["due_ms"], json!(T0 + 30 * DAY_MS));
    assert_eq!(
        (first["renewals"].clone(), first["renewals_left"].clone()),
        (json!(1), json!(1))
    );
    w.advance_days(20);
    let second = w.ok("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    assert_eq!(second["due_ms"], json!(T0 + 50 * DAY_MS));
    assert_eq!(second["renewals_left"], json!(0));
    let event = w.store.events.last().expect("event");
    assert_eq!(event.0, "library-sync.book-renewed");
    assert_eq!(event.1["renewals"], json!(2));
    assert_eq!(event.1["due_ms"], json!(T0 + 50 * DAY_MS));
    let err = w.refused("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    assert_conflict(
        &err,
        &[
            "L00000001",
            "already renewed 2 times",
            "max_renewals = 2",
            "return the book",
        ],
    );
}

#[test]
fn no_renewals_when_max_renewals_is_zero() {
    let mut w = shelf_with(
        &["B-1"],
        Config {
            max_renewals: 0,
            ..Config::default()
        },
    );
    assert_eq!(w.borrow("B-1", "RC-A")["loan"]["renewals_left"], json!(0));
    let err = w.refused("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    assert_conflict(&err, &["already renewed 0 times"]);
}

#[test]
fn an_overdue_loan_renews_only_within_the_grace_days() {
    // renew_overdue_days = 3 (default): 3 days late is fine, a millisecond more is not.
    let mut w = shelf_with(&["B-1", "B-2"], Config::default());
    w.borrow("B-1", "RC-A");
    w.borrow("B-2", "RC-A");
    w.now = T0 + 33 * DAY_MS;
    let renewed = w.ok("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    assert_eq!(renewed["due_ms"], json!(w.now + 30 * DAY_MS));
    assert_eq!(renewed["overdue"], json!(false));
    w.now += 1;
    let err = w.refused("renew", json!({"copy_id": "B-2", "card": "RC-A"}));
    assert_conflict(
        &err,
        &[
            "L00000002",
            "is 4 days overdue",
            "up to 3 days",
            "renew_overdue_days",
            "return the book",
        ],
    );

    // renew_overdue_days = 0: due exactly now is fine, a millisecond late is not.
    let mut strict = shelf_with(
        &["B-1"],
        Config {
            renew_overdue_days: 0,
            ..Config::default()
        },
    );
    strict.borrow("B-1", "RC-A");
    strict.now = T0 + 30 * DAY_MS + 1;
    let err = strict.refused("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    assert_conflict(&err, &["is 1 days overdue", "up to 0 days"]);
    strict.now -= 1;
    strict.ok("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
}

#[test]
fn a_late_return_counts_whole_days_rounded_up() {
    let mut w = shelf_with(&["B-1"], Config::default());
    w.borrow("B-1", "RC-A");
    w.now = T0 + 32 * DAY_MS + 1;
    let out = w.ok("return", json!({"copy_id": "B-1", "slot": 7}));
    assert_eq!(out["days_late"], json!(3));
    assert_eq!(out["slot"], json!(7));
    assert_eq!(
        out["loan"]["overdue"],
        json!(false),
        "a returned loan is no longer overdue"
    );
    assert_eq!(out["loan"]["renewals_left"], json!(0));
    let event = w.store.events.last().expect("event");
    assert_eq!(
        event.1,
        json!({"loan_id": "L00000001", "copy_id": "B-1", "title": "Title B-1", "card": "RC-A", "slot": 7, "days_late": 3, "withdrawn": false})
    );
    let done: Loan = load(&mut w.store, &done_key("L00000001"))
        .expect("load")
        .expect("done");
    assert_eq!(done.returned_slot, Some(7));
}

#[test]
fn return_and_place_check_the_slot() {
    let mut w = shelf_with(&["B-1", "B-2", "B-3"], Config::default());
    w.borrow("B-1", "RC-A");
    let err = w.refused("return", json!({"copy_id": "B-1", "slot": 2}));
    assert_conflict(&err, &["slot 2 already holds copy \"B-2\"", "empty slot"]);
    let err = w.refused("return", json!({"copy_id": "B-1", "slot": 121}));
    assert_invalid(&err, &["slot 121 does not exist", "1 to 120", "slot_count"]);
    w.ok("remove", json!({"copy_id": "B-3"}));
    let err = w.refused("place", json!({"copy_id": "B-3", "slot": 2}));
    assert_conflict(&err, &["slot 2 already holds copy \"B-2\""]);
    let err = w.refused("place", json!({"copy_id": "B-3", "slot": 121}));
    assert_invalid(&err, &["slot 121 does not exist"]);
    // The slot is checked before the copy.
    let err = w.refused("place", json!({"copy_id": "NOPE", "slot": 999}));
    assert_invalid(&err, &["slot 999"]);
}

#[test]
fn list_overdue_is_computed_from_now_and_pages() {
    let mut w = shelf_with(&["B-1", "B-2", "B-3"], Config::default());
    w.borrow("B-1", "RC-A");
    w.advance_days(10);
    w.borrow("B-2", "RC-B");
    w.borrow("B-3", "RC-A");
    let none = w.ok("list-overdue", json!({}));
    assert_eq!(none, json!({"loans": [], "next": null}));

    w.now = T0 + 35 * DAY_MS; // B-1 is 5 days late; B-2 and B-3 are due at T0 + 40 days.
    let one = w.ok("list-overdue", json!({}));
    assert_eq!(
        one,
        json!({"loans": [{"loan_id": "L00000001", "copy_id": "B-1", "title": "Title B-1", "card": "RC-A", "unit": "3-502", "due_ms": T0 + 30 * DAY_MS, "days_overdue": 5, "notices": 0}], "next": null})
    );
    let card = w.ok("get-card", json!({"card": "RC-A"}));
    assert_eq!(card["loans"][0]["overdue"], json!(true));
    assert_eq!(card["loans"][0]["days_overdue"], json!(5));
    assert_eq!(card["loans"][1]["overdue"], json!(false));

    w.now = T0 + 41 * DAY_MS;
    let page1 = w.ok("list-overdue", json!({"limit": 2}));
    let ids: Vec<&str> = page1["loans"]
        .as_array()
        .expect("loans")
        .iter()
        .map(|l| l["loan_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["L00000001", "L00000002"]);
    assert_eq!(page1["next"], json!("L00000002"));
    let page2 = w.ok("list-overdue", json!({"limit": 2, "after": "L00000002"}));
    assert_eq!(page2["loans"][0]["loan_id"], json!("L00000003"));
    assert_eq!(page2["next"], Value::Null);
    // Exactly at the last loan: nothing more, no `next`.
    let exact = w.ok("list-overdue", json!({"limit": 3}));
    assert_eq!(exact["next"], Value::Null);
}

#[test]
fn the_sweep_notifies_once_then_reminds() {
    let mut w = shelf_with(&["B-1", "B-2", "B-3"], Config::default());
    w.borrow("B-1", "RC-A");
    w.advance_days(10);
    w.borrow("B-2", "RC-B");
    w.borrow("B-3", "RC-A");
    w.store.events.clear();
    assert_eq!(
        w.ok("sweep-overdue", json!({})),
        json!({"notified": 0, "scanned": 3, "next": null, "replays_purged": 0})
    );
    assert!(w.store.events.is_empty());

    w.now = T0 + 31 * DAY_MS;
    assert_eq!(
        w.ok("sweep-overdue", json!({})),
        json!({"notified": 1, "scanned": 3, "next": null, "replays_purged": 0})
    );
    assert_eq!(
        w.store.events[0],
        (
            "library-sync.overdue".to_owned(),
            json!({"loan_id": "L00000001", "copy_id": "B-1", "title": "Title B-1", "card": "RC-A", "unit": "3-502", "due_ms": T0 + 30 * DAY_MS, "days_overdue": 1, "notices": 1})
        )
    );
    // The same day again: nothing new.
    w.now += DAY_MS / 2;
    assert_eq!(w.ok("sweep-overdue", json!({}))["notified"], json!(0));
    // A week after the notice: a reminder.
    w.now = T0 + 38 * DAY_MS;
    assert_eq!(w.ok("sweep-overdue", json!({}))["notified"], json!(1));
    assert_eq!(w.store.events[1].1["notices"], json!(2));
    assert_eq!(
        w.ok("list-overdue", json!({}))["loans"][0]["notices"],
        json!(2)
    );
    // Returned loans are not swept.
    w.ok("return", json!({"copy_id": "B-1", "slot": 1}));
    w.now = T0 + 60 * DAY_MS;
    assert_eq!(
        w.ok("sweep-overdue", json!({})),
        json!({"notified": 2, "scanned": 2, "next": null, "replays_purged": 0})
    );
}

#[test]
fn without_reminders_the_sweep_notifies_once_per_loan_and_a_renewal_rearms_it() {
    let mut w = shelf_with(
        &["B-1"],
        Config {
            overdue_reminder_days: 0,
            renew_overdue_days: 10,
            ..Config::default()
        },
    );
    w.borrow("B-1", "RC-A");
    w.now = T0 + 31 * DAY_MS;
    assert_eq!(w.ok("sweep-overdue", json!({}))["notified"], json!(1));
    // Eight days later (more than the default reminder interval): no reminder.
    w.now = T0 + 39 * DAY_MS;
    assert_eq!(w.ok("sweep-overdue", json!({}))["notified"], json!(0));
    // Renewed 10 days late (within renew_overdue_days) and late again: notified again.
    w.now = T0 + 40 * DAY_MS;
    let renewed = w.ok("renew", json!({"copy_id": "B-1", "card": "RC-A"}));
    assert_eq!(renewed["due_ms"], json!(T0 + 70 * DAY_MS));
    w.now = T0 + 69 * DAY_MS;
    assert_eq!(w.ok("sweep-overdue", json!({}))["notified"], json!(0));
    w.now = T0 + 71 * DAY_MS;
    assert_eq!(w.ok("sweep-overdue", json!({}))["notified"], json!(1));
}

#[test]
fn the_sweep_stops_at_its_limit_and_continues_after() {
    let mut w = shelf_with(&["B-1", "B-2", "B-3"], Config::default());
    w.borrow("B-1", "RC-A");
    w.borrow("B-2", "RC-B");
    w.borrow("B-3", "RC-A");
    w.now = T0 + 31 * DAY_MS;
    w.store.events.clear();
    let first = w.ok("sweep-overdue", json!({"limit": 2}));
    assert_eq!(
        first,
        json!({"notified": 2, "scanned": 2, "next": "L00000002", "replays_purged": 0})
    );
    let rest = w.ok("sweep-overdue", json!({"limit": 2, "after": "L00000002"}));
    assert_eq!(
        rest,
        json!({"notified": 1, "scanned": 1, "next": null, "replays_purged": 0})
    );
    assert_eq!(w.store.events.len(), 3);
}

#[test]
fn listings_read_at_most_a_thousand_loans_per_call() {
    let mut w = World::new();
    for n in 1..=1001u32 {
        let loan = Loan {
            loan_id: format!("L{n:08}"),
            copy_id: format!("C-{n}"),
            title: "T".into(),
            card: "RC-A".into(),
            borrowed_ms: T0,
            due_ms: T0 + 30 * DAY_MS,
            renewals: 0,
            returned_ms: None,
            returned_slot: None,
            notices: 0,
            notified_ms: None,
        };
        save(&mut w.store, &loan_key(&loan.loan_id), &loan).expect("save");
    }
    let first = w.ok("sweep-overdue", json!({}));
    assert_eq!(
        first,
        json!({"notified": 0, "scanned": 1000, "next": "L00001000", "replays_purged": 0})
    );
    let rest = w.ok("sweep-overdue", json!({"after": "L00001000"}));
    assert_eq!(
        rest,
        json!({"notified": 0, "scanned": 1, "next": null, "replays_purged": 0})
    );
    let listed = w.ok("list-overdue", json!({}));
    assert_eq!(listed, json!({"loans": [], "next": "L00001000"}));
}
