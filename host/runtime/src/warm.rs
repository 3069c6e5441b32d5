//! Warm instances: the pool of idle instances kept for the next call of the same
//! (community, plugin), for plugins whose manifest allows reuse (`instance_reuse`).
//!
//! The contract: an instance serves one namespace only, one call at a time (the caller
//! holds the namespace's turn while it has the instance out of the pool); it goes back
//! only after a call that returned (never after a trap or a limit hit), and never after
//! its `max_calls`; a plugin reloaded or reconfigured leaves its old instances unused.
//! The pool is bounded over the district, the least recently used instance making room.

use crate::bindings;
use crate::host::HostState;
use crate::{LoadedPlugin, MAX_CAPTURED_OUTPUT};
use courtyard_store::Namespace;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// The captured stdout and stderr of an instance, and how much of each earlier calls
/// have already taken.
pub(crate) struct Pipes {
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    stdout_seen: usize,
    stderr_seen: usize,
}

impl Pipes {
    pub(crate) fn new() -> Self {
        Self {
            stdout: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
            stderr: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
            stdout_seen: 0,
            stderr_seen: 0,
        }
    }

    /// What was written since the last call, as text.
    pub(crate) fn take_new(&mut self) -> (String, String) {
        let out = self.stdout.contents();
        let err = self.stderr.contents();
        let new_out =
            String::from_utf8_lossy(out.get(self.stdout_seen..).unwrap_or_default()).into_owned();
        let new_err =
            String::from_utf8_lossy(err.get(self.stderr_seen..).unwrap_or_default()).into_owned();
        self.stdout_seen = out.len();
        self.stderr_seen = err.len();
        (new_out, new_err)
    }

    /// Whether a further call could run out of room to write (the pipes are not
    /// emptied; an instance is retired before they fill).
    pub(crate) fn nearly_full(&self) -> bool {
        self.stdout_seen.max(self.stderr_seen) > MAX_CAPTURED_OUTPUT / 2
    }
}

/// An instance kept for the next call of the same (community, plugin).
pub(crate) struct WarmInstance {
    pub(crate) plugin: Arc<LoadedPlugin>,
    pub(crate) store: wasmtime::Store<HostState>,
    pub(crate) instance: bindings::Plugin,
    pub(crate) pipes: Pipes,
    pub(crate) calls: u32,
    last_used: u64,
}

/// The bounded pool of warm instances, at most one per namespace.
pub(crate) struct WarmPool {
    max: usize,
    instances: Mutex<HashMap<Namespace, WarmInstance>>,
    clock: AtomicU64,
}

impl WarmPool {
    /// A pool of at most `max` instances (0: reuse is off).
    pub(crate) fn new(max: u32) -> Self {
        Self {
            max: max as usize,
            instances: Mutex::default(),
            clock: AtomicU64::new(0),
        }
    }

    /// Takes the warm instance of `namespace`, if there is one of this very plugin (a
    /// reloaded plugin's old instances are dropped).
    pub(crate) fn take(
        &self,
        namespace: &Namespace,
        plugin: &Arc<LoadedPlugin>,
    ) -> Option<WarmInstance> {
        let warm = self
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(namespace)?;
        Arc::ptr_eq(&warm.plugin, plugin).then_some(warm)
    }

    /// Keeps an instance for the next call of its namespace; the least recently used
    /// one goes when the pool is full.
    pub(crate) fn put(&self, namespace: Namespace, mut instance: WarmInstance) {
        if self.max == 0 {
            return;
        }
        instance.last_used = self.clock.fetch_add(1, Ordering::Relaxed);
        let evicted = {
            let mut warm = self
                .instances
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let evicted = if warm.len() >= self.max && !warm.contains_key(&namespace) {
                let oldest = warm
                    .iter()
                    .min_by_key(|(_, w)| w.last_used)
                    .map(|(ns, _)| ns.clone());
                oldest.and_then(|ns| warm.remove(&ns))
            } else {
                None
            };
            warm.insert(namespace, instance);
            evicted
        };
        // Dropped outside the lock.
        drop(evicted);
    }

    /// Drops the warm instance of `namespace`, if there is one.
    pub(crate) fn remove(&self, namespace: &Namespace) {
        let removed = self
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(namespace);
        drop(removed);
    }
}

impl WarmInstance {
    /// An instance that served `calls` calls, to be put back into the pool.
    pub(crate) fn new(
        plugin: Arc<LoadedPlugin>,
        store: wasmtime::Store<HostState>,
        instance: bindings::Plugin,
        pipes: Pipes,
        calls: u32,
    ) -> Self {
        Self {
            plugin,
            store,
            instance,
            pipes,
            calls,
            last_used: 0,
        }
    }
}
