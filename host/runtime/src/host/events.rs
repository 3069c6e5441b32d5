//! `courtyard:plugin/events`: events emitted by a call, recorded if it returns `ok`.

use super::{HostState, PendingEvent};
use crate::bindings::courtyard::plugin::events::{self, EmitError};
use wasmtime::component::{HasSelf, Linker};

/// At most this many events per call.
pub(crate) const MAX_EVENTS_PER_CALL: usize = 64;
/// At most this many bytes of payload per event.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

impl events::Host for HostState {
    fn emit(&mut self, kind: String, payload: String) -> wasmtime::Result<Result<(), EmitError>> {
        let call = &mut self.call;
        call.require("events", call.grants.events)?;
        if !call.manifest.declares_event(&kind) {
            return Ok(Err(EmitError::Invalid(format!(
                "event kind {kind:?} is not declared in the manifest of {}",
                call.namespace.plugin()
            ))));
        }
        if call.events.len() >= MAX_EVENTS_PER_CALL {
            return Ok(Err(EmitError::TooMany(format!(
                "a call may emit at most {MAX_EVENTS_PER_CALL} events"
            ))));
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Ok(Err(EmitError::Invalid(format!(
                "the payload has {} bytes; at most {MAX_PAYLOAD_BYTES} are allowed",
                payload.len()
            ))));
        }
        let payload: serde_json::Value = match serde_json::from_str(&payload) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => {
                return Ok(Err(EmitError::Invalid(
                    "the payload must be a JSON object".into(),
                )));
            }
            Err(e) => {
                return Ok(Err(EmitError::Invalid(format!(
                    "the payload is not JSON: {e}"
                ))));
            }
        };
        call.events.push(PendingEvent { kind, payload });
        Ok(Ok(()))
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    events::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
