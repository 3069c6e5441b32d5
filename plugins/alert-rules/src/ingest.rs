//! `ingest`: one device event checked against the rules of its kind.
//!
//! For each rule of the event's kind, in id order: a disabled rule is skipped; the dedupe
//! key is filled from the payload (an event lacking a field of the key does not match);
//! the conditions are checked (an event that fails them ends a `duration` state of its
//! key); the trigger decides whether the rule fires; a firing rule updates the key's open
//! alarm, or raises a new one unless the key is cooling down after its last alarm was
//! cleared. The result says, rule by rule, what happened and why.
//!
//! Events are idempotent by `kind` and `id` (for `replay_retention_days`): a retry — the
//! same kind, id, payload and `at_ms` — changes nothing and returns the first result with
//! `duplicate: true`; the same kind and id with another payload or `at_ms` is a conflict (the
//! device reuses ids). Events of different kinds may share ids.
//!
//! An event is refused when its payload takes more than [`MAX_PAYLOAD_BYTES`] as JSON (an
//! alarm carries the payload of its latest event into the events it emits, which the host
//! caps at 64 KiB), or when its `at_ms` is more than the configured clock skew after the
//! host's time (a future time would hold the key's windows back: every correct event after
//! it would look late).

use crate::alarms::{self, Alarm, Firing, alarm_id, refresh, save_alarm};
use crate::conditions::check_all;
use crate::config::Config;
use crate::rules::{self, Rule};
use crate::store::{Store, digest, emit, keys, load, save_until};
use crate::time::{fmt_ms, secs};
use crate::windows::{Slot, Verdict, put_slot};
use courtyard_sdk::{Error, Value};
use serde::{Deserialize, Serialize};

/// `ingest`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestInput {
    pub kind: String,
    pub payload: serde_json::Map<String, Value>,
    /// The device's event id: a second event of the same kind with the same id is a
    /// duplicate (the same payload and `at_ms`) or a conflict (another one).
    #[serde(default)]
    pub id: Option<String>,
    /// When the event happened (default: now).
    #[serde(default)]
    pub at_ms: Option<i64>,
}

/// What one rule made of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A new alarm.
    Raised,
    /// The open alarm of the dedupe key was updated.
    Updated,
    /// The conditions hold but the duration or count is not reached yet.
    Pending,
    /// The rule fired but the key is cooling down after its last alarm was cleared.
    Suppressed,
    /// The event does not match the rule.
    NoMatch,
    /// The rule is disabled.
    Disabled,
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: String,
    pub outcome: Outcome,
    pub dedupe_key: Option<String>,
    pub alarm: Option<String>,
    pub reason: Option<String>,
}

/// `ingest`'s output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOutput {
    pub event: Option<String>,
    pub kind: String,
    pub at_ms: i64,
    pub duplicate: bool,
    pub results: Vec<RuleResult>,
}

/// The longest event id.
pub const MAX_EVENT_ID: usize = 128;
/// The largest payload, in bytes of JSON (16 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// What `ingest` remembers of an event with an id.
#[derive(Debug, Serialize, Deserialize)]
struct EventRecord {
    /// The [`digest`] of the event's payload and `at_ms` (as given).
    fingerprint: String,
    output: IngestOutput,
}

/// `ingest`.
pub fn ingest(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: IngestInput,
) -> Result<IngestOutput, Error> {
    if !rules::is_event_kind(&input.kind) {
        return Err(Error::invalid_input(format!(
            "kind {:?} is not an event kind",
            input.kind
        )));
    }
    if let Some(id) = &input.id
        && (id.is_empty() || id.len() > MAX_EVENT_ID || !id.chars().all(|c| c.is_ascii_graphic()))
    {
        return Err(Error::invalid_input(format!(
            "event id {id:?} must have 1 to {MAX_EVENT_ID} visible ASCII characters"
        )));
    }
    let payload = Value::Object(input.payload);
    // Without serde_json's `preserve_order`, objects serialise with their keys sorted, so
    // the same payload always has the same bytes.
    let mut bytes = serde_json::to_vec(&payload)
        .map_err(|e| Error::internal(format!("cannot serialise the payload: {e}")))?;
    let size = bytes.len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(Error::invalid_input(format!(
            "the payload takes {size} bytes as JSON; the most is {MAX_PAYLOAD_BYTES} (16 KiB): \
             send large data (images, raw recordings) elsewhere and put a reference in the payload"
        )));
    }
    if let Some(at) = input.at_ms {
        let latest = now_ms.saturating_add(config.max_clock_skew_ms());
        if at > latest {
            return Err(Error::invalid_input(format!(
                "at_ms {} is {} s after the host's time ({}); events may be at most {} s \
                 ahead (max_clock_skew_seconds): check the device's clock",
                fmt_ms(at),
                secs(at - now_ms),
                fmt_ms(now_ms),
                config.max_clock_skew_seconds
            )));
        }
    }
    bytes.extend_from_slice(format!(" at {:?}", input.at_ms).as_bytes());
    let fingerprint = digest(&bytes);
    if let Some(id) = &input.id
        && let Some(first) = load::<EventRecord>(store, &keys::event(&input.kind, id))?
    {
        if first.fingerprint != fingerprint {
            return Err(Error::conflict(format!(
                "event {id:?} of kind {} was ingested already with another payload or at_ms; \
                 give every event of a kind its own id (ids are remembered for {} days)",
                input.kind, config.replay_retention_days
            )));
        }
        let mut output = first.output;
        output.duplicate = true;
        return Ok(output);
    }
    let at_ms = input.at_ms.unwrap_or(now_ms);
    let mut results = Vec::new();
    for rule in rules::for_kind(store, &input.kind)? {
        results.push(apply_rule(
            store,
            &rule,
            &payload,
            input.id.as_deref(),
            at_ms,
            now_ms,
        )?);
    }
    let output = IngestOutput {
        event: input.id,
        kind: input.kind,
        at_ms,
        duplicate: false,
        results,
    };
    let Some(key) = output
        .event
        .as_ref()
        .map(|id| keys::event(&output.kind, id))
    else {
        return Ok(output);
    };
    let record = EventRecord {
        fingerprint,
        output,
    };
    let expires = now_ms.saturating_add(config.replay_retention_ms());
    save_until(store, &key, &record, expires)?;
    Ok(record.output)
}

fn result(
    rule: &Rule,
    outcome: Outcome,
    key: Option<&str>,
    alarm: Option<String>,
    reason: Option<String>,
) -> RuleResult {
    RuleResult {
        rule: rule.id.clone(),
        outcome,
        dedupe_key: key.map(str::to_owned),
        alarm,
        reason,
    }
}

fn apply_rule(
    store: &mut impl Store,
    rule: &Rule,
    payload: &Value,
    event: Option<&str>,
    at_ms: i64,
    now_ms: i64,
) -> Result<RuleResult, Error> {
    if !rule.enabled {
        return Ok(result(
            rule,
            Outcome::Disabled,
            None,
            None,
            Some(format!("rule {} is disabled", rule.id)),
        ));
    }
    let key = match rule.dedupe_template()?.fill_strict(payload) {
        Ok(key) => key,
        Err(why) => {
            return Ok(result(
                rule,
                Outcome::NoMatch,
                None,
                None,
                Some(format!("no dedupe key ({}): {why}", rule.dedupe_key)),
            ));
        }
    };
    let slot_key = keys::slot(&rule.id, &key);
    let stored: Option<Slot> = load(store, &slot_key)?;
    let mut slot = stored.clone().unwrap_or_default();
    slot.follow_revision(rule.window_revision);

    if let Err(why) = check_all(&rule.conditions, rule.match_mode, payload) {
        if stored.is_some() && slot.miss(&rule.trigger, at_ms) {
            slot.touched_ms = now_ms;
            put_slot(store, &slot_key, &slot, now_ms)?;
        }
        return Ok(result(rule, Outcome::NoMatch, Some(&key), None, Some(why)));
    }

    slot.touched_ms = now_ms;
    let outcome = match slot.hit(&rule.trigger, at_ms) {
        Verdict::Pending(why) => result(rule, Outcome::Pending, Some(&key), None, Some(why)),
        Verdict::Fire => {
            let firing = Firing {
                at_ms,
                event,
                payload,
                title: rule.title_template()?.fill_lenient(payload),
                dedupe_key: &key,
            };
            let open = match slot.open {
                Some(seq) => load::<Alarm>(store, &keys::alarm(seq))?.filter(|a| a.state.is_open()),
                None => None,
            };
            if let Some(mut alarm) = open {
                refresh(store, &mut alarm, now_ms)?;
                alarm.record(firing, now_ms)?;
                save_alarm(store, &alarm)?;
                emit(store, alarms::UPDATED, &alarm)?;
                result(rule, Outcome::Updated, Some(&key), Some(alarm.id), None)
            } else if slot.cooling(now_ms) {
                slot.open = None;
                let until = slot.cooldown_until_ms.unwrap_or(now_ms);
                result(
                    rule,
                    Outcome::Suppressed,
                    Some(&key),
                    None,
                    Some(format!(
                        "the last alarm of {key} was cleared; the rule's cooldown lasts until {}",
                        fmt_ms(until)
                    )),
                )
            } else {
                let seq = alarms::next_seq(store)?;
                let alarm = Alarm::raise(seq, rule, firing, now_ms);
                save_alarm(store, &alarm)?;
                emit(store, alarms::RAISED, &alarm)?;
                slot.open = Some(seq);
                slot.cooldown_until_ms = None;
                result(rule, Outcome::Raised, Some(&key), Some(alarm_id(seq)), None)
            }
        }
    };
    put_slot(store, &slot_key, &slot, now_ms)?;
    Ok(outcome)
}
