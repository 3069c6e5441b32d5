//! `canteen`: the community canteen that serves the elderly — menus per date and meal slot
//! with portion caps, orders for pick-up or delivery, delivery runs for staff and
//! volunteers, and the day's summary. See `docs/plugins/canteen.md`.
//!
//! The domain logic lives in plain modules over the SDK's [`store::Store`] trait, so that it
//! unit-tests natively with the SDK's in-memory store:
//!
//! - [`menu`]: menus, dishes, caps, cutoffs, closing and reopening slots;
//! - [`eligibility`]: registered residents and who may order delivery;
//! - [`orders`]: orders and their state machine;
//! - [`delivery`]: delivery runs;
//! - [`summary`]: the day's summary;
//! - [`sweep`]: what time alone changes (slot-closed announcements, old replay records);
//! - [`api`]: the operations, and idempotency;
//! - [`calendar`], [`config`], [`events`], [`store`]: the support.
//!
//! This file is the thin component layer: the host's state through the SDK's `HostStore`,
//! and the export.

pub mod api;
pub mod calendar;
pub mod config;
pub mod delivery;
pub mod eligibility;
pub mod events;
pub mod menu;
pub mod orders;
pub mod store;
pub mod summary;
pub mod sweep;

#[cfg(test)]
mod testing;

#[cfg(test)]
mod contract_tests;

use courtyard_sdk::store::HostStore;
use courtyard_sdk::{Context, Error, Plugin, Value};

/// The component.
#[derive(Debug)]
pub struct Canteen;

impl Plugin for Canteen {
    fn invoke(ctx: &Context, operation: &str, input: Value) -> Result<Value, Error> {
        let config: config::Config = courtyard_sdk::config::get()?;
        let call = api::Call {
            now_ms: ctx.now_ms,
            idempotency_key: ctx.idempotency_key.as_deref(),
        };
        api::dispatch(&mut HostStore, &config, call, operation, input)
    }
}

#[cfg(target_arch = "wasm32")]
courtyard_sdk::export_plugin!(Canteen);
