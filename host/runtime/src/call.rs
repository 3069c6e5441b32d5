//! What a call is and what it returns: the public types of one invocation.

use serde::{Deserialize, Serialize};

/// One call of a plugin operation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The community the call is for (a valid community id).
    pub community: String,
    /// The plugin.
    pub plugin: String,
    /// The operation.
    pub operation: String,
    /// The input document.
    pub input: serde_json::Value,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The request id, for logs.
    pub request_id: String,
    /// The community's configuration of the plugin (merged over the defaults);
    /// `None` means the manifest's defaults.
    pub config: Option<serde_json::Value>,
    /// How many events led to this call: 0 for a call from a person or a device, the
    /// triggering event's depth for a workflow step. Events the call emits get one
    /// more, which bounds chains of events (see the workflow engine).
    pub depth: u32,
    /// The chain of events this call belongs to (the sequence number of the event that
    /// started it), if any: events the call emits carry it on, so that the workflow
    /// engine can bound how many runs one chain starts.
    pub chain: Option<u64>,
}

/// Log levels of plugin log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (also: a line on stdout).
    Info,
    /// Something to look at (also: a line on stderr).
    Warn,
    /// A failure.
    Error,
}

/// One log record of a plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Key-value fields.
    pub fields: Vec<(String, String)>,
}

/// An event a call emitted, as recorded in the community's event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmittedEvent {
    /// The kind, declared in the plugin's manifest.
    pub kind: String,
    /// The payload (a JSON object).
    pub payload: serde_json::Value,
    /// The plugin that emitted it.
    pub source: String,
    /// The call's "now".
    pub at_ms: i64,
    /// The call's request id.
    pub request_id: String,
    /// How many events led to it (see [`Invocation::depth`]); 0 for an event posted
    /// by a device.
    #[serde(default)]
    pub depth: u32,
    /// The idempotency id a device gave the event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The chain of events it belongs to (see [`Invocation::chain`]); none when it
    /// starts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<u64>,
}

/// The result of a successful call.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The output document.
    pub output: serde_json::Value,
    /// The call's log records (stdout and stderr lines included).
    pub logs: Vec<LogRecord>,
    /// The events the call emitted (now recorded in the community's stream).
    pub events: Vec<EmittedEvent>,
}
