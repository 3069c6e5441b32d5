//! The community's configuration of the canteen (the `config` schema of `manifest.json`).
//!
//! The host merges a community's values over the manifest's defaults, top-level field by
//! field, which is why every field is a top-level scalar.

use crate::calendar::TimeOfDay;
use crate::menu::Slot;
use courtyard_sdk::Error;
use serde::Deserialize;

/// The canteen's per-community settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The community's offset from UTC in minutes (480: China Standard Time). Dates,
    /// cutoffs and ages are computed in this local time.
    pub utc_offset_minutes: i32,
    /// Ordering for a breakfast closes at this local time (`HH:MM`) on the meal's date,
    /// unless the menu sets its own `cutoff_at`.
    pub breakfast_cutoff: String,
    /// The same for lunch.
    pub lunch_cutoff: String,
    /// The same for dinner.
    pub dinner_cutoff: String,
    /// Whether the canteen delivers at all.
    pub delivery_enabled: bool,
    /// Residents this old or older (full years, from their registered birth date) may
    /// order delivery; `None`: age alone does not qualify.
    pub delivery_min_age: Option<u32>,
    /// Whether residents registered as mobility-limited may order delivery at any age.
    pub delivery_for_mobility_limited: bool,
    /// Added to the total of a delivery order, in fen.
    pub delivery_fee_fen: u64,
    /// Most portions (all dishes together) in one order.
    pub max_portions_per_order: u32,
    /// Whether a resident may hold only one live (not cancelled) order per meal slot.
    pub one_order_per_slot: bool,
    /// How many days `sweep` keeps the replay records of idempotency keys.
    pub replay_retention_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            utc_offset_minutes: 480,
            breakfast_cutoff: "06:30".into(),
            lunch_cutoff: "10:00".into(),
            dinner_cutoff: "16:00".into(),
            delivery_enabled: true,
            delivery_min_age: Some(60),
            delivery_for_mobility_limited: true,
            delivery_fee_fen: 0,
            max_portions_per_order: 5,
            one_order_per_slot: true,
            replay_retention_days: 30,
        }
    }
}

impl Config {
    /// The configured default cutoff of a slot.
    pub fn cutoff(&self, slot: Slot) -> Result<TimeOfDay, Error> {
        let text = match slot {
            Slot::Breakfast => &self.breakfast_cutoff,
            Slot::Lunch => &self.lunch_cutoff,
            Slot::Dinner => &self.dinner_cutoff,
        };
        // The config schema only admits HH:MM, so a failure here is a bug.
        TimeOfDay::parse(text)
            .map_err(|e| Error::internal(format!("config {}_cutoff: {e}", slot.name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_defaults_are_the_default_config() {
        let manifest: serde_json::Value =
            serde_json::from_str(include_str!("../manifest.json")).expect("manifest");
        let mut defaults = serde_json::Map::new();
        for (name, prop) in manifest["config"]["properties"].as_object().expect("props") {
            defaults.insert(name.clone(), prop["default"].clone());
        }
        let config: Config =
            serde_json::from_value(serde_json::Value::Object(defaults)).expect("config");
        assert_eq!(config, Config::default());
        for slot in Slot::ALL {
            assert!(config.cutoff(slot).is_ok());
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<Config>(r#"{"nope": 1}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Config>("{}").expect("defaults"),
            Config::default()
        );
    }
}
