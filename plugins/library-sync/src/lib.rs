//! `library-sync`: a 24-hour smart bookshelf beside the community, synced with the city
//! library's catalogue.
//!
//! The library is the source of truth for titles ([`catalogue`], written only by the
//! incremental [`sync`], whose decisions are the pure function [`sync::merge`]); the shelf
//! is the source of truth for what is physically on it ([`shelf`]). Residents with a
//! registered card ([`cards`]) borrow, return and renew by scanning ([`loans`]).
//!
//! The logic is plain Rust over the SDK's [`store::Store`] trait, unit-tested natively with
//! the SDK's in-memory store; [`api::dispatch`] maps the manifest's operations to it; the
//! component ([`LibrarySync`]) binds it to the host's state, config and events. Time comes
//! only from the call's `now_ms`; ids come from a counter in state; every operation that
//! changes state applies once per idempotency key.

pub mod api;
pub mod cards;
pub mod catalogue;
pub mod config;
pub mod loans;
pub mod pull;
pub mod shelf;
pub mod store;
pub mod sync;
pub mod time;

#[cfg(test)]
mod tests;

use courtyard_sdk::store::HostStore;
use courtyard_sdk::{Context, Error, Plugin, Value};

/// The component.
#[derive(Debug)]
pub struct LibrarySync;

impl Plugin for LibrarySync {
    fn invoke(ctx: &Context, operation: &str, input: Value) -> Result<Value, Error> {
        let config: config::Config = courtyard_sdk::config::get()?;
        // The library's change feed, over the host's outgoing HTTP (`sync` with `{}`).
        let fetch = |url: &str| {
            courtyard_sdk::http::get(url, 5_000)
                .map(|r| (r.status, r.body))
                .map_err(Error::from)
        };
        let call = config::Call {
            now_ms: ctx.now_ms,
            key: ctx.idempotency_key.as_deref(),
            config: &config,
            fetch: Some(config::Fetch(&fetch)),
        };
        api::dispatch(&mut HostStore, &call, operation, input)
    }
}

#[cfg(target_arch = "wasm32")]
courtyard_sdk::export_plugin!(LibrarySync);
