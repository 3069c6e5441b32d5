//! The community's configuration of the plugin (the `config` schema of `manifest.json`).

use serde::Deserialize;

/// How a community dispatches rides. Every field has a default (the same as in the
/// manifest), so a community that configures nothing gets a working dispatcher.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Radius of the first offer round, in metres.
    pub initial_radius_m: u32,
    /// Each further round multiplies the radius by this factor (1 keeps it).
    pub radius_growth: f64,
    /// The radius never grows beyond this, in metres.
    pub max_radius_m: u32,
    /// How many drivers (the nearest ones not yet offered the ride) each round offers it to.
    pub drivers_per_round: u32,
    /// How long a round waits for an accept before the next round starts, in seconds.
    pub offer_timeout_s: u32,
    /// How many rounds are tried before the ride is escalated to staff.
    pub max_rounds: u32,
    /// A driver position older than this is stale: the driver gets no offers, in seconds.
    pub position_max_age_s: u32,
    /// How many rides one screen may have waiting (offering, escalated or accepted).
    pub max_open_rides_per_screen: u32,
    /// How long idempotency replay records are kept before `tick` purges them, in hours.
    pub replay_retention_h: u32,
    /// A driver not heard from (no report) for this long is removed by `tick`, unless a
    /// ride holds it, in hours.
    pub driver_retention_h: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            initial_radius_m: 2000,
            radius_growth: 2.0,
            max_radius_m: 10_000,
            drivers_per_round: 3,
            offer_timeout_s: 45,
            max_rounds: 3,
            position_max_age_s: 120,
            max_open_rides_per_screen: 1,
            replay_retention_h: 48,
            driver_retention_h: 168,
        }
    }
}

impl Config {
    /// The radius of `round` (1-based): the initial radius times the growth factor per
    /// round after the first, capped at `max_radius_m`, in whole metres.
    pub fn radius_for_round(&self, round: u32) -> u32 {
        let exponent = i32::try_from(round.saturating_sub(1)).unwrap_or(i32::MAX);
        let growth = if self.radius_growth.is_finite() && self.radius_growth >= 1.0 {
            self.radius_growth
        } else {
            1.0
        };
        let radius = f64::from(self.initial_radius_m) * growth.powi(exponent);
        let cap = f64::from(self.max_radius_m.max(1));
        radius.min(cap).round() as u32
    }

    /// The number of rounds, at least one.
    pub fn rounds(&self) -> u32 {
        self.max_rounds.max(1)
    }

    /// The offer timeout in milliseconds.
    pub fn offer_timeout_ms(&self) -> i64 {
        i64::from(self.offer_timeout_s) * 1000
    }

    /// The position age limit in milliseconds.
    pub fn position_max_age_ms(&self) -> i64 {
        i64::from(self.position_max_age_s) * 1000
    }

    /// The replay retention in milliseconds.
    pub fn replay_retention_ms(&self) -> i64 {
        i64::from(self.replay_retention_h) * 3_600_000
    }

    /// The driver retention in milliseconds.
    pub fn driver_retention_ms(&self) -> i64 {
        i64::from(self.driver_retention_h) * 3_600_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtyard_sdk::Value;

    fn manifest() -> Value {
        serde_json::from_str(include_str!("../manifest.json")).expect("manifest.json is JSON")
    }

    #[test]
    fn the_manifest_defaults_are_the_rust_defaults() {
        let props = manifest()["config"]["properties"].clone();
        let defaults: serde_json::Map<String, Value> = props
            .as_object()
            .expect("config properties")
            .iter()
            .map(|(k, v)| (k.clone(), v["default"].clone()))
            .collect();
        let config: Config =
            serde_json::from_value(Value::Object(defaults)).expect("defaults deserialise");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn an_empty_config_is_the_default() {
        let config: Config = serde_json::from_str("{}").expect("empty config");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_config_fields_are_refused() {
        assert!(serde_json::from_str::<Config>(r#"{"radius": 5}"#).is_err());
    }

    #[test]
    fn radius_grows_per_round_up_to_the_cap() {
        let config = Config::default();
        assert_eq!(config.radius_for_round(1), 2000);
        assert_eq!(config.radius_for_round(2), 4000);
        assert_eq!(config.radius_for_round(3), 8000);
        assert_eq!(config.radius_for_round(4), 10_000);
        assert_eq!(config.radius_for_round(40), 10_000);
        // Round 0 does not exist; it is treated as the first.
        assert_eq!(config.radius_for_round(0), 2000);
    }

    #[test]
    fn a_growth_of_one_keeps_the_radius() {
        let config = Config {
            radius_growth: 1.0,
            ..Config::default()
        };
        assert_eq!(config.radius_for_round(5), 2000);
    }

    #[test]
    fn fractional_growth_rounds_to_whole_metres() {
        let config = Config {
            initial_radius_m: 1000,
            radius_growth: 1.5,
            ..Config::default()
        };
        assert_eq!(config.radius_for_round(2), 1500);
        assert_eq!(config.radius_for_round(3), 2250);
        assert_eq!(config.radius_for_round(4), 3375);
    }

    #[test]
    fn a_cap_below_the_initial_radius_wins() {
        let config = Config {
            initial_radius_m: 5000,
            max_radius_m: 3000,
            ..Config::default()
        };
        assert_eq!(config.radius_for_round(1), 3000);
    }

    #[test]
    fn durations_in_milliseconds() {
        let config = Config::default();
        assert_eq!(config.offer_timeout_ms(), 45_000);
        assert_eq!(config.position_max_age_ms(), 120_000);
        assert_eq!(config.replay_retention_ms(), 48 * 3_600_000);
        assert_eq!(config.driver_retention_ms(), 7 * 24 * 3_600_000);
        assert_eq!(
            Config {
                max_rounds: 0,
                ..Config::default()
            }
            .rounds(),
            1
        );
    }
}
