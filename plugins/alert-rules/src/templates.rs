//! The built-in rule templates: one per kind of incident the reference communities report
//! (objects thrown from height, crowds, illegal parking, fire lanes, smart manhole covers,
//! wristbands of elderly people living alone). An admin installs one with
//! `install-template`; the config's `default_templates` installs them in every community.
//!
//! Each template documents the event it expects (kind and payload fields) with a realistic
//! example, which the tests ingest.

use crate::rules::RuleSpec;
use courtyard_sdk::{Value, json};
use serde::Serialize;

/// A template: a rule ready to install, and an event it matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub id: &'static str,
    pub name: String,
    pub description: &'static str,
    pub rule: RuleSpec,
    /// An event (`kind`, `payload`) that the rule matches.
    pub example: Value,
}

/// `list-templates`' output.
#[derive(Debug, Serialize)]
pub struct TemplateList {
    pub templates: Vec<Template>,
}

fn template(id: &'static str, description: &'static str, rule: Value, example: Value) -> Template {
    let mut rule = rule;
    rule["id"] = json!(id);
    let rule: RuleSpec =
        serde_json::from_value(rule).unwrap_or_else(|e| panic!("template {id} is not a rule: {e}"));
    Template {
        id,
        name: rule.name.clone(),
        description,
        rule,
        example,
    }
}

/// Every template, in the order `list-templates` shows them.
pub fn all() -> Vec<Template> {
    vec![
        template(
            "object-thrown",
            "A camera on a facade saw an object fall from a window. The building, floor and \
             window locate the household; every throw raises or updates the alarm of that window.",
            json!({
                "name": "Object thrown from height",
                "kind": "camera.object-thrown",
                "conditions": [
                    {"field": "building", "op": "exists", "value": true},
                    {"field": "floor", "op": "exists", "value": true},
                    {"field": "window", "op": "exists", "value": true}
                ],
                "trigger": {"type": "each"},
                "severity": "critical",
                "dedupe_key": "{building}-{floor}-{window}",
                "title": "Object thrown from building {building}, floor {floor}, window {window} (household {household})",
                "cooldown_seconds": 0,
                "escalate_after_seconds": 300
            }),
            json!({"kind": "camera.object-thrown", "payload": {
                "camera": "cam-b3-east", "building": "3", "floor": 15, "window": "02",
                "household": "3-1502", "confidence": 0.93
            }}),
        ),
        template(
            "crowd-gathering",
            "Video analytics count people in a camera's view. Ten or more people for ten \
             minutes (reports at most two minutes apart) raise an alarm so that staff go on site.",
            json!({
                "name": "Crowd gathering",
                "kind": "camera.crowd-detected",
                "conditions": [{"field": "count", "op": "gte", "value": 10}],
                "trigger": {"type": "duration", "seconds": 600, "max_gap_seconds": 120},
                "severity": "warning",
                "dedupe_key": "{camera}",
                "title": "Crowd of {count} people at {zone} (camera {camera})",
                "cooldown_seconds": 1800,
                "escalate_after_seconds": 900
            }),
            json!({"kind": "camera.crowd-detected", "payload": {
                "camera": "cam-square-2", "zone": "central square", "count": 14
            }}),
        ),
        template(
            "illegal-parking",
            "A camera reads the plate of a vehicle standing in a no-parking zone. Fifteen \
             minutes in the same zone (sightings at most five minutes apart) raise an alarm \
             per plate and zone. Unread plates are ignored.",
            json!({
                "name": "Illegal parking",
                "kind": "camera.illegal-parking",
                "conditions": [{"field": "plate", "op": "ne", "value": "UNKNOWN"}],
                "trigger": {"type": "duration", "seconds": 900, "max_gap_seconds": 300},
                "severity": "warning",
                "dedupe_key": "{plate}:{zone}",
                "title": "Vehicle {plate} parked in no-parking zone {zone}",
                "cooldown_seconds": 3600,
                "escalate_after_seconds": 1800
            }),
            json!({"kind": "camera.illegal-parking", "payload": {
                "camera": "cam-gate-north", "plate": "ZA12345", "zone": "north-gate"
            }}),
        ),
        template(
            "fire-lane-blocked",
            "A camera sees a vehicle, tricycle, bicycle or debris in a fire lane for two \
             minutes (reports at most a minute apart).",
            json!({
                "name": "Fire lane blocked",
                "kind": "camera.fire-lane-blocked",
                "conditions": [
                    {"field": "object", "op": "in", "value": ["vehicle", "tricycle", "bicycle", "debris"]}
                ],
                "trigger": {"type": "duration", "seconds": 120, "max_gap_seconds": 60},
                "severity": "critical",
                "dedupe_key": "{camera}:{lane}",
                "title": "Fire lane {lane} blocked by a {object} (camera {camera})",
                "cooldown_seconds": 600,
                "escalate_after_seconds": 300
            }),
            json!({"kind": "camera.fire-lane-blocked", "payload": {
                "camera": "cam-lane-b", "lane": "building-7-east", "object": "vehicle", "plate": "ZB67890"
            }}),
        ),
        template(
            "manhole-tilted",
            "A smart manhole cover reports a tilt of 15 degrees or more.",
            json!({
                "name": "Manhole cover tilted",
                "kind": "manhole.status",
                "conditions": [{"field": "tilt_deg", "op": "gte", "value": 15}],
                "trigger": {"type": "each"},
                "severity": "warning",
                "dedupe_key": "{cover}",
                "title": "Manhole cover {cover} tilted {tilt_deg} degrees",
                "cooldown_seconds": 3600,
                "escalate_after_seconds": 1800
            }),
            json!({"kind": "manhole.status", "payload": {
                "cover": "mh-017", "tilt_deg": 22, "open": false, "water_level_pct": 35
            }}),
        ),
        template(
            "manhole-open",
            "A smart manhole cover reports that it is open: someone could fall in.",
            json!({
                "name": "Manhole cover open",
                "kind": "manhole.status",
                "conditions": [{"field": "open", "op": "eq", "value": true}],
                "trigger": {"type": "each"},
                "severity": "critical",
                "dedupe_key": "{cover}",
                "title": "Manhole cover {cover} is open",
                "cooldown_seconds": 600,
                "escalate_after_seconds": 300
            }),
            json!({"kind": "manhole.status", "payload": {
                "cover": "mh-017", "tilt_deg": 80, "open": true, "water_level_pct": 35
            }}),
        ),
        template(
            "manhole-water-level",
            "The water under a smart manhole cover is at 80% or more of the well's depth in \
             three reports within fifteen minutes (one high reading may be a wave).",
            json!({
                "name": "High water level under a manhole cover",
                "kind": "manhole.status",
                "conditions": [{"field": "water_level_pct", "op": "gte", "value": 80}],
                "trigger": {"type": "count", "count": 3, "window_seconds": 900},
                "severity": "warning",
                "dedupe_key": "{cover}",
                "title": "Water at {water_level_pct}% under manhole cover {cover}",
                "cooldown_seconds": 3600,
                "escalate_after_seconds": 1800
            }),
            json!({"kind": "manhole.status", "payload": {
                "cover": "mh-017", "tilt_deg": 0, "open": false, "water_level_pct": 86
            }}),
        ),
        template(
            "heart-rate-out-of-range",
            "The wristband of an elderly person living alone measures a heart rate under 40 \
             or over 130 beats per minute twice within ten minutes.",
            json!({
                "name": "Heart rate out of range",
                "kind": "wristband.heart-rate",
                "conditions": [
                    {"field": "bpm", "op": "lt", "value": 40},
                    {"field": "bpm", "op": "gt", "value": 130}
                ],
                "match": "any",
                "trigger": {"type": "count", "count": 2, "window_seconds": 600},
                "severity": "critical",
                "dedupe_key": "{wristband}",
                "title": "Heart rate {bpm} bpm for {resident} (wristband {wristband})",
                "cooldown_seconds": 900,
                "escalate_after_seconds": 300
            }),
            json!({"kind": "wristband.heart-rate", "payload": {
                "wristband": "wb-0042", "resident": "Li Guiying, 6-302", "bpm": 142
            }}),
        ),
        template(
            "wristband-fall",
            "The wristband of an elderly person living alone detected a fall.",
            json!({
                "name": "Fall detected by a wristband",
                "kind": "wristband.fall",
                "conditions": [],
                "trigger": {"type": "each"},
                "severity": "critical",
                "dedupe_key": "{wristband}",
                "title": "Fall detected for {resident} (wristband {wristband})",
                "cooldown_seconds": 0,
                "escalate_after_seconds": 120
            }),
            json!({"kind": "wristband.fall", "payload": {
                "wristband": "wb-0042", "resident": "Li Guiying, 6-302", "confidence": 0.88
            }}),
        ),
        template(
            "wristband-no-activity",
            "The wristband of an elderly person living alone counted no steps for twelve hours \
             (reports at most an hour apart). A wristband that stops reporting at all is not \
             detected by this rule.",
            json!({
                "name": "No activity for too long",
                "kind": "wristband.activity",
                "conditions": [{"field": "steps", "op": "eq", "value": 0}],
                "trigger": {"type": "duration", "seconds": 43200, "max_gap_seconds": 3600},
                "severity": "warning",
                "dedupe_key": "{wristband}",
                "title": "No activity from {resident} (wristband {wristband}) for 12 hours",
                "cooldown_seconds": 3600,
                "escalate_after_seconds": 1800
            }),
            json!({"kind": "wristband.activity", "payload": {
                "wristband": "wb-0042", "resident": "Li Guiying, 6-302", "steps": 0
            }}),
        ),
    ]
}

/// The template `id`.
pub fn find(id: &str) -> Option<Template> {
    all().into_iter().find(|t| t.id == id)
}

/// `list-templates`.
pub fn list() -> TemplateList {
    TemplateList { templates: all() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::check_all;
    use crate::rules::is_event_kind;

    #[test]
    fn templates_have_unique_ids_and_valid_kinds() {
        let all = all();
        assert_eq!(all.len(), 10);
        let mut ids: Vec<_> = all.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        for t in &all {
            assert!(is_event_kind(&t.rule.kind), "{}", t.id);
            assert_eq!(t.example["kind"], json!(t.rule.kind), "{}", t.id);
            assert!(t.rule.title.is_some(), "{}", t.id);
        }
    }

    #[test]
    fn every_example_meets_its_template_conditions() {
        for t in all() {
            let conditions = t
                .rule
                .conditions
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| c.normalise(i + 1).expect("valid"))
                .collect::<Vec<_>>();
            assert_eq!(
                check_all(&conditions, t.rule.match_mode, &t.example["payload"]),
                Ok(()),
                "{}",
                t.id
            );
        }
    }
}
