//! `alert-rules`: camera and IoT alerts with an alarm lifecycle, the standard Courtyard
//! plugin for the alerts scenario (objects thrown from height, crowds, illegal parking,
//! blocked fire lanes, smart manhole covers, wristbands of elderly people living alone).
//!
//! Each community keeps its own [rules](rules) (installed from [templates] or written by
//! its admin). Device events come in through `ingest`; a rule whose
//! [conditions](conditions) hold and whose [trigger](windows) fires raises an
//! [alarm](alarms), or updates the open alarm of the same dedupe key. Staff acknowledge and
//! clear alarms; unacknowledged alarms escalate after the rule's delay.
//!
//! The logic is plain Rust over a [`Store`](store::Store) trait and unit-tests natively;
//! this file is the thin component layer that binds it to the host.
//!
//! Time comes only from the call's `now_ms` and the events' `at_ms`; ids come from counters
//! in state. Plugins have no timers: escalation happens when an alarm is read or touched,
//! and in the `escalate-due` sweep; old records go in the `purge` sweep. Both are meant to
//! be called by cron workflows.

pub mod alarms;
pub mod conditions;
pub mod config;
pub mod ingest;
pub mod ops;
pub mod placeholders;
pub mod purge;
pub mod rules;
pub mod store;
pub mod templates;
pub mod time;
pub mod windows;

#[cfg(test)]
mod tests;

use courtyard_sdk::store::HostStore;
use courtyard_sdk::{Context, Error, Plugin, Value};

/// The component.
#[derive(Debug)]
pub struct AlertRules;

impl Plugin for AlertRules {
    fn invoke(ctx: &Context, operation: &str, input: Value) -> Result<Value, Error> {
        let config: config::Config = courtyard_sdk::config::get()?;
        ops::dispatch(&mut HostStore, &config, ctx, operation, input)
    }
}

#[cfg(target_arch = "wasm32")]
courtyard_sdk::export_plugin!(AlertRules);
