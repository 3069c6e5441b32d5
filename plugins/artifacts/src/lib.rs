//! The guest plugins of `plugins/`, built for `wasm32-wasip2` by this crate's build
//! script and embedded here: the standard plugins that ship with the host, and the
//! misbehaving fixtures of the tests, in
//! Rust, Python and JavaScript.

/// One built guest plugin.
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    /// The plugin's name.
    pub name: &'static str,
    /// The component's bytes.
    pub component: &'static [u8],
    /// Where the component was built.
    pub component_path: &'static str,
    /// The text of the plugin's `manifest.json`.
    pub manifest: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The plugins a district starts with (the fixtures are left out).
pub const STANDARD: &[Artifact] = &[
    COUNTER,
    CANTEEN,
    LIBRARY_SYNC,
    VISITOR_ACCESS,
    TAXI_DISPATCH,
    ALERT_RULES,
    TRASH_BINS,
    LIGHTS,
];

/// The misbehaving fixtures of the tests, one per guest language.
pub const FIXTURES: &[Artifact] = &[MISBEHAVE, MISBEHAVE_PY, MISBEHAVE_JS];
