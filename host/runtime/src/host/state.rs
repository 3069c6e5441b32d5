//! `courtyard:plugin/state`: the per-(community, plugin) key-value namespace, with the
//! call's writes held in an overlay until the call returns `ok`.

use super::{CallState, HostState};
use crate::bindings::courtyard::plugin::state::{self, Entry, StateError};
use courtyard_store::StoreError;
use wasmtime::component::{HasSelf, Linker};

/// Longest key, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes.
pub(crate) const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Most bytes (keys and values) one call may write.
pub(crate) const MAX_CALL_WRITE_BYTES: usize = 8 * 1024 * 1024;
/// Most entries one `scan` returns.
pub(crate) const MAX_SCAN: u32 = 1000;

fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() {
        return Err(StateError::InvalidKey("keys may not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StateError::InvalidKey(format!(
            "the key has {} bytes; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        )));
    }
    Ok(())
}

fn unavailable(e: StoreError) -> StateError {
    tracing::error!(error = %e, "state read failed");
    StateError::Unavailable("the store could not be read".into())
}

impl CallState {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        check_key(key)?;
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.clone());
        }
        self.store.get(&self.namespace, key).map_err(unavailable)
    }

    fn write(&mut self, key: String, value: Option<Vec<u8>>) -> Result<(), StateError> {
        check_key(&key)?;
        let size = key.len() + value.as_ref().map_or(0, Vec::len);
        if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(StateError::TooLarge(format!(
                "a value may have at most {MAX_VALUE_BYTES} bytes"
            )));
        }
        if self.write_bytes + size > MAX_CALL_WRITE_BYTES {
            return Err(StateError::TooLarge(format!(
                "a call may write at most {MAX_CALL_WRITE_BYTES} bytes"
            )));
        }
        self.write_bytes += size;
        self.writes.insert(key, value);
        Ok(())
    }

    /// The store's entries merged with this call's writes.
    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StateError> {
        let limit = limit.min(MAX_SCAN) as usize;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let in_range = |k: &str| k.starts_with(prefix) && start_after.is_none_or(|a| k > a);
        let pending: Vec<(&String, &Option<Vec<u8>>)> =
            self.writes.iter().filter(|(k, _)| in_range(k)).collect();
        // Each pending write can hide at most one stored entry, so this many stored
        // entries always suffice to fill `limit` after the merge.
        let stored = self
            .store
            .scan(&self.namespace, prefix, start_after, limit + pending.len())
            .map_err(unavailable)?;
        let mut merged: std::collections::BTreeMap<String, Vec<u8>> = stored.into_iter().collect();
        for (k, v) in pending {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged
            .into_iter()
            .take(limit)
            .map(|(key, value)| Entry { key, value })
            .collect())
    }
}

impl state::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, StateError>> {
        self.call.require("state", self.call.grants.state)?;
        Ok(self.call.get(&key))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), StateError>> {
        self.call.require("state", self.call.grants.state)?;
        Ok(self.call.write(key, Some(value)))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), StateError>> {
        self.call.require("state", self.call.grants.state)?;
        Ok(self.call.write(key, None))
    }

    fn scan(
        &mut self,
        prefix: String,
        start_after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<Entry>, StateError>> {
        self.call.require("state", self.call.grants.state)?;
        Ok(self.call.scan(&prefix, start_after.as_deref(), limit))
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    state::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
