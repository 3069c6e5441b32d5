//! The host side of each WIT interface: one module per interface of `wit/`, each with
//! its own `add_to_linker`, all implemented on [`HostState`], the data of one call's
//! `Store`.

pub(crate) mod config;
pub(crate) mod events;
pub(crate) mod http;
pub(crate) mod log;
pub(crate) mod state;
pub(crate) mod types;

use crate::LogRecord;
use crate::limits::CallLimiter;
use courtyard_registry::PreparedManifest;
use courtyard_store::{Namespace, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// An event emitted during a call, recorded only if the call returns `ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub(crate) kind: String,
    pub(crate) payload: serde_json::Value,
}

/// The data of one invocation's `Store`: the WASI context, the limits, and what the
/// plugin did during the call (writes, events, logs), held until the call ends.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: wasmtime_wasi_http::WasiHttpCtx,
    pub(crate) limiter: CallLimiter,
    pub(crate) call: CallState,
}

/// What a call sees and does, apart from WASI.
pub(crate) struct CallState {
    /// The capabilities the community granted the plugin.
    pub(crate) grants: crate::Grants,
    /// The capability the plugin used without a grant, which stopped the call.
    pub(crate) denied: Option<&'static str>,
    /// Where the call may send HTTP requests.
    pub(crate) http: http::HttpPolicy,
    pub(crate) namespace: Namespace,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) manifest: Arc<PreparedManifest>,
    pub(crate) config_json: Arc<str>,
    pub(crate) operation: String,
    pub(crate) request_id: String,
    /// Writes of this call: `Some` sets, `None` deletes.
    pub(crate) writes: BTreeMap<String, Option<Vec<u8>>>,
    pub(crate) write_bytes: usize,
    pub(crate) events: Vec<PendingEvent>,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) dropped_logs: usize,
}

impl HostState {
    /// Takes what the call did out of the state, leaving an empty call in its place
    /// (the state may serve a further call of a reused instance).
    pub(crate) fn take_call(&mut self) -> CallState {
        let empty = CallState {
            grants: self.call.grants,
            denied: None,
            http: self.call.http.clone(),
            namespace: self.call.namespace.clone(),
            store: self.call.store.clone(),
            manifest: self.call.manifest.clone(),
            config_json: self.call.config_json.clone(),
            operation: String::new(),
            request_id: String::new(),
            writes: BTreeMap::new(),
            write_bytes: 0,
            events: Vec::new(),
            logs: Vec::new(),
            dropped_logs: 0,
        };
        std::mem::replace(&mut self.call, empty)
    }
}

impl CallState {
    /// Stops the call (a trap) if `capability` is not granted: the plugin asked for it
    /// in its manifest and cannot do its work without it, and the community's admin
    /// chose not to give it.
    pub(crate) fn require(
        &mut self,
        capability: &'static str,
        granted: bool,
    ) -> wasmtime::Result<()> {
        if granted {
            return Ok(());
        }
        self.denied = Some(capability);
        Err(wasmtime::Error::msg(format!(
            "capability `{capability}` is not granted"
        )))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Adds WASI (locked down by the `WasiCtx` of each call) and every Courtyard interface.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    types::add_to_linker(linker)?;
    state::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    config::add_to_linker(linker)?;
    events::add_to_linker(linker)?;
    http::add_to_linker(linker)?;
    Ok(())
}
