//! The community's configuration of the plugin (the `config` schema of `manifest.json`) and
//! the context of one call.

use serde::Deserialize;

/// One day in milliseconds: loan periods and overdue days are counted in these.
pub const DAY_MS: i64 = 86_400_000;

/// The community's configuration. Every field has a default (the same as in the manifest),
/// so a community that configured nothing gets a working shelf.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many days a loan runs (and how far a renewal extends it from the renewal day).
    #[serde(default = "defaults::loan_days")]
    pub loan_days: u32,
    /// How many books one card may have on loan at once.
    #[serde(default = "defaults::max_loans")]
    pub max_loans: u32,
    /// How many times one loan may be renewed.
    #[serde(default = "defaults::max_renewals")]
    pub max_renewals: u32,
    /// A loan overdue by more than this many days cannot be renewed (0: an overdue loan
    /// cannot be renewed at all).
    #[serde(default = "defaults::renew_overdue_days")]
    pub renew_overdue_days: u32,
    /// Whether a card with an overdue book is refused new loans.
    #[serde(default = "defaults::block_when_overdue")]
    pub block_when_overdue: bool,
    /// The shelf's slots are numbered 1 to `slot_count`.
    #[serde(default = "defaults::slot_count")]
    pub slot_count: u32,
    /// The overdue sweep reminds again about a still-overdue loan after this many days
    /// (0: it notifies once per loan).
    #[serde(default = "defaults::overdue_reminder_days")]
    pub overdue_reminder_days: u32,
    /// How many days replay records of idempotency keys are kept; `sweep-overdue` purges
    /// older ones, a slice per call.
    #[serde(default = "defaults::replay_retention_days")]
    pub replay_retention_days: u32,
    /// The base URL of the city library's change feed (`https://library.example/api`);
    /// `sync` with no page fetches `<library_url>/changes?cursor=…` itself. None: pages
    /// are pushed to `sync` by the caller.
    #[serde(default)]
    pub library_url: Option<String>,
}

mod defaults {
    pub fn loan_days() -> u32 {
        30
    }
    pub fn max_loans() -> u32 {
        5
    }
    pub fn max_renewals() -> u32 {
        2
    }
    pub fn renew_overdue_days() -> u32 {
        3
    }
    pub fn block_when_overdue() -> bool {
        true
    }
    pub fn slot_count() -> u32 {
        120
    }
    pub fn overdue_reminder_days() -> u32 {
        7
    }
    pub fn replay_retention_days() -> u32 {
        7
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            loan_days: defaults::loan_days(),
            max_loans: defaults::max_loans(),
            max_renewals: defaults::max_renewals(),
            renew_overdue_days: defaults::renew_overdue_days(),
            block_when_overdue: defaults::block_when_overdue(),
            slot_count: defaults::slot_count(),
            overdue_reminder_days: defaults::overdue_reminder_days(),
            replay_retention_days: defaults::replay_retention_days(),
            library_url: None,
        }
    }
}

impl Config {
    /// The loan period in milliseconds.
    pub fn loan_ms(&self) -> i64 {
        i64::from(self.loan_days) * DAY_MS
    }

    /// The replay retention in milliseconds.
    pub fn replay_retention_ms(&self) -> i64 {
        i64::from(self.replay_retention_days) * DAY_MS
    }
}

/// How to fetch a URL: its status and body (the host's outgoing HTTP in the component,
/// a stand-in in the tests).
#[derive(Clone, Copy)]
pub struct Fetch<'a>(pub &'a FetchFn<'a>);

/// Fetches a URL: its status and body.
pub type FetchFn<'a> = dyn Fn(&str) -> Result<(u16, Vec<u8>), courtyard_sdk::Error> + 'a;

impl std::fmt::Debug for Fetch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fetch")
    }
}

/// What one operation knows about its call: the host's "now", the caller's idempotency
/// key, the community's configuration, and how to reach the library.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Milliseconds since the Unix epoch (UTC), from the host: the only clock.
    pub now_ms: i64,
    /// The caller's `Idempotency-Key`, if any.
    pub key: Option<&'a str>,
    /// The community's configuration.
    pub config: &'a Config,
    /// How to fetch from the library (none: no outgoing HTTP).
    pub fetch: Option<Fetch<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn manifest() -> Value {
        serde_json::from_str(include_str!("../manifest.json")).expect("manifest.json is JSON")
    }

    #[test]
    fn the_manifest_defaults_are_the_rust_defaults() {
        let manifest = manifest();
        let props = manifest["config"]["properties"]
            .as_object()
            .expect("config properties");
        let mut defaults = serde_json::Map::new();
        for (name, prop) in props {
            let default = prop
                .get("default")
                .unwrap_or_else(|| panic!("config property {name} has no default"));
            defaults.insert(name.clone(), default.clone());
        }
        let parsed: Config = serde_json::from_value(Value::Object(defaults)).expect("fits");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn an_empty_config_is_the_default_and_unknown_fields_are_refused() {
        let parsed: Config = serde_json::from_str("{}").expect("empty config");
        assert_eq!(parsed, Config::default());
        assert!(serde_json::from_str::<Config>(r#"{"loan_dayz": 3}"#).is_err());
    }

    #[test]
    fn loan_ms_counts_days() {
        let config = Config {
            loan_days: 2,
            ..Config::default()
        };
        assert_eq!(config.loan_ms(), 2 * DAY_MS);
    }
}
