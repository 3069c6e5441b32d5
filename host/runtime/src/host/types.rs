//! `courtyard:plugin/types`: types only, no functions.

use super::HostState;
use crate::bindings::courtyard::plugin::types;
use wasmtime::component::{HasSelf, Linker};

impl types::Host for HostState {}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}
