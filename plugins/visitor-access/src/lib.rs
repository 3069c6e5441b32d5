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
//! The logic is plain Rust over a [`store::Store`] (so it is tested natively with
//! [`store::MemStore`]); the component is the thin [`VisitorAccess`] layer binding it
//! to the host. Modules:
//!
//! - [`validate`]: face references (never image data), names, windows, pass codes;
//! - [`visit`]: the visit and its state machine, pure; [`visits`]: the operations on
//!   visits with their indexes and events; [`residents`]: who may answer for a unit;
//! - [`passes`]: pass codes and whether a pass opens a gate; [`gate`]: gate checks;
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
use courtyard_sdk::{Context, Error, Plugin, Value};
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

fn parse<I: DeserializeOwned>(input: Value) -> Result<I, Error> {
    serde_json::from_value(input).map_err(|e| Error::invalid_input(e.to_string()))
}

fn output<O: Serialize>(value: O) -> Result<Value, Error> {
    serde_json::to_value(value)
        .map_err(|e| Error::internal(format!("cannot serialise output: {e}")))
}

/// Runs `operation` with `input` in session `s`. Operations that change state run
/// once per idempotency key; reads just run (they may write down due expiries).
pub fn dispatch<S: Store>(
    s: &mut Session<'_, S>,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    match operation {
        "register-resident" => {
            let input = parse(input)?;
            once(s, operation, |s| residents::register(s, input))
        }
        "remove-resident" => {
            let input = parse(input)?;
            once(s, operation, |s| residents::remove(s, input))
        }
        "list-residents" => output(residents::list(s, parse(input)?)?),
        "register-visit" => {
            let input = parse(input)?;
            once(s, operation, |s| visits::register(s, input))
        }
        "get-visit" => output(visits::get(s, parse(input)?)?),
        "list-visits" => output(visits::list(s, parse(input)?)?),
        "confirm-visit" => {
            let input = parse(input)?;
            once(s, operation, |s| visits::confirm(s, input))
        }
        "refuse-visit" => {
            let input = parse(input)?;
            once(s, operation, |s| visits::refuse(s, input))
        }
        "cancel-visit" => {
            let input = parse(input)?;
            once(s, operation, |s| visits::cancel(s, input))
        }
        "gate-check" => {
            let input = parse(input)?;
            once(s, operation, |s| gate::check(s, input))
        }
        "list-checks" => output(audit::list(s, parse(input)?)?),
        "blocklist-add" => {
            let input = parse(input)?;
            once(s, operation, |s| blocklist::add(s, input))
        }
        "blocklist-remove" => {
            let input = parse(input)?;
            once(s, operation, |s| blocklist::remove(s, input))
        }
        "list-blocklist" => output(blocklist::list(s, parse(input)?)?),
        "expire-due" => {
            let input = parse(input)?;
            once(s, operation, |s| sweep::run(s, input))
        }
        other => Err(Error::not_found(format!(
            "visitor-access has no operation {other:?}"
        ))),
    }
}

/// The host's state and events, through the SDK.
#[derive(Debug)]
struct HostStore;

impl Store for HostStore {
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error> {
        courtyard_sdk::state::get(key)
    }
    fn put(&mut self, key: &str, value: &Value) -> Result<(), Error> {
        courtyard_sdk::state::put(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), Error> {
        courtyard_sdk::state::delete(key)
    }
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, Error> {
        courtyard_sdk::state::list(prefix, after, limit)
    }
    fn emit(&mut self, kind: &str, payload: &Value) -> Result<(), Error> {
        courtyard_sdk::events::emit(kind, payload)
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
