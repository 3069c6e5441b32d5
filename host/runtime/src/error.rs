//! Why a call failed: [`InvokeError`], and the classification of what wasmtime reports
//! when a guest stops (a limit hit, a trap) into its variants.

use crate::{Limits, limits};
use courtyard_registry::InputError;
use courtyard_store::StoreError;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasmtime::Trap;

/// The error variants a plugin can return (`plugin-error` in `wit/types.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginErrorKind {
    /// The input is wrong.
    InvalidInput,
    /// Something the input names does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// A dependency is unavailable; retry later.
    Unavailable,
    /// A bug in the plugin.
    Internal,
}

/// Why an invocation failed. Each variant is a different thing for the caller to do.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No plugin of that name is loaded.
    #[error("no plugin named {plugin:?}")]
    UnknownPlugin {
        /// The name asked for.
        plugin: String,
    },
    /// The plugin has no such operation.
    #[error("plugin {plugin} has no operation {operation:?}")]
    UnknownOperation {
        /// The plugin.
        plugin: String,
        /// The operation asked for.
        operation: String,
    },
    /// The input does not satisfy the operation's input schema.
    #[error("invalid input for {plugin}/{operation}: {error}")]
    InvalidInput {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The problems, with JSON pointers.
        error: InputError,
    },
    /// The plugin returned an error.
    #[error("{plugin}/{operation}: {message}")]
    Plugin {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// Which error.
        kind: PluginErrorKind,
        /// The plugin's message.
        message: String,
    },
    /// The call ran past its CPU deadline.
    #[error("{plugin}/{operation} ran past its deadline of {} ms", limit.as_millis())]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The deadline.
        limit: Duration,
    },
    /// The call tried to grow its memory past the cap.
    #[error("{plugin}/{operation} exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The cap.
        limit: usize,
    },
    /// The call overflowed the wasm stack (recursion too deep).
    #[error("{plugin}/{operation} overflowed its stack")]
    StackOverflow {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
    },
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access…).
    #[error("{plugin}/{operation} trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The trap, and the last line the plugin wrote to stderr (a panic message).
        message: String,
    },
    /// The plugin returned an output that is not JSON, or that breaks its output schema.
    #[error("{plugin}/{operation} returned a bad output: {message}")]
    BadOutput {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The parse error.
        message: String,
    },
    /// The store failed while committing the call's writes.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// The community does not run the plugin (an admission gate is set and said no).
    #[error("plugin {plugin} is not enabled in community {community}")]
    NotEnabled {
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
    },
    /// The community pinned a version of the plugin that the host does not have.
    #[error("community {community} pins {plugin} {pinned}, but the host has {plugin} {loaded}")]
    VersionUnavailable {
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
        /// The version pinned.
        pinned: String,
        /// The version loaded.
        loaded: String,
    },
    /// The plugin used a capability its community did not grant it; the call was
    /// stopped there and nothing it did was kept.
    #[error(
        "{plugin}/{operation} used the capability `{capability}`, which community {community} has not granted it"
    )]
    CapabilityDenied {
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The capability (`state`, `events`).
        capability: String,
    },
    /// The call waited longer than the runtime allows for its turn (its namespace, its
    /// community's share of the slots, or a free slot) and gave up before it ran:
    /// nothing happened; try again later.
    #[error(
        "{plugin} in community {community} is busy: the call waited {} ms for its turn and gave up without running",
        waited.as_millis()
    )]
    Busy {
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// A bug in the host.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a failed guest call was: a limit hit, a trap.
pub(crate) fn classify(
    error: wasmtime::Error,
    memory_exceeded: bool,
    limits: &Limits,
    plugin: String,
    operation: String,
    stderr: &str,
) -> InvokeError {
    if memory_exceeded
        || error
            .downcast_ref::<limits::MemoryLimitExceeded>()
            .is_some()
    {
        return InvokeError::MemoryLimit {
            plugin,
            operation,
            limit: limits.max_memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout {
            plugin,
            operation,
            limit: limits.timeout,
        },
        Some(Trap::StackOverflow) => InvokeError::StackOverflow { plugin, operation },
        Some(trap) => {
            let mut message = trap.to_string();
            // The end of stderr, where a Rust panic message is (without the note on
            // RUST_BACKTRACE, which means nothing inside a sandbox).
            let tail: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
                .collect();
            let tail = tail[tail.len().saturating_sub(2)..].join(" ");
            if !tail.is_empty() {
                message.push_str(&format!(" (stderr: {tail})"));
            }
            InvokeError::Trap {
                plugin,
                operation,
                message,
            }
        }
        None => InvokeError::Trap {
            plugin,
            operation,
            message: format!("{error:#}"),
        },
    }
}
