//! The copy state machine, exhaustively: every operation that moves a copy, from every
//! place a copy can be, under every library status, by its borrower and by another card.
//! Allowed transitions land in the expected place (with the expected event); refused ones
//! are the expected error with an actionable message, and change nothing.

use super::*;
use crate::catalogue::LibraryStatus;

/// Where the copy is before the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    NotHeld,
    OnShelf,
    OnLoan,
}

/// The operations that move a copy. The borrower is card `RC-A`; `RC-B` is another
/// registered card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Place,
    Remove,
    BorrowA,
    BorrowB,
    ReturnToSlot,
    ReturnToStaff,
    RenewA,
    RenewB,
}

const PLACES: [Place; 3] = [Place::NotHeld, Place::OnShelf, Place::OnLoan];
const STATUSES: [LibraryStatus; 3] = [
    LibraryStatus::Active,
    LibraryStatus::Elsewhere,
    LibraryStatus::Withdrawn,
];
const OPS: [Op; 8] = [
    Op::Place,
    Op::Remove,
    Op::BorrowA,
    Op::BorrowB,
    Op::ReturnToSlot,
    Op::ReturnToStaff,
    Op::RenewA,
    Op::RenewB,
];

/// The expected outcome.
#[derive(Debug)]
enum Expect {
    /// Allowed: the copy ends up here, with this event (if any).
    Moves(After, Option<&'static str>),
    /// Refused with a conflict whose message mentions these.
    Conflict(&'static [&'static str]),
}

#[derive(Debug, PartialEq, Eq)]
enum After {
    NotHeld,
    Slot(u32),
    LoanTo(&'static str),
}

fn input(op: Op) -> (&'static str, Value) {
    let copy = "X-1";
    match op {
        Op::Place => ("place", json!({"copy_id": copy, "slot": 2})),
        Op::Remove => ("remove", json!({"copy_id": copy})),
        Op::BorrowA => ("borrow", json!({"copy_id": copy, "card": "RC-A"})),
        Op::BorrowB => ("borrow", json!({"copy_id": copy, "card": "RC-B"})),
        Op::ReturnToSlot => ("return", json!({"copy_id": copy, "slot": 2})),
        Op::ReturnToStaff => ("return", json!({"copy_id": copy})),
        Op::RenewA => ("renew", json!({"copy_id": copy, "card": "RC-A"})),
        Op::RenewB => ("renew", json!({"copy_id": copy, "card": "RC-B"})),
    }
}

fn expected(place: Place, status: LibraryStatus, op: Op) -> Expect {
    use Expect::{Conflict, Moves};
    let withdrawn = status == LibraryStatus::Withdrawn;
    match (place, op) {
        (Place::NotHeld, Op::Place) if withdrawn => {
            Conflict(&["withdrew", "\"X-1\"", "send it back"])
        }
        (Place::NotHeld, Op::Place) => Moves(After::Slot(2), None),
        (Place::NotHeld, Op::Remove) => Conflict(&["\"X-1\"", "is not on the shelf"]),
        (Place::NotHeld, Op::BorrowA | Op::BorrowB) => {
            Conflict(&["\"X-1\"", "not on the shelf", "ask staff"])
        }
        (Place::NotHeld, Op::ReturnToSlot | Op::ReturnToStaff) => {
            Conflict(&["\"X-1\"", "not on loan", "nothing to return"])
        }
        (Place::NotHeld, Op::RenewA | Op::RenewB) => Conflict(&["\"X-1\"", "is not on loan"]),

        (Place::OnShelf, Op::Place) => {
            Conflict(&["already on the shelf in slot 1", "remove it first"])
        }
        (Place::OnShelf, Op::Remove) => Moves(After::NotHeld, None),
        (Place::OnShelf, Op::BorrowA | Op::BorrowB) if withdrawn => {
            Conflict(&["withdrew", "cannot be borrowed"])
        }
        (Place::OnShelf, Op::BorrowA) => {
            Moves(After::LoanTo("RC-A"), Some("library-sync.book-borrowed"))
        }
        (Place::OnShelf, Op::BorrowB) => {
            Moves(After::LoanTo("RC-B"), Some("library-sync.book-borrowed"))
        }
        (Place::OnShelf, Op::ReturnToSlot | Op::ReturnToStaff) => {
            Conflict(&["is not on loan", "in slot 1"])
        }
        (Place::OnShelf, Op::RenewA | Op::RenewB) => Conflict(&["is not on loan", "in slot 1"]),

        (Place::OnLoan, Op::Place) => Conflict(&["is on loan (L00000001)", "return"]),
        (Place::OnLoan, Op::Remove) => Conflict(&["is on loan (L00000001)", "not on the shelf"]),
        (Place::OnLoan, Op::BorrowA) => Conflict(&[
            "already on loan to this card",
            "L00000001",
            "due 2026-07-01",
        ]),
        (Place::OnLoan, Op::BorrowB) => {
            Conflict(&["out on loan", "due 2026-07-01", "choose another book"])
        }
        (Place::OnLoan, Op::ReturnToSlot) => {
            Moves(After::Slot(2), Some("library-sync.book-returned"))
        }
        (Place::OnLoan, Op::ReturnToStaff) => {
            Moves(After::NotHeld, Some("library-sync.book-returned"))
        }
        (Place::OnLoan, Op::RenewA) if withdrawn => {
            Conflict(&["withdrew", "cannot be renewed", "2026-07-01"])
        }
        (Place::OnLoan, Op::RenewA) => {
            Moves(After::LoanTo("RC-A"), Some("library-sync.book-renewed"))
        }
        (Place::OnLoan, Op::RenewB) => {
            Conflict(&["not on loan to card \"RC-B\"", "only its borrower"])
        }
    }
}

/// A world where copy `X-1` is at `place` with library `status`.
fn world(place: Place, status: LibraryStatus) -> World {
    let mut w = World::new();
    w.catalogue(&["X-1"]);
    w.register("RC-A");
    w.register("RC-B");
    if place != Place::NotHeld {
        w.place("X-1", 1);
    }
    if place == Place::OnLoan {
        w.borrow("X-1", "RC-A");
    }
    if status != LibraryStatus::Active {
        w.library_says("X-1", status.as_str());
    }
    w.advance_days(5);
    w.store.events.clear();
    w.check_invariants();
    w
}

#[test]
fn every_operation_from_every_place_under_every_library_status() {
    let mut cases = 0;
    for place in PLACES {
        for status in STATUSES {
            for op in OPS {
                let mut w = world(place, status);
                let (operation, body) = input(op);
                let context = format!("{op:?} from {place:?} ({status:?})");
                match expected(place, status, op) {
                    Expect::Conflict(parts) => {
                        let err = w.refused(operation, body);
                        assert!(matches!(err, Error::Conflict(_)), "{context}: {err:?}");
                        assert_conflict(&err, parts);
                    }
                    Expect::Moves(after, event) => {
                        w.op(operation, body)
                            .unwrap_or_else(|e| panic!("{context}: {e}"));
                        let now = match w.held("X-1") {
                            None => After::NotHeld,
                            Some(Held::OnShelf { slot }) => After::Slot(slot),
                            Some(Held::OnLoan { card, .. }) => match card.as_str() {
                                "RC-A" => After::LoanTo("RC-A"),
                                "RC-B" => After::LoanTo("RC-B"),
                                other => panic!("{context}: lent to {other}"),
                            },
                        };
                        assert_eq!(now, after, "{context}");
                        let kinds = w.kinds();
                        assert_eq!(
                            kinds,
                            event.into_iter().map(String::from).collect::<Vec<_>>(),
                            "{context}"
                        );
                        w.check_invariants();
                    }
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 72);
}

#[test]
fn every_operation_on_an_unknown_book_code_is_not_found() {
    let mut w = world(Place::OnShelf, LibraryStatus::Active);
    for op in OPS {
        let (operation, mut body) = input(op);
        body["copy_id"] = json!("NOPE-1");
        let err = w.refused(operation, body);
        assert_not_found(&err, &["\"NOPE-1\"", "catalogue"]);
    }
    let err = w.refused("get-copy", json!({"copy_id": "NOPE-1"}));
    assert_not_found(&err, &["\"NOPE-1\""]);
}

#[test]
fn a_returned_withdrawn_copy_is_flagged_for_staff() {
    let mut w = world(Place::OnLoan, LibraryStatus::Withdrawn);
    let out = w.ok("return", json!({"copy_id": "X-1", "slot": 2}));
    assert_eq!(out["withdrawn"], json!(true));
    assert!(
        out["action"]
            .as_str()
            .is_some_and(|a| a.contains("send it back")),
        "{out}"
    );
    assert_eq!(w.store.events[0].1["withdrawn"], json!(true));
    // It sits in slot 2 but cannot be borrowed; staff take it off.
    let err = w.refused("borrow", json!({"copy_id": "X-1", "card": "RC-B"}));
    assert_conflict(&err, &["withdrew"]);
    let removed = w.ok("remove", json!({"copy_id": "X-1"}));
    assert_eq!(removed["library_status"], json!("withdrawn"));
    assert_eq!(removed["slot"], json!(2));
    w.check_invariants();
}

#[test]
fn the_loan_record_follows_the_copy() {
    let mut w = world(Place::OnShelf, LibraryStatus::Active);
    let borrowed = w.borrow("X-1", "RC-A");
    assert_eq!(borrowed["slot"], json!(1));
    let loan = &borrowed["loan"];
    assert_eq!(loan["loan_id"], json!("L00000001"));
    assert_eq!(loan["due_ms"], json!(w.now + 30 * DAY_MS));
    assert_eq!(w.card("RC-A").loans, vec!["L00000001".to_owned()]);
    // The slot is free again: another copy can go there.
    assert_eq!(
        load::<String>(&mut w.store, &slot_key(1)).expect("load"),
        None
    );

    w.advance_days(1);
    let returned = w.ok("return", json!({"copy_id": "X-1"}));
    assert_eq!(returned["loan"]["returned_ms"], json!(w.now));
    assert_eq!(returned["slot"], Value::Null);
    assert_eq!(returned["days_late"], json!(0));
    assert_eq!(returned["action"], Value::Null);
    assert_eq!(w.loan("L00000001"), None);
    let done: Loan = load(&mut w.store, "done/L00000001")
        .expect("load")
        .expect("kept");
    assert_eq!(done.returned_ms, Some(w.now));
    assert!(w.card("RC-A").loans.is_empty());
    // Loan ids keep counting.
    w.place("X-1", 3);
    assert_eq!(
        w.borrow("X-1", "RC-B")["loan"]["loan_id"],
        json!("L00000002")
    );
    w.check_invariants();
}
