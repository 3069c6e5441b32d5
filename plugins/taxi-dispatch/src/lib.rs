//! `taxi-dispatch`: one-click taxi screens at building doors.
//!
//! Elderly residents who cannot use a smartphone press one button on a screen at the
//! door; the screen's registered pickup point becomes a ride request (a phone can raise
//! one with its own pickup point too). The request is offered, in rounds, to the nearest
//! available drivers; the first offered driver to accept gets it (and the pickup point),
//! every later accept is a conflict. When no one accepts within the offer timeout the
//! next round widens the radius; after the last round the ride is escalated to staff.
//!
//! The code is plain Rust over a small [`store::Store`] trait, unit-tested natively:
//!
//! - [`geo`]: positions and haversine distances;
//! - [`drivers`]: driver reports, status, the choice of the nearest drivers;
//! - [`screens`]: screens and their pickup points;
//! - [`rides`]: the ride state machine and the offer rounds (pure);
//! - [`db`]: the records in state, their indexes, and the events of each transition;
//! - [`replay`]: idempotent replays;
//! - [`ops`]: the operations of the manifest;
//! - [`config`], [`events`], [`store`].
//!
//! Plugins have no timers: an offer round that has run out is advanced whenever its ride
//! is read or touched (at the call's `now`), and by the `tick` operation, which a
//! workflow or cron schedule calls every few seconds.

pub mod config;
pub mod db;
pub mod drivers;
pub mod events;
pub mod geo;
pub mod ops;
pub mod replay;
pub mod rides;
pub mod screens;
pub mod store;
#[cfg(test)]
mod test_support;

use courtyard_sdk::store::HostStore;
use courtyard_sdk::{Context, Error, Plugin, Value};

/// The component.
#[derive(Debug)]
pub struct TaxiDispatch;

impl Plugin for TaxiDispatch {
    fn invoke(ctx: &Context, operation: &str, input: Value) -> Result<Value, Error> {
        let config: config::Config = courtyard_sdk::config::get()?;
        let call = ops::Call {
            now_ms: ctx.now_ms,
            idempotency_key: ctx.idempotency_key.as_deref(),
        };
        ops::invoke(&mut HostStore, &config, call, operation, input)
    }
}

#[cfg(target_arch = "wasm32")]
courtyard_sdk::export_plugin!(TaxiDispatch);
