//! The runtime's metrics (the `metrics` facade; the binary installs the Prometheus
//! recorder and the API serves `/metrics`).
//!
//! - `courtyard_invocations_total{community, plugin, operation, outcome}`
//! - `courtyard_invocation_duration_seconds{plugin, operation}` (histogram)
//! - `courtyard_plugin_limit_hits_total{plugin, limit}`: `timeout`, `memory`, `stack`, `trap`
//! - `courtyard_plugin_instances_total{kind}`: `fresh` or `warm`
//!
//! Names a caller made up (an unknown plugin or operation) are not used as labels.

use crate::{InvokeError, Outcome, PluginErrorKind};
use std::time::Duration;

/// What became of a call, as a label value.
fn outcome(result: &Result<Outcome, InvokeError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => match e {
            InvokeError::UnknownPlugin { .. } | InvokeError::UnknownOperation { .. } => "unknown",
            InvokeError::InvalidInput { .. } => "invalid-input",
            InvokeError::Plugin { kind, .. } => match kind {
                PluginErrorKind::InvalidInput => "invalid-input",
                PluginErrorKind::NotFound => "not-found",
                PluginErrorKind::Conflict => "conflict",
                PluginErrorKind::Unavailable => "unavailable",
                PluginErrorKind::Internal => "internal",
            },
            InvokeError::Timeout { .. } => "timeout",
            InvokeError::MemoryLimit { .. } => "memory-limit",
            InvokeError::StackOverflow { .. } => "stack-overflow",
            InvokeError::Trap { .. } => "trap",
            InvokeError::BadOutput { .. } => "bad-output",
            InvokeError::NotEnabled { .. } => "not-enabled",
            InvokeError::VersionUnavailable { .. } => "version-unavailable",
            InvokeError::CapabilityDenied { .. } => "capability-denied",
            InvokeError::Busy { .. } => "busy",

            InvokeError::Store(_) | InvokeError::Internal(_) => "host-error",
        },
    }
}

pub(crate) fn record(
    community: &str,
    plugin: &str,
    operation: &str,
    result: &Result<Outcome, InvokeError>,
    elapsed: Duration,
) {
    let outcome = outcome(result);
    if outcome == "unknown" {
        metrics::counter!("courtyard_invocations_total", "outcome" => "unknown").increment(1);
        return;
    }
    let (community, plugin, operation) = (
        community.to_owned(),
        plugin.to_owned(),
        operation.to_owned(),
    );
    metrics::counter!(
        "courtyard_invocations_total",
        "community" => community,
        "plugin" => plugin.clone(),
        "operation" => operation.clone(),
        "outcome" => outcome
    )
    .increment(1);
    metrics::histogram!(
        "courtyard_invocation_duration_seconds",
        "plugin" => plugin.clone(),
        "operation" => operation
    )
    .record(elapsed.as_secs_f64());
    let limit = match outcome {
        "timeout" => "timeout",
        "memory-limit" => "memory",
        "stack-overflow" => "stack",
        "trap" => "trap",
        _ => return,
    };
    metrics::counter!("courtyard_plugin_limit_hits_total", "plugin" => plugin, "limit" => limit)
        .increment(1);
}
