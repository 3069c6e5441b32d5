//! `visitor-access`: visitor reservations confirmed by the resident, passes, gate checks
//! with an audit trail, and a blocklist.
//!
//! A visitor registers in the access-control mini-program (name, phone, a face
//! reference — a template id or hash, never an image — the unit and the visit window);
//! the visit is `pending` until a resident of that unit confirms it (it gets a pass
//! code) or refuses it. Gates check a face reference or a pass code and get allow or
//! deny with a reason; every check is kept. Unanswered visits and passes expire on
//! their own: reads apply it, and the `expire-due` sweep writes it down with events.
//!
//! The logic is plain Rust over a [`store::Store`] (so it is tested natively with the
//! SDK's in-memory store); the component is the thin [`VisitorAccess`] layer binding it
//! to the host. Modules:
//!
//! - [`validate`]: face references (never image data), names, windows, pass codes, and
//!   the canonical forms of phones and face hashes;
//! - [`visit`]: the visit and its state machine, pure; [`visits`]: the operations on
//!   visits with their indexes and events; [`residents`]: who may answer for a unit;
//! - [`passes`]: random pass codes and whether a pass opens a gate; [`gate`]: gate
//!   checks (never replayed);
//! - [`audit`]: the trail of checks; [`blocklist`]; [`sweep`]: `expire-due`;
//! - [`store`], [`keys`], [`config`], [`events`], [`time`]: the plumbing.

pub mod audit;
pub mod blocklist;
pub mod config;
pub mod events;
pub mod gate;
pub mod keys;
pub mod passes;
pub mod residents;
pub mod store;
pub mod sweep;
pub mod time;
pub mod validate;
pub mod visit;
pub mod visits;

#[cfg(test)]
mod doc_example;
#[cfg(test)]
mod tests;

use config::Config;
use courtyard_sdk::store::HostStore;
use courtyard_sdk::{Context, Error, Plugin, Value, handle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use store::{Session, Store, once};

/// Every operation of the manifest.
pub const OPERATIONS: [&str; 15] = [
    "register-resident",
    "remove-resident",
    "list-residents",
    "register-visit",
    "get-visit",
    "list-visits",
    "confirm-visit",
    "refuse-visit",
    "cancel-visit",
    "gate-check",
    "list-checks",
    "blocklist-add",
    "blocklist-remove",
    "list-blocklist",
    "expire-due",
];

/// A read (or `gate-check`, never replayed): `f` on the parsed input, its output
/// serialised.
fn read<S: Store, I: DeserializeOwned, O: Serialize>(
    s: &mut Session<'_, S>,
    input: Value,
    f: impl FnOnce(&mut Session<'_, S>, I) -> Result<O, Error>,
) -> Result<Value, Error> {
    handle(input, |input| f(s, input))
}

/// A change: `f` on the parsed input, run [`once`] per idempotency key of `operation`
/// (the input as sent is the request a reused key must match).
fn change<S: Store, I: DeserializeOwned, O: Serialize>(
    s: &mut Session<'_, S>,
    operation: &str,
    input: Value,
    f: impl FnOnce(&mut Session<'_, S>, I) -> Result<O, Error>,
) -> Result<Value, Error> {
    let request = if s.idempotency_key.is_some() {
        input.clone()
    } else {
        Value::Null
    };
    handle(input, |input| once(s, operation, &request, |s| f(s, input)))
}

/// Runs `operation` with `input` in session `s`. Operations that change state run
/// once per idempotency key and request; reads just run (they may write down due
/// expiries). `gate-check` always runs: a gate's answer depends on the visit's state at
/// the time of the check, so every check is evaluated and audited, whatever its key.
pub fn dispatch<S: Store>(
    s: &mut Session<'_, S>,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    match operation {
        "register-resident" => change(s, operation, input, residents::register),
        "remove-resident" => change(s, operation, input, residents::remove),
        "list-residents" => read(s, input, residents::list),
        "register-visit" => change(s, operation, input, visits::register),
        "get-visit" => read(s, input, visits::get),
        "list-visits" => read(s, input, visits::list),
        "confirm-visit" => change(s, operation, input, visits::confirm),
        "refuse-visit" => change(s, operation, input, visits::refuse),
        "cancel-visit" => change(s, operation, input, visits::cancel),
        "gate-check" => read(s, input, gate::check),
        "list-checks" => read(s, input, audit::list),
        "blocklist-add" => change(s, operation, input, blocklist::add),
        "blocklist-remove" => change(s, operation, input, blocklist::remove),
        "list-blocklist" => read(s, input, blocklist::list),
        "expire-due" => change(s, operation, input, sweep::run),
        other => Err(Error::not_found(format!(
            "visitor-access has no operation {other:?}"
        ))),
    }
}

/// The component.
#[derive(Debug)]
pub struct VisitorAccess;

impl Plugin for VisitorAccess {
    fn invoke(ctx: &Context, operation: &str, input: Value) -> Result<Value, Error> {
        let config: Config = courtyard_sdk::config::get()?;
        let mut store = HostStore;
        let mut session = Session::new(
            &mut store,
            ctx.now_ms,
            config,
            ctx.community.clone(),
            ctx.idempotency_key.clone(),
        );
        dispatch(&mut session, operation, input)
    }
}

#[cfg(target_arch = "wasm32")]
courtyard_sdk::export_plugin!(VisitorAccess);
