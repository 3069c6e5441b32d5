//! The one `bindgen!` of the host: Rust types and traits for the `plugin` world of `wit/`.
//!
//! Every import is `trappable`: a host function returns `wasmtime::Result`, whose `Err`
//! traps the guest. That is reserved for host bugs and exceeded limits; everything a
//! plugin can handle is a WIT `result`.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../../wit",
    imports: { default: trappable },
});
