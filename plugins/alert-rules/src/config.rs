//! The community's configuration of the plugin (the `config` schema of `manifest.json`;
//! the host merges the community's values over the defaults).

use serde::Deserialize;

/// The per-community configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Templates installed as rules (with the template's id) the first time the plugin
    /// serves a call in the community, and whenever one is added to this list later. A
    /// template is installed once: deleting its rule does not bring it back.
    pub default_templates: Vec<String>,
    /// Whether staff must acknowledge an alarm before clearing it.
    pub require_ack_before_clear: bool,
    /// The most rules a community may have.
    pub max_rules: u32,
    /// How long `purge` keeps cleared alarms, in days.
    pub alarm_retention_days: u32,
    /// How long replays (idempotency keys) and event ids are remembered, in days.
    pub replay_retention_days: u32,
    /// How far ahead of the host's time an event's `at_ms` may be (device clocks drift);
    /// `ingest` refuses events stamped later than that.
    pub max_clock_skew_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_templates: crate::templates::all()
                .into_iter()
                .map(|t| t.id.to_owned())
                .collect(),
            require_ack_before_clear: true,
            max_rules: 200,
            alarm_retention_days: 90,
            replay_retention_days: 7,
            max_clock_skew_seconds: 300,
        }
    }
}

impl Config {
    /// `alarm_retention_days` in milliseconds.
    pub fn alarm_retention_ms(&self) -> i64 {
        i64::from(self.alarm_retention_days) * 86_400_000
    }
    /// `replay_retention_days` in milliseconds.
    pub fn replay_retention_ms(&self) -> i64 {
        i64::from(self.replay_retention_days) * 86_400_000
    }
    /// `max_clock_skew_seconds` in milliseconds.
    pub fn max_clock_skew_ms(&self) -> i64 {
        i64::from(self.max_clock_skew_seconds) * 1000
    }
}
