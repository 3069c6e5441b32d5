//! Alarms and their lifecycle.
//!
//! ```text
//!            escalate (unacknowledged past the rule's delay)
//!   raised ─────────────────────────────────────────────▶ escalated
//!     │ acknowledge                                          │ acknowledge
//!     ▼                                                      ▼
//!   acknowledged ◀───────────────────────────────────────────┘
//!     │ clear
//!     ▼
//!   cleared   (raised/escalated → cleared directly only when the community's
//!              require_ack_before_clear is false)
//! ```
//!
//! Every other transition is refused with a conflict that says why. Repeats of an alarm's
//! dedupe key update it (count, last seen, latest payload) while it is not cleared; once it
//! is cleared, the next matching event raises a new alarm (after the rule's cooldown).
//!
//! Plugins have no timers: an alarm whose escalation is due is escalated when it is next
//! read or touched (`get-alarm`, `list-alarms`, `acknowledge-alarm`, `clear-alarm`, an
//! update by `ingest`), and by the `escalate-due` sweep that a cron workflow calls.

use crate::config::Config;
use crate::rules::{Rule, Severity};
use crate::store::{Store, emit, keys, load, mark, save};
use crate::time::fmt_ms;
use crate::windows::{Slot, put_slot};
use courtyard_sdk::{Error, Value};
use serde::{Deserialize, Serialize};

/// The events this module emits.
pub const RAISED: &str = "alert-rules.alarm-raised";
pub const UPDATED: &str = "alert-rules.alarm-updated";
pub const ESCALATED: &str = "alert-rules.alarm-escalated";
pub const ACKNOWLEDGED: &str = "alert-rules.alarm-acknowledged";
pub const CLEARED: &str = "alert-rules.alarm-cleared";

/// The most alarms one `list-alarms` page or one `escalate-due` call handles (each may emit
/// an event; the host allows 64 per call).
pub const MAX_PAGE: u32 = 50;
/// The most index entries `list-alarms` reads in one call while filtering.
pub const SCAN_BUDGET: usize = 500;

/// Where an alarm is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmState {
    Raised,
    Escalated,
    Acknowledged,
    Cleared,
}

impl AlarmState {
    /// The state as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Escalated => "escalated",
            Self::Acknowledged => "acknowledged",
            Self::Cleared => "cleared",
        }
    }
    /// Whether the alarm is open (not cleared).
    pub fn is_open(self) -> bool {
        self != Self::Cleared
    }
}

/// Who did something to an alarm, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at_ms: i64,
    pub note: Option<String>,
}

/// An alarm, as stored, returned and emitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: String,
    pub rule: String,
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    pub dedupe_key: String,
    pub state: AlarmState,
    /// How many events fired the rule for this alarm.
    pub count: u64,
    /// The time of the earliest and the latest of those events.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The id of the latest event, when it had one.
    pub last_event: Option<String>,
    /// The payload of the latest event.
    pub payload: Value,
    pub raised_at_ms: i64,
    /// When the alarm escalates if nobody acknowledges it (null: never).
    pub escalate_at_ms: Option<i64>,
    pub escalated_at_ms: Option<i64>,
    pub acknowledged: Option<Stamp>,
    pub cleared: Option<Stamp>,
    pub updated_at_ms: i64,
}

/// An alarm id from its sequence number: `alm-000001`.
pub fn alarm_id(seq: u64) -> String {
    format!("alm-{seq:06}")
}

/// The sequence number of an alarm id.
pub fn parse_id(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("alm-")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n <= keys::MAX_SEQ)
}

/// What raised an alarm: the firing event.
#[derive(Debug, Clone)]
pub struct Firing<'a> {
    pub at_ms: i64,
    pub event: Option<&'a str>,
    pub payload: &'a Value,
    pub title: String,
    pub dedupe_key: &'a str,
}

impl Alarm {
    /// A new raised alarm.
    pub fn raise(seq: u64, rule: &Rule, firing: Firing<'_>, now_ms: i64) -> Self {
        Self {
            id: alarm_id(seq),
            rule: rule.id.clone(),
            kind: rule.kind.clone(),
            severity: rule.severity,
            title: firing.title,
            dedupe_key: firing.dedupe_key.to_owned(),
            state: AlarmState::Raised,
            count: 1,
            first_seen_ms: firing.at_ms,
            last_seen_ms: firing.at_ms,
            last_event: firing.event.map(str::to_owned),
            payload: firing.payload.clone(),
            raised_at_ms: now_ms,
            escalate_at_ms: rule
                .escalate_after_seconds
                .map(|s| now_ms.saturating_add(i64::from(s) * 1000)),
            escalated_at_ms: None,
            acknowledged: None,
            cleared: None,
            updated_at_ms: now_ms,
        }
    }

    /// The alarm's sequence number.
    pub fn seq(&self) -> Result<u64, Error> {
        parse_id(&self.id)
            .ok_or_else(|| Error::internal(format!("stored alarm has a bad id {:?}", self.id)))
    }

    /// Whether the alarm is raised and its escalation time has come.
    pub fn escalation_due(&self, now_ms: i64) -> bool {
        self.state == AlarmState::Raised && self.escalate_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// raised → escalated, once the escalation time has come. The escalation takes effect
    /// at that time, however late it is noticed.
    pub fn escalate(&mut self, now_ms: i64) -> Result<(), Error> {
        if self.state != AlarmState::Raised {
            return Err(Error::conflict(format!(
                "alarm {} is {}; only a raised (unacknowledged) alarm escalates",
                self.id,
                self.state.as_str()
            )));
        }
        match self.escalate_at_ms {
            None => Err(Error::conflict(format!(
                "alarm {} never escalates: its rule had no escalate_after_seconds",
                self.id
            ))),
            Some(at) if at > now_ms => Err(Error::conflict(format!(
                "alarm {} escalates at {}, not before",
                self.id,
                fmt_ms(at)
            ))),
            Some(at) => {
                self.state = AlarmState::Escalated;
                self.escalated_at_ms = Some(at);
                self.updated_at_ms = now_ms;
                Ok(())
            }
        }
    }

    /// raised or escalated → acknowledged.
    pub fn acknowledge(&mut self, by: &str, note: Option<&str>, now_ms: i64) -> Result<(), Error> {
        match self.state {
            AlarmState::Raised | AlarmState::Escalated => {
                self.state = AlarmState::Acknowledged;
                self.acknowledged = Some(stamp(by, note, now_ms));
                self.updated_at_ms = now_ms;
                Ok(())
            }
            AlarmState::Acknowledged => Err(Error::conflict(format!(
                "alarm {} was already acknowledged{}; clear it when the incident is over",
                self.id,
                by_whom(self.acknowledged.as_ref())
            ))),
            AlarmState::Cleared => Err(Error::conflict(format!(
                "alarm {} was cleared{} and cannot be acknowledged; a new matching event raises \
                 a new alarm",
                self.id,
                by_whom(self.cleared.as_ref())
            ))),
        }
    }

    /// acknowledged → cleared; raised or escalated → cleared only when the community does
    /// not require acknowledgement first.
    pub fn clear(
        &mut self,
        by: &str,
        note: Option<&str>,
        now_ms: i64,
        require_ack: bool,
    ) -> Result<(), Error> {
        match self.state {
            AlarmState::Raised | AlarmState::Escalated if require_ack => {
                Err(Error::conflict(format!(
                    "alarm {} is {} and not acknowledged: acknowledge it first (this community \
                 requires acknowledgement before clearing)",
                    self.id,
                    self.state.as_str()
                )))
            }
            AlarmState::Raised | AlarmState::Escalated | AlarmState::Acknowledged => {
                self.state = AlarmState::Cleared;
                self.cleared = Some(stamp(by, note, now_ms));
                self.updated_at_ms = now_ms;
                Ok(())
            }
            AlarmState::Cleared => Err(Error::conflict(format!(
                "alarm {} was already cleared{}",
                self.id,
                by_whom(self.cleared.as_ref())
            ))),
        }
    }

    /// Another firing event of the alarm's dedupe key (the alarm is open).
    pub fn record(&mut self, firing: Firing<'_>, now_ms: i64) -> Result<(), Error> {
        if !self.state.is_open() {
            return Err(Error::conflict(format!(
                "alarm {} is cleared; a new event raises a new alarm",
                self.id
            )));
        }
        self.count += 1;
        self.first_seen_ms = self.first_seen_ms.min(firing.at_ms);
        if firing.at_ms >= self.last_seen_ms {
            self.last_seen_ms = firing.at_ms;
            self.last_event = firing.event.map(str::to_owned);
            self.payload = firing.payload.clone();
            self.title = firing.title;
        }
        self.updated_at_ms = now_ms;
        Ok(())
    }
}

fn stamp(by: &str, note: Option<&str>, now_ms: i64) -> Stamp {
    Stamp {
        by: by.to_owned(),
        at_ms: now_ms,
        note: note.map(str::to_owned),
    }
}

fn by_whom(stamp: Option<&Stamp>) -> String {
    stamp.map_or_else(String::new, |s| {
        format!(" by {} at {}", s.by, fmt_ms(s.at_ms))
    })
}

/// The next alarm sequence number (a counter in state).
pub fn next_seq(store: &mut impl Store) -> Result<u64, Error> {
    let seq = load::<u64>(store, keys::SEQ)?.unwrap_or(0) + 1;
    if seq > keys::MAX_SEQ {
        return Err(Error::conflict(
            "this community has used up its alarm numbers",
        ));
    }
    save(store, keys::SEQ, &seq)?;
    Ok(seq)
}

fn unknown_alarm(id: &str) -> Error {
    Error::not_found(format!(
        "unknown alarm {id:?}: list-alarms shows this community's alarms"
    ))
}

/// The alarm `id`, or not-found.
pub fn load_alarm(store: &mut impl Store, id: &str) -> Result<Alarm, Error> {
    let seq = parse_id(id).ok_or_else(|| unknown_alarm(id))?;
    load(store, &keys::alarm(seq))?.ok_or_else(|| unknown_alarm(id))
}

/// Stores an alarm and keeps its index entries in step with its state.
pub fn save_alarm(store: &mut impl Store, alarm: &Alarm) -> Result<(), Error> {
    let seq = alarm.seq()?;
    save(store, &keys::alarm(seq), alarm)?;
    if alarm.state.is_open() {
        mark(store, &keys::open(seq))?;
    } else {
        store.delete(&keys::open(seq))?;
    }
    if let Some(at) = alarm.escalate_at_ms {
        if alarm.state == AlarmState::Raised {
            mark(store, &keys::due(at, seq))?;
        } else {
            store.delete(&keys::due(at, seq))?;
        }
    }
    if let Some(cleared) = &alarm.cleared {
        mark(store, &keys::cleared(cleared.at_ms, seq))?;
    }
    Ok(())
}

/// Escalates `alarm` if its time has come, storing it and emitting the event. Returns
/// whether it escalated.
pub fn refresh(store: &mut impl Store, alarm: &mut Alarm, now_ms: i64) -> Result<bool, Error> {
    if !alarm.escalation_due(now_ms) {
        return Ok(false);
    }
    alarm.escalate(now_ms)?;
    save_alarm(store, alarm)?;
    emit(store, ESCALATED, alarm)?;
    Ok(true)
}

/// `get-alarm`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdInput {
    pub id: String,
}

/// `acknowledge-alarm`'s and `clear-alarm`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActInput {
    pub id: String,
    /// Who acts: a staff id or name.
    pub by: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// `list-alarms`' input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    #[serde(default)]
    pub states: Option<Vec<AlarmState>>,
    #[serde(default)]
    pub severities: Option<Vec<Severity>>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `list-alarms`' output.
#[derive(Debug, PartialEq, Serialize)]
pub struct AlarmList {
    pub alarms: Vec<Alarm>,
    pub next: Option<String>,
}

/// `escalate-due`'s input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepInput {
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `escalate-due`'s output.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Escalated {
    pub escalated: Vec<String>,
    pub more: bool,
}

/// The alarm `id` (or not-found), escalated first if due.
fn load_fresh(store: &mut impl Store, id: &str, now_ms: i64) -> Result<Alarm, Error> {
    let mut alarm = load_alarm(store, id)?;
    refresh(store, &mut alarm, now_ms)?;
    Ok(alarm)
}

/// `get-alarm` (escalating it first if due).
pub fn get(store: &mut impl Store, now_ms: i64, input: IdInput) -> Result<Alarm, Error> {
    load_fresh(store, &input.id, now_ms)
}

fn check_actor(input: &ActInput) -> Result<(), Error> {
    if input.by.trim().is_empty() {
        return Err(Error::invalid_input(
            "by is empty: say who acts (a staff id or name)",
        ));
    }
    Ok(())
}

/// `acknowledge-alarm`.
pub fn acknowledge(store: &mut impl Store, now_ms: i64, input: ActInput) -> Result<Alarm, Error> {
    check_actor(&input)?;
    let mut alarm = load_fresh(store, &input.id, now_ms)?;
    alarm.acknowledge(&input.by, input.note.as_deref(), now_ms)?;
    save_alarm(store, &alarm)?;
    emit(store, ACKNOWLEDGED, &alarm)?;
    Ok(alarm)
}

/// `clear-alarm`: also frees the dedupe key (a new event raises a new alarm after the
/// rule's cooldown).
pub fn clear(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: ActInput,
) -> Result<Alarm, Error> {
    check_actor(&input)?;
    let mut alarm = load_fresh(store, &input.id, now_ms)?;
    alarm.clear(
        &input.by,
        input.note.as_deref(),
        now_ms,
        config.require_ack_before_clear,
    )?;
    save_alarm(store, &alarm)?;
    let seq = alarm.seq()?;
    let slot_key = keys::slot(&alarm.rule, &alarm.dedupe_key);
    let mut slot: Slot = load(store, &slot_key)?.unwrap_or_default();
    if slot.open == Some(seq) {
        slot.open = None;
    }
    let cooldown = load::<Rule>(store, &keys::rule(&alarm.rule))?.map_or(0, |r| r.cooldown_seconds);
    if cooldown > 0 {
        slot.cooldown_until_ms = Some(now_ms.saturating_add(i64::from(cooldown) * 1000));
    }
    slot.touched_ms = now_ms;
    put_slot(store, &slot_key, &slot, now_ms)?;
    emit(store, CLEARED, &alarm)?;
    Ok(alarm)
}

/// `list-alarms`: newest first, filtered by state, severity and rule. Reads at most
/// [`SCAN_BUDGET`] alarms per call; `next` continues where it stopped (a page may hold fewer
/// than `limit` alarms while `next` is not null).
pub fn list(store: &mut impl Store, now_ms: i64, input: ListInput) -> Result<AlarmList, Error> {
    let limit = input.limit.unwrap_or(20).clamp(1, MAX_PAGE) as usize;
    let open_only = input
        .states
        .as_ref()
        .is_some_and(|states| !states.is_empty() && states.iter().all(|s| s.is_open()));
    let prefix = if open_only { keys::OPEN } else { keys::ALARM };
    let mut cursor = match &input.after {
        None => None,
        Some(after) => {
            let seq = parse_id(after).ok_or_else(|| {
                Error::invalid_input(format!(
                    "after {after:?} is not an alarm id; pass the `next` of the previous page"
                ))
            })?;
            Some(format!("{prefix}{}", keys::newest_first(seq)))
        }
    };
    let wanted = |alarm: &Alarm| {
        input
            .states
            .as_ref()
            .is_none_or(|s| s.is_empty() || s.contains(&alarm.state))
            && input
                .severities
                .as_ref()
                .is_none_or(|s| s.is_empty() || s.contains(&alarm.severity))
            && input.rule.as_ref().is_none_or(|r| *r == alarm.rule)
    };
    let mut alarms = Vec::new();
    let mut scanned = 0;
    loop {
        let page = store.scan(prefix, cursor.as_deref(), 100)?;
        if page.is_empty() {
            return Ok(AlarmList { alarms, next: None });
        }
        for (key, value) in page {
            scanned += 1;
            let mut alarm: Alarm = if open_only {
                let suffix = &key[prefix.len()..];
                load(store, &format!("{}{suffix}", keys::ALARM))?
                    .ok_or_else(|| Error::internal(format!("index {key} names a missing alarm")))?
            } else {
                serde_json::from_value(value)
                    .map_err(|e| Error::internal(format!("alarm {key} is unreadable: {e}")))?
            };
            // Escalation applies to what is returned; alarms filtered out are escalated
            // when next read, or by escalate-due.
            let mut view = alarm.clone();
            if view.escalation_due(now_ms) {
                view.escalate(now_ms)?;
            }
            if wanted(&view) {
                refresh(store, &mut alarm, now_ms)?;
                alarms.push(alarm);
            }
            let last_id = view.id;
            cursor = Some(key);
            if alarms.len() == limit || scanned == SCAN_BUDGET {
                let more = !store.scan(prefix, cursor.as_deref(), 1)?.is_empty();
                return Ok(AlarmList {
                    alarms,
                    next: more.then_some(last_id),
                });
            }
        }
    }
}

/// `escalate-due`: escalates up to `limit` alarms whose time has come, soonest first.
pub fn escalate_due(
    store: &mut impl Store,
    now_ms: i64,
    input: SweepInput,
) -> Result<Escalated, Error> {
    let limit = input.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE) as usize;
    let mut escalated = Vec::new();
    let due = store.scan(keys::DUE, None, limit as u32 + 1)?;
    for (handled, (key, _)) in due.into_iter().enumerate() {
        let Some((at, seq)) = keys::split_timed(keys::DUE, &key) else {
            return Err(Error::internal(format!("bad due index key {key}")));
        };
        if at > now_ms {
            return Ok(Escalated {
                escalated,
                more: false,
            });
        }
        if handled == limit {
            return Ok(Escalated {
                escalated,
                more: true,
            });
        }
        let seq: u64 = seq
            .parse()
            .map_err(|_| Error::internal(format!("bad due index key {key}")))?;
        match load::<Alarm>(store, &keys::alarm(seq))? {
            Some(mut alarm) if alarm.escalation_due(now_ms) => {
                refresh(store, &mut alarm, now_ms)?;
                escalated.push(alarm.id);
            }
            // Acknowledged, cleared or purged since: the entry is stale.
            _ => store.delete(&key)?,
        }
    }
    Ok(Escalated {
        escalated,
        more: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{conflict, count};
    use courtyard_sdk::testing::MemoryStore;
    use serde_json::json;

    const NOW: i64 = 1_000_000;

    fn rule(escalate: Option<u32>) -> Rule {
        let spec: crate::rules::RuleSpec = serde_json::from_value(json!({
            "id": "smoke", "name": "Smoke", "kind": "sensor.smoke", "severity": "critical",
            "dedupe_key": "{sensor}", "escalate_after_seconds": escalate
        }))
        .expect("spec");
        let mut s = MemoryStore::default();
        let config = Config {
            default_templates: vec![],
            ..Config::default()
        };
        crate::rules::create(&mut s, &config, 0, spec).expect("rule")
    }

    fn raised(escalate: Option<u32>) -> Alarm {
        let payload = json!({"sensor": "s1"});
        Alarm::raise(
            1,
            &rule(escalate),
            Firing {
                at_ms: NOW - 5,
                event: Some("e1"),
                payload: &payload,
                title: "Smoke".into(),
                dedupe_key: "s1",
            },
            NOW,
        )
    }

    fn in_state(state: AlarmState) -> Alarm {
        let mut a = raised(Some(60));
        match state {
            AlarmState::Raised => {}
            AlarmState::Escalated => a.escalate(NOW + 60_000).expect("escalate"),
            AlarmState::Acknowledged => a.acknowledge("wang", None, NOW + 1).expect("ack"),
            AlarmState::Cleared => {
                a.acknowledge("wang", None, NOW + 1).expect("ack");
                a.clear("wang", Some("done"), NOW + 2, true).expect("clear");
            }
        }
        assert_eq!(a.state, state);
        a
    }

    const ALL: [AlarmState; 4] = [
        AlarmState::Raised,
        AlarmState::Escalated,
        AlarmState::Acknowledged,
        AlarmState::Cleared,
    ];

    #[test]
    fn a_raised_alarm_starts_with_one_event() {
        let a = raised(Some(60));
        assert_eq!(a.id, "alm-000001");
        assert_eq!(
            (a.state, a.count, a.first_seen_ms, a.last_seen_ms),
            (AlarmState::Raised, 1, NOW - 5, NOW - 5)
        );
        assert_eq!(a.escalate_at_ms, Some(NOW + 60_000));
        assert_eq!(raised(None).escalate_at_ms, None);
    }

    #[test]
    fn escalate_is_allowed_only_from_raised_once_due() {
        for state in ALL {
            let mut a = in_state(state);
            let result = a.escalate(NOW + 120_000);
            if state == AlarmState::Raised {
                assert_eq!(result, Ok(()));
                assert_eq!(a.state, AlarmState::Escalated);
                assert_eq!(a.escalated_at_ms, Some(NOW + 60_000), "effective when due");
            } else {
                let m = conflict(result);
                assert!(
                    m.contains(state.as_str()) && m.contains("only a raised"),
                    "{m}"
                );
            }
        }
        let mut early = raised(Some(60));
        let m = conflict(early.escalate(NOW + 59_999));
        assert!(
            m.contains("escalates at") && m.contains("not before"),
            "{m}"
        );
        assert!(!early.escalation_due(NOW + 59_999) && early.escalation_due(NOW + 60_000));
        let m = conflict(raised(None).escalate(i64::MAX));
        assert!(m.contains("never escalates"), "{m}");
    }

    #[test]
    fn acknowledge_from_each_state() {
        for state in ALL {
            let mut a = in_state(state);
            let result = a.acknowledge("li", Some("on my way"), NOW + 10);
            match state {
                AlarmState::Raised | AlarmState::Escalated => {
                    assert_eq!(result, Ok(()));
                    assert_eq!(a.state, AlarmState::Acknowledged);
                    assert_eq!(
                        a.acknowledged,
                        Some(Stamp {
                            by: "li".into(),
                            at_ms: NOW + 10,
                            note: Some("on my way".into())
                        })
                    );
                }
                AlarmState::Acknowledged => {
                    let m = conflict(result);
                    assert!(
                        m.contains("already acknowledged by wang at") && m.contains("clear it"),
                        "{m}"
                    );
                }
                AlarmState::Cleared => {
                    let m = conflict(result);
                    assert!(
                        m.contains("was cleared by wang") && m.contains("cannot be acknowledged"),
                        "{m}"
                    );
                }
            }
        }
    }

    #[test]
    fn clear_from_each_state_with_and_without_required_acknowledgement() {
        for require_ack in [true, false] {
            for state in ALL {
                let mut a = in_state(state);
                let result = a.clear("li", None, NOW + 10, require_ack);
                match (state, require_ack) {
                    (AlarmState::Acknowledged, _)
                    | (AlarmState::Raised | AlarmState::Escalated, false) => {
                        assert_eq!(result, Ok(()), "{state:?}");
                        assert_eq!(a.state, AlarmState::Cleared);
                        assert_eq!(a.cleared.as_ref().map(|s| s.by.as_str()), Some("li"));
                    }
                    (AlarmState::Raised | AlarmState::Escalated, true) => {
                        let m = conflict(result);
                        assert!(
                            m.contains(&format!(
                                "is {} and not acknowledged: acknowledge it first",
                                state.as_str()
                            )),
                            "{m}"
                        );
                        assert_eq!(a.state, state, "unchanged");
                    }
                    (AlarmState::Cleared, _) => {
                        let m = conflict(result);
                        assert!(m.contains("already cleared by wang"), "{m}");
                    }
                }
            }
        }
    }

    #[test]
    fn record_updates_open_alarms_only() {
        let payload = json!({"sensor": "s1", "ppm": 900});
        let firing = |at| Firing {
            at_ms: at,
            event: Some("e2"),
            payload: &payload,
            title: "Smoke 900".into(),
            dedupe_key: "s1",
        };
        for state in ALL {
            let mut a = in_state(state);
            let result = a.record(firing(NOW + 7), NOW + 8);
            if state == AlarmState::Cleared {
                assert!(conflict(result).contains("raises a new alarm"));
            } else {
                assert_eq!(result, Ok(()));
                assert_eq!((a.count, a.last_seen_ms, a.state), (2, NOW + 7, state));
                assert_eq!(
                    (a.last_event.as_deref(), a.title.as_str()),
                    (Some("e2"), "Smoke 900")
                );
            }
        }
        // A late event counts but keeps the latest payload.
        let mut a = raised(None);
        a.record(firing(NOW - 100), NOW).expect("record");
        assert_eq!(
            (a.count, a.first_seen_ms, a.last_seen_ms),
            (2, NOW - 100, NOW - 5)
        );
        assert_eq!(a.last_event.as_deref(), Some("e1"));
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(alarm_id(7), "alm-000007");
        assert_eq!(parse_id("alm-000007"), Some(7));
        assert_eq!(parse_id(&alarm_id(1_234_567)), Some(1_234_567));
        for bad in ["alm-7", "alm-00000x", "x-000001", "alm-1000000000000"] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn indexes_follow_the_state() {
        let mut s = MemoryStore::default();
        let indexes = |s: &MemoryStore| {
            (
                count(s, keys::OPEN),
                count(s, keys::DUE),
                count(s, keys::CLEARED),
            )
        };
        let mut a = raised(Some(60));
        save_alarm(&mut s, &a).expect("save");
        assert_eq!(indexes(&s), (1, 1, 0));
        a.acknowledge("li", None, NOW).expect("ack");
        save_alarm(&mut s, &a).expect("save");
        assert_eq!(indexes(&s), (1, 0, 0));
        a.clear("li", None, NOW, true).expect("clear");
        save_alarm(&mut s, &a).expect("save");
        assert_eq!(indexes(&s), (0, 0, 1));
    }
}
