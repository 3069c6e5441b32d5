//! Tests across modules, driven through [`crate::api::dispatch`] as the host drives the
//! component, on the SDK's in-memory store.

mod api;
mod doc_example;
mod loans;
mod shelf;
mod state_machine;

use crate::api::dispatch;
use crate::cards::{self, Card};
use crate::catalogue;
use crate::config::{Call, Config, DAY_MS};
use crate::loans::{Loan, loan_key};
use crate::shelf::{Held, held_key, slot_key};
use crate::store::{load, scan};
use courtyard_sdk::testing::MemoryStore;
use courtyard_sdk::{Error, Value};
use serde_json::json;

/// 2026-06-01 00:00 UTC.
pub const T0: i64 = 1_780_272_000_000;

/// A shelf in one community: its state, its config and its clock.
#[derive(Debug, Default)]
pub struct World {
    pub store: MemoryStore,
    pub config: Config,
    pub now: i64,
}

impl World {
    pub fn new() -> Self {
        Self {
            now: T0,
            ..Self::default()
        }
    }

    pub fn with_config(config: Config) -> Self {
        Self {
            config,
            ..Self::new()
        }
    }

    /// Calls `operation` without an idempotency key.
    pub fn op(&mut self, operation: &str, input: Value) -> Result<Value, Error> {
        self.op_keyed(operation, None, input)
    }

    /// Calls `operation` with an optional idempotency key. The call runs on the store as
    /// it is, not through `MemoryStore::call`: a refusal must change nothing by itself
    /// (see [`World::refused`]), without the host's rollback.
    pub fn op_keyed(
        &mut self,
        operation: &str,
        key: Option<&str>,
        input: Value,
    ) -> Result<Value, Error> {
        let call = Call {
            now_ms: self.now,
            key,
            config: &self.config,
            fetch: None,
        };
        let result = dispatch(&mut self.store, &call, operation, input.clone());
        check_store(&self.store);
        if let Ok(output) = &result {
            trace(operation, &input, output);
        }
        result
    }

    /// Calls `operation`, which must succeed.
    pub fn ok(&mut self, operation: &str, input: Value) -> Value {
        self.op(operation, input.clone())
            .unwrap_or_else(|e| panic!("{operation} {input} failed: {e}"))
    }

    /// Calls `operation`, which must be refused; checks that the refusal changed nothing.
    pub fn refused(&mut self, operation: &str, input: Value) -> Error {
        let before = self.store.clone();
        let err = match self.op(operation, input.clone()) {
            Ok(out) => panic!("{operation} {input} succeeded: {out}"),
            Err(e) => e,
        };
        assert_eq!(
            self.store, before,
            "{operation} {input} was refused but changed state"
        );
        err
    }

    pub fn advance_days(&mut self, days: i64) {
        self.now += days * DAY_MS;
    }

    /// Syncs one page from the current cursor with the given changes.
    pub fn sync(&mut self, changes: Value) -> Value {
        let cursor = self.ok("sync-status", json!({}))["cursor"].clone();
        let n = self.ok("sync-status", json!({}))["pages_applied"]
            .as_u64()
            .unwrap_or(0);
        self.ok(
            "sync",
            json!({"cursor": cursor, "changes": changes, "next_cursor": format!("c{}", n + 1)}),
        )
    }

    /// Puts copies in the catalogue (revision 1, active).
    pub fn catalogue(&mut self, copies: &[&str]) {
        let changes: Vec<Value> = copies
            .iter()
            .map(|c| json!({"copy_id": c, "revision": 1, "status": "active", "title": format!("Title {c}")}))
            .collect();
        self.sync(Value::Array(changes));
    }

    /// Sets the library status of a copy (a newer revision).
    pub fn library_says(&mut self, copy: &str, status: &str) -> Value {
        let rev = self.record(copy).map(|r| r.revision + 1).unwrap_or(1);
        self.sync(json!([{"copy_id": copy, "revision": rev, "status": status, "title": format!("Title {copy}")}]))
    }

    pub fn register(&mut self, card: &str) {
        self.ok("register-card", json!({"card": card, "unit": "3-502"}));
    }

    pub fn place(&mut self, copy: &str, slot: u32) {
        self.ok("place", json!({"copy_id": copy, "slot": slot}));
    }

    pub fn borrow(&mut self, copy: &str, card: &str) -> Value {
        self.ok("borrow", json!({"copy_id": copy, "card": card}))
    }

    pub fn record(&mut self, copy: &str) -> Option<catalogue::CatalogueRecord> {
        catalogue::load_record(&mut self.store, copy).expect("load")
    }

    pub fn held(&mut self, copy: &str) -> Option<Held> {
        load(&mut self.store, &held_key(copy)).expect("load")
    }

    pub fn card(&mut self, card: &str) -> Card {
        cards::load_card(&mut self.store, card)
            .expect("load")
            .expect("card")
    }

    pub fn loan(&mut self, loan_id: &str) -> Option<Loan> {
        load(&mut self.store, &loan_key(loan_id)).expect("load")
    }

    pub fn kinds(&self) -> Vec<String> {
        kinds(&self.store)
    }

    /// Checks that the records that point at each other agree.
    pub fn check_invariants(&mut self) {
        let store = &mut self.store;
        let slots: Vec<(String, String)> = scan(store, "slot/", None, 1000).expect("slots");
        for (key, copy) in &slots {
            let slot: u32 = key["slot/".len()..].parse().expect("slot number");
            let held: Option<Held> = load(store, &held_key(copy)).expect("held");
            assert_eq!(held, Some(Held::OnShelf { slot }), "{key} holds {copy}");
        }
        let helds: Vec<(String, Held)> = scan(store, "held/", None, 1000).expect("helds");
        for (key, held) in &helds {
            let copy = &key["held/".len()..];
            assert!(
                catalogue::load_record(store, copy)
                    .expect("record")
                    .is_some(),
                "held {copy} is in the catalogue"
            );
            match held {
                Held::OnShelf { slot } => {
                    let occupant: Option<String> = load(store, &slot_key(*slot)).expect("slot");
                    assert_eq!(occupant.as_deref(), Some(copy), "slot {slot}");
                }
                Held::OnLoan { loan_id, card } => {
                    let loan: Loan = load(store, &loan_key(loan_id))
                        .expect("loan")
                        .expect("open loan");
                    assert_eq!((loan.copy_id.as_str(), &loan.card), (copy, card));
                    let holder = cards::load_card(store, card).expect("card").expect("card");
                    assert!(holder.loans.contains(loan_id), "{card} lists {loan_id}");
                }
            }
        }
        let loans: Vec<(String, Loan)> = scan(store, "loan/", None, 1000).expect("loans");
        for (_, loan) in &loans {
            assert_eq!(loan.returned_ms, None);
            let held: Option<Held> = load(store, &held_key(&loan.copy_id)).expect("held");
            assert_eq!(
                held,
                Some(Held::OnLoan {
                    loan_id: loan.loan_id.clone(),
                    card: loan.card.clone()
                })
            );
        }
        let cards: Vec<(String, Card)> = scan(store, "card/", None, 1000).expect("cards");
        for (_, card) in &cards {
            for loan_id in &card.loans {
                let loan: Loan = load(store, &loan_key(loan_id))
                    .expect("loan")
                    .expect("open");
                assert_eq!(loan.card, card.card);
            }
        }
    }
}

/// The kinds of the events `store` holds, in order.
pub fn kinds(store: &MemoryStore) -> Vec<String> {
    store.events.iter().map(|(k, _)| k.clone()).collect()
}

/// Checks what the host would refuse and the in-memory store accepts: every state key is 1
/// to 512 bytes long and every event payload is a JSON object.
#[track_caller]
pub fn check_store(store: &MemoryStore) {
    for key in store.data.keys() {
        assert!(!key.is_empty() && key.len() <= 512, "bad key {key:?}");
    }
    for (kind, payload) in &store.events {
        assert!(payload.is_object(), "{kind}: event payloads are objects");
    }
}

/// With `LIBRARY_SYNC_TRACE=<file>` set, appends each successful call as a JSON line
/// `{"operation", "input", "output"}`, so that the outputs can be checked against the
/// manifest's output schemas by an external validator.
fn trace(operation: &str, input: &Value, output: &Value) {
    use std::io::Write;
    let Some(path) = std::env::var_os("LIBRARY_SYNC_TRACE") else {
        return;
    };
    let mut line = json!({"operation": operation, "input": input, "output": output}).to_string();
    line.push('\n');
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Asserts `err` answers the host's error `code` and its message contains every one of
/// `parts`.
#[track_caller]
fn assert_refusal(err: &Error, code: &str, parts: &[&str]) {
    let body = courtyard_sdk::testing::error_body(err);
    assert_eq!(
        body["error"]["code"], code,
        "expected {code} mentioning {parts:?}, got {err:?}"
    );
    let m = body["error"]["message"].as_str().unwrap_or_default();
    for part in parts {
        assert!(m.contains(part), "{m:?} does not mention {part:?}");
    }
}

/// Asserts `err` is `conflict` and its message contains every one of `parts`.
#[track_caller]
pub fn assert_conflict(err: &Error, parts: &[&str]) {
    assert_refusal(err, "conflict", parts);
}

/// Asserts `err` is `not_found` and its message contains every one of `parts`.
#[track_caller]
pub fn assert_not_found(err: &Error, parts: &[&str]) {
    assert_refusal(err, "not_found", parts);
}

/// Asserts `err` is `invalid_input` and its message contains every one of `parts`.
#[track_caller]
pub fn assert_invalid(err: &Error, parts: &[&str]) {
    assert_refusal(err, "invalid_input", parts);
}
