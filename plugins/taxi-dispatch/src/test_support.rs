//! Small helpers the unit tests share over the SDK's in-memory store and the manifest.

use courtyard_sdk::Value;
use courtyard_sdk::testing::MemoryStore;

/// The keys of `store` under a prefix.
pub fn keys(store: &MemoryStore, prefix: &str) -> Vec<String> {
    store
        .data
        .keys()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect()
}

/// The kinds of the events `store` holds.
pub fn event_kinds(store: &MemoryStore) -> Vec<&str> {
    store.events.iter().map(|(k, _)| k.as_str()).collect()
}

/// What the host would refuse and the in-memory store lets through: every key is 1 to
/// 512 bytes long and every event payload is a JSON object.
pub fn check_store(store: &MemoryStore) {
    for key in store.data.keys() {
        assert!(!key.is_empty() && key.len() <= 512, "bad key {key:?}");
    }
    for (kind, payload) in &store.events {
        assert!(payload.is_object(), "event payloads are objects: {kind}");
    }
}

/// The plugin's `manifest.json`.
pub fn manifest() -> Value {
    serde_json::from_str(include_str!("../manifest.json")).expect("manifest")
}

/// The names declared under `section` of the manifest (`operations`, `events`), sorted.
pub fn declared(section: &str) -> Vec<String> {
    let mut names: Vec<String> = manifest()[section]
        .as_object()
        .unwrap_or_else(|| panic!("manifest {section}"))
        .keys()
        .cloned()
        .collect();
    names.sort_unstable();
    names
}

/// `names`, sorted, to compare with [`declared`].
pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
    names.sort_unstable();
    names
}
