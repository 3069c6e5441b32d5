//! The community's configuration of the plugin (the `config` schema of `manifest.json`;
//! the host merges the community's values over the defaults).

use serde::Deserialize;

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60 * 1000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// The configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How long a registration waits for the resident's answer before it expires
    /// (it also expires when its window ends first). Fixed at registration.
    #[serde(default = "default_pending_ttl_minutes")]
    pub pending_ttl_minutes: u32,
    /// How long before the start of the window a confirmed pass already opens the gate.
    #[serde(default = "default_early_entry_minutes")]
    pub early_entry_minutes: u32,
    /// The longest visit window a visitor may ask for; `None`: no limit.
    #[serde(default)]
    pub max_window_days: Option<u32>,
    /// How many open (pending or confirmed) visits one phone, or one face reference,
    /// may have at a time.
    #[serde(default = "default_max_open")]
    pub max_open_visits_per_visitor: u32,
    /// Whether a registration must carry a face reference.
    #[serde(default)]
    pub require_face_ref: bool,
    /// How long closed visits and gate checks are kept before `expire-due` removes them.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_pending_ttl_minutes() -> u32 {
    24 * 60
}
fn default_early_entry_minutes() -> u32 {
    15
}
fn default_max_open() -> u32 {
    5
}
fn default_retention_days() -> u32 {
    180
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pending_ttl_minutes: default_pending_ttl_minutes(),
            early_entry_minutes: default_early_entry_minutes(),
            max_window_days: None,
            max_open_visits_per_visitor: default_max_open(),
            require_face_ref: false,
            retention_days: default_retention_days(),
        }
    }
}

impl Config {
    /// [`Config::pending_ttl_minutes`] in milliseconds.
    pub fn pending_ttl_ms(&self) -> i64 {
        i64::from(self.pending_ttl_minutes) * MINUTE_MS
    }
    /// [`Config::early_entry_minutes`] in milliseconds.
    pub fn early_entry_ms(&self) -> i64 {
        i64::from(self.early_entry_minutes) * MINUTE_MS
    }
    /// [`Config::retention_days`] in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        i64::from(self.retention_days) * DAY_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn manifest() -> Value {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifest.json"))
            .expect("manifest.json");
        serde_json::from_str(&text).expect("manifest is JSON")
    }

    #[test]
    fn the_manifest_defaults_are_the_rust_defaults() {
        let manifest = manifest();
        let props = manifest["config"]["properties"]
            .as_object()
            .expect("config properties");
        let defaults: serde_json::Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), v["default"].clone()))
            .collect();
        assert!(
            props.values().all(|p| p.get("default").is_some()),
            "every config field has a default"
        );
        let parsed: Config = serde_json::from_value(Value::Object(defaults)).expect("parses");
        assert_eq!(parsed, Config::default());
        let empty: Config = serde_json::from_value(json!({})).expect("parses");
        assert_eq!(empty, Config::default());
    }

    #[test]
    fn units_convert() {
        let c = Config::default();
        assert_eq!(c.pending_ttl_ms(), DAY_MS);
        assert_eq!(c.early_entry_ms(), 15 * MINUTE_MS);
        assert_eq!(c.retention_ms(), 180 * DAY_MS);
    }
}
