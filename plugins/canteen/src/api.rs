//! The operations of the manifest, and idempotency.
//!
//! Every operation that changes state keeps a replay record per idempotency key
//! (`idem/{key}`: the operation, its input and its output). A call with a key already
//! used returns the recorded output and changes nothing — the same order is never placed,
//! accepted or assigned twice by a retry. Reusing a key for a different request is a
//! conflict. Refused calls record nothing (the host discards their writes), so a retry
//! after a refusal runs again. `sweep` forgets records older than `replay_retention_days`.

use crate::config::Config;
use crate::orders::Action;
use crate::store::{self, Store, keys};
use crate::{delivery, eligibility, menu, orders, summary, sweep};
use courtyard_sdk::{Error, Value, handle};
use serde::{Deserialize, Serialize};

/// What the host says about the call, as the logic needs it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// "Now", ms since the Unix epoch (UTC).
    pub now_ms: i64,
    /// The caller's idempotency key.
    pub idempotency_key: Option<&'a str>,
}

/// The operations that change state (each keeps replay records).
pub const CHANGING: [&str; 14] = [
    "set-menu",
    "close-slot",
    "open-slot",
    "register-resident",
    "place-order",
    "accept-order",
    "mark-ready",
    "mark-picked-up",
    "cancel-order",
    "assign-delivery",
    "unassign-delivery",
    "start-run",
    "mark-delivered",
    "sweep",
];

/// The operations that only read.
pub const READING: [&str; 9] = [
    "get-menu",
    "list-menus",
    "get-resident",
    "list-residents",
    "get-order",
    "list-orders",
    "get-run",
    "list-runs",
    "day-summary",
];

/// A replay record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Replay {
    operation: String,
    input: Value,
    output: Value,
    at_ms: i64,
}

/// Runs `operation` with `input`, once per idempotency key.
pub fn dispatch(
    store: &mut impl Store,
    config: &Config,
    call: Call<'_>,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    let changing = CHANGING.contains(&operation);
    let key = call.idempotency_key.filter(|_| changing);
    let recorded_input = key.map(|_| input.clone());
    if let Some(key) = key
        && let Some(replay) = store::load::<Replay>(store, &keys::replay(key))?
    {
        if replay.operation == operation && Some(&replay.input) == recorded_input.as_ref() {
            return Ok(replay.output);
        }
        return Err(Error::conflict(format!(
            "the Idempotency-Key {key:?} was already used for a different request ({}); use a new key for a new request",
            replay.operation
        )));
    }
    let output = run(store, config, call.now_ms, operation, input)?;
    if let (Some(key), Some(input)) = (key, recorded_input) {
        let replay = Replay {
            operation: operation.to_owned(),
            input,
            output: output.clone(),
            at_ms: call.now_ms,
        };
        store::save(store, &keys::replay(key), &replay)?;
        sweep::index_replay(store, call.now_ms, key)?;
    }
    Ok(output)
}

fn run(
    store: &mut impl Store,
    config: &Config,
    now: i64,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    let s = store;
    let c = config;
    match operation {
        "set-menu" => handle(input, |i| menu::set_menu(s, c, now, i)),
        "get-menu" => handle(input, |i| menu::get_menu(s, c, now, i)),
        "list-menus" => handle(input, |i| menu::list_menus(s, c, now, i)),
        "close-slot" => handle(input, |i| menu::close_slot(s, c, now, i)),
        "open-slot" => handle(input, |i| menu::open_slot(s, c, now, i)),
        "register-resident" => handle(input, |i| eligibility::register(s, c, now, i)),
        "get-resident" => handle(input, |i| eligibility::get(s, c, now, i)),
        "list-residents" => handle(input, |i| eligibility::list(s, c, now, i)),
        "place-order" => handle(input, |i| orders::place(s, c, now, i)),
        "get-order" => handle(input, |i| orders::get(s, i)),
        "list-orders" => handle(input, |i| orders::list(s, i)),
        "accept-order" => handle(input, |i| orders::transition(s, now, i, Action::Accept)),
        "mark-ready" => handle(input, |i| orders::transition(s, now, i, Action::MarkReady)),
        "mark-picked-up" => handle(input, |i| {
            orders::transition(s, now, i, Action::MarkPickedUp)
        }),
        "cancel-order" => handle(input, |i| orders::cancel(s, c, now, i)),
        "assign-delivery" => handle(input, |i| delivery::assign(s, now, i)),
        "unassign-delivery" => handle(input, |i| delivery::unassign(s, now, i)),
        "start-run" => handle(input, |i| delivery::start(s, now, i)),
        "mark-delivered" => handle(input, |i| delivery::mark_delivered(s, now, i)),
        "get-run" => handle(input, |i| delivery::get(s, i)),
        "list-runs" => handle(input, |i| delivery::list(s, i)),
        "day-summary" => handle(input, |i| summary::day_summary(s, c, now, i)),
        "sweep" => handle(input, |i| sweep::sweep(s, c, now, i)),
        other => Err(Error::not_found(format!(
            "canteen has no operation {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    fn call(key: Option<&str>) -> Call<'_> {
        Call {
            now_ms: NOW,
            idempotency_key: key,
        }
    }

    fn order_body() -> Value {
        json!({"resident_id": "r-old", "date": DAY, "slot": "lunch", "fulfilment": "delivery",
               "items": [{"dish_id": "tofu", "portions": 1}]})
    }

    #[test]
    fn the_same_key_places_one_order() {
        let mut s = setup();
        let c = Config::default();
        let first = s
            .call(|s| dispatch(s, &c, call(Some("phone-17")), "place-order", order_body()))
            .expect("first");
        let events = s.events.len();
        let again = s
            .call(|s| dispatch(s, &c, call(Some("phone-17")), "place-order", order_body()))
            .expect("again");
        assert_eq!(first, again);
        assert_eq!(s.events.len(), events, "no second event");
        assert_eq!(menu_ordered(&mut s, "tofu"), 1, "one portion taken");
        assert_eq!(s.data.keys().filter(|k| k.starts_with("order/")).count(), 1);
        // Without a key (or with another), it is a new order — refused here by one_order_per_slot.
        assert_conflict(
            s.call(|s| dispatch(s, &c, call(Some("phone-18")), "place-order", order_body())),
            "already has order",
        );
    }

    #[test]
    fn a_reused_key_for_another_request_is_a_conflict() {
        let mut s = setup();
        let c = Config::default();
        dispatch(&mut s, &c, call(Some("k")), "place-order", order_body()).expect("first");
        let mut other = order_body();
        other["items"][0]["portions"] = json!(2);
        assert_conflict(
            dispatch(&mut s, &c, call(Some("k")), "place-order", other),
            "already used for a different request (place-order)",
        );
        assert_conflict(
            dispatch(
                &mut s,
                &c,
                call(Some("k")),
                "accept-order",
                json!({"order_id": "2099-12-01-lunch-0001"}),
            ),
            "use a new key",
        );
    }

    #[test]
    fn transitions_replay_too() {
        let mut s = setup();
        let c = Config::default();
        let order = dispatch(&mut s, &c, call(None), "place-order", order_body()).expect("place");
        let body = json!({"order_id": order["order_id"]});
        let mut accept = |key| dispatch(&mut s, &c, call(key), "accept-order", body.clone());
        let first = accept(Some("acc-1")).expect("accept");
        let again = accept(Some("acc-1")).expect("replay");
        assert_eq!(first, again);
        // Without the key, the retry is refused by the state machine.
        assert_conflict(accept(None), "is already accepted");
    }

    #[test]
    fn refusals_record_nothing() {
        let mut s = setup();
        let c = Config::default();
        let mut body = order_body();
        body["items"][0]["dish_id"] = json!("caviar");
        assert!(
            s.call(|s| dispatch(s, &c, call(Some("k")), "place-order", body))
                .is_err()
        );
        assert!(!s.data.contains_key("idem/k"));
        assert!(dispatch(&mut s, &c, call(Some("k")), "place-order", order_body()).is_ok());
    }

    #[test]
    fn reads_keep_no_replay_records() {
        let mut s = setup();
        let c = Config::default();
        dispatch(
            &mut s,
            &c,
            call(Some("r")),
            "get-menu",
            json!({"date": DAY, "slot": "lunch"}),
        )
        .expect("get");
        assert!(!s.data.contains_key("idem/r"));
    }

    #[test]
    fn unknown_operations_and_bad_inputs() {
        let mut s = setup();
        let c = Config::default();
        assert_not_found(
            dispatch(&mut s, &c, call(None), "fly", json!({})),
            "no operation",
        );
        assert_invalid(
            dispatch(&mut s, &c, call(None), "get-menu", json!({"date": DAY})),
            "slot",
        );
        assert_invalid(
            dispatch(
                &mut s,
                &c,
                call(None),
                "get-menu",
                json!({"date": DAY, "slot": "lunch", "x": 1}),
            ),
            "unknown field",
        );
    }
}
