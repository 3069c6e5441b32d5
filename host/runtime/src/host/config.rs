//! `courtyard:plugin/config`: the community's configuration of the plugin.

use super::HostState;
use crate::bindings::courtyard::plugin::config;
use wasmtime::component::{HasSelf, Linker};

impl config::Host for HostState {
    fn get(&mut self) -> wasmtime::Result<String> {
        Ok(self.call.config_json.to_string())
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    config::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
