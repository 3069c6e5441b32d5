//! One call, from instance to outcome: a fresh or warm instance in a `Store` with the
//! call's limits, the guest's `invoke`, its stdout and stderr as log records, and the
//! commit of its writes and events if it returned `ok` with a valid output.

use crate::admission::CallSetup;
use crate::bindings::courtyard::plugin::types::{CallContext, PluginError as WitPluginError};
use crate::host::{self, CallState, HostState};
use crate::warm::{Pipes, WarmInstance};
use crate::{
    EPOCH_TICK, EmittedEvent, Inner, Invocation, InvokeError, LoadedPlugin, LogLevel, Outcome,
    PluginErrorKind, limits,
};
use courtyard_store::{Batch, Namespace, QueueName};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;

impl Inner {
    /// Runs one call on the calling thread, which it blocks: the caller holds the call's
    /// [`Turn`](crate::slots::Turn) (its namespace, its community's share, a slot).
    /// `namespace` is the call's (community, plugin), the one its turn was taken for.
    pub(crate) fn run_call(
        &self,
        plugin: &Arc<LoadedPlugin>,
        namespace: Namespace,
        inv: Invocation,
        setup: CallSetup,
        durable: bool,
    ) -> Result<Outcome, InvokeError> {
        let limits = &self.config.limits;

        let CallSetup {
            config: config_json,
            grants,
            http_origins,
        } = setup;
        let call = CallState {
            grants,
            denied: None,
            http: host::http::HttpPolicy {
                allowed: http_origins,
                // A request may wait no longer than the whole call may run.
                timeout: limits.timeout,
            },
            namespace: namespace.clone(),
            store: self.store.clone(),
            manifest: plugin.manifest.clone(),
            config_json,
            operation: inv.operation.clone(),
            request_id: inv.request_id.clone(),
            writes: BTreeMap::new(),
            write_bytes: 0,
            events: Vec::new(),
            logs: Vec::new(),
            dropped_logs: 0,
        };
        let reuse = plugin.manifest.manifest().instance_reuse;
        let warm = match reuse {
            Some(_) => self.warm.take(&namespace, plugin),
            None => None,
        };
        ::metrics::counter!(
            "courtyard_plugin_instances_total",
            "kind" => if warm.is_some() { "warm" } else { "fresh" }
        )
        .increment(1);
        let (mut store, mut pipes, calls, instance) = match warm {
            Some(w) => {
                let mut store = w.store;
                store.data_mut().call = call;
                store.data_mut().limiter.memory_exceeded = false;
                (store, w.pipes, w.calls, Some(w.instance))
            }
            None => {
                let pipes = Pipes::new();
                // WASI locked down: no preopens, no environment, no arguments, no
                // network; stdout and stderr go to memory and then to the plugin's log.
                let wasi = WasiCtxBuilder::new()
                    .stdout(pipes.stdout.clone())
                    .stderr(pipes.stderr.clone())
                    .allow_tcp(false)
                    .allow_udp(false)
                    .allow_ip_name_lookup(false)
                    .build();
                let state = HostState {
                    wasi,
                    table: ResourceTable::new(),
                    http: wasmtime_wasi_http::WasiHttpCtx::new(),
                    limiter: limits::CallLimiter {
                        max_memory_bytes: limits.max_memory_bytes,
                        max_table_elements: 100_000,
                        memory_exceeded: false,
                    },
                    call,
                };
                let mut store = wasmtime::Store::new(&self.engine, state);
                store.limiter(|s| &mut s.limiter);
                store.epoch_deadline_trap();
                (store, pipes, 0, None)
            }
        };
        let ticks = limits.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));

        let now_ms = self.config.clock.now_ms();
        let ctx = CallContext {
            community: inv.community.clone(),
            plugin: inv.plugin.clone(),
            operation: inv.operation.clone(),
            idempotency_key: inv.idempotency_key.clone(),
            now_ms,
            request_id: inv.request_id.clone(),
        };
        let input = inv.input.to_string();
        let instance = match instance {
            Some(i) => Ok(i),
            None => plugin.pre.instantiate(&mut store),
        };
        let (instance, result) = match instance {
            Ok(i) => {
                let r = i.courtyard_plugin_handler().call_invoke(
                    &mut store,
                    &ctx,
                    &inv.operation,
                    &input,
                );
                (Some(i), r)
            }
            Err(e) => (None, Err(e)),
        };
        // The guest returned (with `ok` or with its own error): its instance is sound.
        // After a trap or a limit hit it is not, and is dropped.
        let returned = result.is_ok();

        // This call's stdout and stderr become log records, whatever the outcome.
        let (stdout_text, stderr_text) = pipes.take_new();
        let call = &mut store.data_mut().call;
        for line in stdout_text.lines().filter(|l| !l.trim().is_empty()) {
            call.record(
                LogLevel::Info,
                line.to_owned(),
                vec![("stream".into(), "stdout".into())],
            );
        }
        for line in stderr_text.lines().filter(|l| !l.trim().is_empty()) {
            call.record(
                LogLevel::Warn,
                line.to_owned(),
                vec![("stream".into(), "stderr".into())],
            );
        }
        let memory_exceeded = store.data().limiter.memory_exceeded;
        let data = store.data_mut().take_call();
        let outcome = self.finish(
            plugin,
            &inv,
            now_ms,
            data,
            result,
            memory_exceeded,
            &stderr_text,
        );
        // A plugin that failed because the store failed under it (its reads answered
        // `unavailable`) failed for the host's reason, not its own.
        let outcome = match outcome {
            Err(InvokeError::Plugin { .. }) => match self.store.health() {
                Err(failed) => Err(InvokeError::Store(failed)),
                Ok(()) => outcome,
            },
            other => other,
        };

        if returned
            && let (Some(reuse), Some(instance)) = (reuse, instance)
            && calls + 1 < reuse.max_calls
            && !pipes.nearly_full()
        {
            self.warm.put(
                namespace,
                WarmInstance::new(plugin.clone(), store, instance, pipes, calls + 1),
            );
        }
        let outcome = outcome?;
        // Durable before the caller hears "ok". Concurrent calls share the flush.
        if durable {
            self.store.sync()?;
        }
        Ok(outcome)
    }

    /// Turns what the guest returned into the call's outcome, and commits its writes
    /// and events if it succeeded.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        plugin: &LoadedPlugin,
        inv: &Invocation,
        now_ms: i64,
        data: CallState,
        result: wasmtime::Result<Result<String, WitPluginError>>,
        memory_exceeded: bool,
        stderr_text: &str,
    ) -> Result<Outcome, InvokeError> {
        let limits = &self.config.limits;
        let (plugin_name, operation) = (inv.plugin.clone(), inv.operation.clone());
        let output = match result {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => {
                let (kind, message) = match error {
                    WitPluginError::InvalidInput(m) => (PluginErrorKind::InvalidInput, m),
                    WitPluginError::NotFound(m) => (PluginErrorKind::NotFound, m),
                    WitPluginError::Conflict(m) => (PluginErrorKind::Conflict, m),
                    WitPluginError::Unavailable(m) => (PluginErrorKind::Unavailable, m),
                    WitPluginError::Internal(m) => (PluginErrorKind::Internal, m),
                };
                return Err(InvokeError::Plugin {
                    plugin: plugin_name,
                    operation,
                    kind,
                    message,
                });
            }
            Err(_) if data.denied.is_some() => {
                let err = InvokeError::CapabilityDenied {
                    community: inv.community.clone(),
                    plugin: plugin_name,
                    operation,
                    capability: data.denied.unwrap_or_default().to_owned(),
                };
                tracing::warn!(community = %inv.community, request_id = %inv.request_id, error = %err, "plugin call refused");
                return Err(err);
            }
            Err(error) => {
                let err = crate::error::classify(
                    error,
                    memory_exceeded,
                    limits,
                    plugin_name,
                    operation,
                    stderr_text,
                );
                tracing::warn!(community = %inv.community, request_id = %inv.request_id, error = %err, "plugin call failed");
                return Err(err);
            }
        };
        let output: serde_json::Value =
            serde_json::from_str(&output).map_err(|e| InvokeError::BadOutput {
                plugin: plugin_name.clone(),
                operation: operation.clone(),
                message: e.to_string(),
            })?;
        // The output schema is part of the plugin's contract with its callers: an output
        // that breaks it is a plugin bug, and the call's writes are not committed.
        if let Some(Err(problems)) = plugin.manifest.check_output(&operation, &output) {
            let err = InvokeError::BadOutput {
                plugin: plugin_name,
                operation,
                message: format!("the output does not match the output schema: {problems}"),
            };
            tracing::warn!(community = %inv.community, request_id = %inv.request_id, error = %err, "plugin call failed");
            return Err(err);
        }

        let CallState {
            namespace,
            writes,
            events,
            logs,
            ..
        } = data;
        let events: Vec<EmittedEvent> = events
            .into_iter()
            .map(|e| EmittedEvent {
                kind: e.kind,
                payload: e.payload,
                source: inv.plugin.clone(),
                at_ms: now_ms,
                request_id: inv.request_id.clone(),
                depth: inv.depth.saturating_add(1),
                id: None,
                chain: inv.chain,
            })
            .collect();
        let mut batch = Batch::default();
        if !writes.is_empty() {
            batch.writes.insert(namespace, writes);
        }
        for event in &events {
            let bytes =
                serde_json::to_vec(event).map_err(|e| InvokeError::Internal(e.to_string()))?;
            batch
                .appends
                .push((QueueName::events(&inv.community), bytes));
        }
        if !batch.is_empty() {
            self.store.commit(batch)?;
        }
        Ok(Outcome {
            output,
            logs,
            events,
        })
    }
}
