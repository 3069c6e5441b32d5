//! The operations: each name of the manifest mapped to its function, with the input
//! deserialised, idempotent replays for the operations that change state, and the output
//! serialised. Runs on any [`Store`], so the tests drive it exactly as the host does.

use crate::config::Call;
use crate::store::{Store, once};
use crate::{cards, loans, pull, shelf, sync};
use courtyard_sdk::{Error, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every operation, as named in the manifest.
pub const OPERATIONS: &[&str] = &[
    "sync",
    "sync-status",
    "reset-sync",
    "get-copy",
    "place",
    "remove",
    "list-shelf",
    "register-card",
    "deactivate-card",
    "get-card",
    "borrow",
    "return",
    "renew",
    "list-overdue",
    "sweep-overdue",
];

/// Runs `operation` with `input`.
pub fn dispatch<S: Store>(
    store: &mut S,
    call: &Call,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    match operation {
        // `{}`: the plugin fetches the page itself, inside the replay check, so that a
        // retried call with the same key answers as the first without fetching again.
        "sync" if input.as_object().is_some_and(serde_json::Map::is_empty) => {
            let request = input.clone();
            once(store, operation, call.key, &request, call.now_ms, |s| {
                let page = pull::fetch_page(s, call)?;
                courtyard_sdk::handle(page, |p| sync::sync(s, call, p))
            })
        }
        "sync" => changing(store, call, operation, input, sync::sync),
        "sync-status" => reading(store, input, |s, i| sync::status(s, i)),
        "reset-sync" => changing(store, call, operation, input, |s, _, i| sync::reset(s, i)),
        "get-copy" => reading(store, input, |s, i| shelf::get_copy(s, call, i)),
        "place" => changing(store, call, operation, input, shelf::place),
        "remove" => changing(store, call, operation, input, shelf::remove),
        "list-shelf" => reading(store, input, |s, i| shelf::list(s, call, i)),
        "register-card" => changing(store, call, operation, input, cards::register),
        "deactivate-card" => changing(store, call, operation, input, cards::deactivate),
        "get-card" => reading(store, input, |s, i| cards::get(s, call, i)),
        "borrow" => changing(store, call, operation, input, loans::borrow),
        "return" => changing(store, call, operation, input, loans::return_copy),
        "renew" => changing(store, call, operation, input, loans::renew),
        "list-overdue" => reading(store, input, |s, i| loans::list_overdue(s, call, i)),
        "sweep-overdue" => changing(store, call, operation, input, loans::sweep_overdue),
        other => Err(Error::not_found(format!(
            "library-sync has no operation {other:?}"
        ))),
    }
}

/// An operation that changes state: applied once per idempotency key.
fn changing<S, I, O>(
    store: &mut S,
    call: &Call,
    operation: &str,
    input: Value,
    f: impl FnOnce(&mut S, &Call, I) -> Result<O, Error>,
) -> Result<Value, Error>
where
    S: Store,
    I: DeserializeOwned,
    O: Serialize,
{
    let request = input.clone();
    once(store, operation, call.key, &request, call.now_ms, |s| {
        courtyard_sdk::handle(input, |i| f(s, call, i))
    })
}

/// An operation that only reads.
fn reading<S, I, O>(
    store: &mut S,
    input: Value,
    f: impl FnOnce(&mut S, I) -> Result<O, Error>,
) -> Result<Value, Error>
where
    S: Store,
    I: DeserializeOwned,
    O: Serialize,
{
    courtyard_sdk::handle(input, |i| f(store, i))
}
