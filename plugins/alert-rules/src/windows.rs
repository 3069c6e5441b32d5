//! When a matching event fires a rule: at once (`each`), once the matching state has
//! lasted long enough (`duration`), or once enough matching events fall within a window
//! (`count`).
//!
//! Windows are tracked per rule and dedupe key in a [`Slot`], which also remembers the
//! key's open alarm and its cooldown. Windows use the events' own times (`at_ms`), so a
//! device that uploads late still gets its windows right; cooldowns and escalation use the
//! host's time.
//!
//! - `duration`: consecutive matching events form a run; the run lasts from its first to
//!   its last event. A gap longer than `max_gap_seconds` between two matching events starts
//!   a new run, and so does an event of the rule's kind with the same dedupe key that does
//!   not meet the conditions (the state ended). The rule fires on every matching event once
//!   the run has lasted `seconds`. An event older than the run's last event (a late upload)
//!   neither extends nor breaks the run.
//! - `count`: the rule fires on every matching event once at least `count` matching events
//!   (this one included) fall within `window_seconds` of the newest. A late event more than
//!   `window_seconds` older than the newest does not count and does not fire the rule.
//!
//! Events stamped in the future would hold these windows back (every correct event would
//! look late); `ingest` refuses an `at_ms` more than the configured clock skew after the
//! host's time.

use crate::store::{Store, save};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// The longest `duration` a rule may ask for, and the longest cooldown or escalation delay:
/// 7 days.
pub const MAX_SECONDS: u32 = 604_800;
/// The longest gap between events of a run, and the longest count window: 1 day.
pub const MAX_WINDOW_SECONDS: u32 = 86_400;
/// The most events a `count` trigger may ask for.
pub const MAX_COUNT: u32 = 100;
/// The gap a `duration` trigger allows between matching events when the rule says none.
pub const DEFAULT_GAP_SECONDS: u32 = 300;
/// A slot whose windows have not moved for this long (host time) holds nothing useful.
pub const IDLE_MS: i64 = 2 * 86_400_000;

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// Every matching event.
    Each {},
    /// Once the matching state has lasted `seconds`.
    Duration {
        seconds: u32,
        #[serde(default = "default_gap")]
        max_gap_seconds: u32,
    },
    /// Once `count` matching events fall within `window_seconds`.
    Count { count: u32, window_seconds: u32 },
}

impl Default for Trigger {
    fn default() -> Self {
        Self::Each {}
    }
}

fn default_gap() -> u32 {
    DEFAULT_GAP_SECONDS
}

impl Trigger {
    /// Checks the trigger's numbers.
    pub fn check(&self) -> Result<(), Error> {
        match *self {
            Self::Each {} => Ok(()),
            Self::Duration {
                seconds,
                max_gap_seconds,
            } => {
                within("seconds", seconds, MAX_SECONDS, " (7 days)")?;
                within(
                    "max_gap_seconds",
                    max_gap_seconds,
                    MAX_WINDOW_SECONDS,
                    " (1 day)",
                )
            }
            Self::Count {
                count,
                window_seconds,
            } => {
                within("count", count, MAX_COUNT, "")?;
                within(
                    "window_seconds",
                    window_seconds,
                    MAX_WINDOW_SECONDS,
                    " (1 day)",
                )
            }
        }
    }
}

/// Refuses `trigger.{field}` unless it is 1 to `max` (`max_note` says how long `max` is).
fn within(field: &str, value: u32, max: u32, max_note: &str) -> Result<(), Error> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "trigger.{field} must be 1 to {max}{max_note}; it is {value}"
        )))
    }
}

/// A run of matching events (for `duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The time of the run's first event.
    pub since_ms: i64,
    /// The time of the run's latest event.
    pub last_ms: i64,
}

/// What the plugin remembers about one rule and dedupe key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The rule's `window_revision` the windows below belong to.
    pub window_revision: u64,
    /// The current run (`duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// The times of recent matching events, oldest first (`count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hits: Vec<i64>,
    /// The sequence number of the open (not cleared) alarm of this key.
    #[serde(default)]
    pub open: Option<u64>,
    /// Until when a new alarm of this key is suppressed (host time).
    #[serde(default)]
    pub cooldown_until_ms: Option<i64>,
    /// When the slot last changed (host time).
    #[serde(default)]
    pub touched_ms: i64,
}

/// What a matching event means for the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rule fires: raise or update the alarm.
    Fire,
    /// Not yet: why.
    Pending(String),
}

impl Slot {
    /// Forgets the windows if they were measured for another version of the rule.
    pub fn follow_revision(&mut self, window_revision: u64) {
        if self.window_revision != window_revision {
            self.window_revision = window_revision;
            self.run = None;
            self.hits.clear();
        }
    }

    /// An event of the rule's kind with this key, at `at_ms`, that does not meet the
    /// conditions: a `duration` state has ended, unless the event is older than the run's
    /// last event (a late upload neither extends nor breaks the run). Returns whether the
    /// slot changed.
    pub fn miss(&mut self, trigger: &Trigger, at_ms: i64) -> bool {
        match (trigger, self.run) {
            (Trigger::Duration { .. }, Some(run)) if at_ms >= run.last_ms => {
                self.run = None;
                true
            }
            _ => false,
        }
    }

    /// A matching event at `at_ms`.
    pub fn hit(&mut self, trigger: &Trigger, at_ms: i64) -> Verdict {
        match *trigger {
            Trigger::Each {} => Verdict::Fire,
            Trigger::Duration {
                seconds,
                max_gap_seconds,
            } => {
                let run = match self.run {
                    Some(mut run) if at_ms >= run.last_ms => {
                        if at_ms - run.last_ms <= i64::from(max_gap_seconds) * 1000 {
                            run.last_ms = at_ms;
                            run
                        } else {
                            Run {
                                since_ms: at_ms,
                                last_ms: at_ms,
                            }
                        }
                    }
                    // A late event: the run stays as it is.
                    Some(run) => run,
                    None => Run {
                        since_ms: at_ms,
                        last_ms: at_ms,
                    },
                };
                self.run = Some(run);
                let lasted = run.last_ms - run.since_ms;
                if lasted >= i64::from(seconds) * 1000 {
                    Verdict::Fire
                } else {
                    Verdict::Pending(format!(
                        "the state has lasted {} s of the {seconds} s the rule needs",
                        crate::time::secs(lasted)
                    ))
                }
            }
            Trigger::Count {
                count,
                window_seconds,
            } => {
                let at = self.hits.partition_point(|&h| h <= at_ms);
                self.hits.insert(at, at_ms);
                let newest = *self.hits.last().unwrap_or(&at_ms);
                let window = i64::from(window_seconds) * 1000;
                self.hits.retain(|&h| newest - h <= window);
                let keep = count.max(1) as usize;
                if self.hits.len() > keep {
                    self.hits.drain(..self.hits.len() - keep);
                }
                if newest - at_ms > window {
                    // A late event outside the window of the newest: it does not count.
                    Verdict::Pending(format!(
                        "the event at {} is more than {window_seconds} s older than the newest \
                         matching event ({}): it is outside the window",
                        crate::time::fmt_ms(at_ms),
                        crate::time::fmt_ms(newest)
                    ))
                } else if self.hits.len() >= keep {
                    Verdict::Fire
                } else {
                    Verdict::Pending(format!(
                        "{} of the {count} matching events the rule needs within {window_seconds} s",
                        self.hits.len()
                    ))
                }
            }
        }
    }

    /// Whether a cooldown is in force at `now_ms`.
    pub fn cooling(&self, now_ms: i64) -> bool {
        self.cooldown_until_ms.is_some_and(|until| now_ms < until)
    }

    /// Whether the slot holds nothing worth keeping at `now_ms`: no open alarm, no
    /// cooldown in force, and no window that is still moving.
    pub fn is_idle(&self, now_ms: i64) -> bool {
        self.open.is_none()
            && !self.cooling(now_ms)
            && ((self.run.is_none() && self.hits.is_empty()) || now_ms - self.touched_ms > IDLE_MS)
    }
}

/// Stores the slot under `key`, or removes it when it holds nothing worth keeping.
pub fn put_slot(store: &mut impl Store, key: &str, slot: &Slot, now_ms: i64) -> Result<(), Error> {
    if slot.is_idle(now_ms) {
        store.delete(key)
    } else {
        save(store, key, slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1000;
    const MIN: i64 = 60 * SEC;

    fn duration(seconds: u32, gap: u32) -> Trigger {
        Trigger::Duration {
            seconds,
            max_gap_seconds: gap,
        }
    }

    fn count(count: u32, window_seconds: u32) -> Trigger {
        Trigger::Count {
            count,
            window_seconds,
        }
    }

    #[test]
    fn each_fires_every_time() {
        let mut s = Slot::default();
        assert_eq!(s.hit(&Trigger::Each {}, 0), Verdict::Fire);
        assert_eq!(s.hit(&Trigger::Each {}, 0), Verdict::Fire);
        assert!(!s.miss(&Trigger::Each {}, 0));
    }

    #[test]
    fn duration_fires_once_the_state_has_lasted() {
        let t = duration(600, 120);
        let mut s = Slot::default();
        let mut verdicts = Vec::new();
        for minute in [0, 2, 4, 6, 8, 10, 11] {
            verdicts.push(s.hit(&t, minute * MIN));
        }
        assert_eq!(
            verdicts[..5],
            [
                Verdict::Pending("the state has lasted 0 s of the 600 s the rule needs".into()),
                Verdict::Pending("the state has lasted 120 s of the 600 s the rule needs".into()),
                Verdict::Pending("the state has lasted 240 s of the 600 s the rule needs".into()),
                Verdict::Pending("the state has lasted 360 s of the 600 s the rule needs".into()),
                Verdict::Pending("the state has lasted 480 s of the 600 s the rule needs".into()),
            ]
        );
        assert_eq!(verdicts[5], Verdict::Fire, "exactly 600 s is enough");
        assert_eq!(
            verdicts[6],
            Verdict::Fire,
            "and it keeps firing while the state lasts"
        );
        assert_eq!(
            s.run,
            Some(Run {
                since_ms: 0,
                last_ms: 11 * MIN
            })
        );
    }

    #[test]
    fn a_gap_longer_than_allowed_starts_a_new_run() {
        let t = duration(600, 120);
        let mut s = Slot::default();
        s.hit(&t, 0);
        s.hit(&t, 2 * MIN);
        // Exactly the gap continues the run; one millisecond more does not.
        assert!(matches!(s.hit(&t, 4 * MIN), Verdict::Pending(_)));
        assert_eq!(s.run.map(|r| r.since_ms), Some(0));
        assert!(matches!(s.hit(&t, 6 * MIN + 1), Verdict::Pending(_)));
        assert_eq!(
            s.run,
            Some(Run {
                since_ms: 6 * MIN + 1,
                last_ms: 6 * MIN + 1
            })
        );
    }

    #[test]
    fn a_miss_ends_the_state() {
        let t = duration(600, 120);
        let mut s = Slot::default();
        for minute in [0, 2, 4, 6, 8] {
            s.hit(&t, minute * MIN);
        }
        assert!(s.miss(&t, 9 * MIN));
        assert!(!s.miss(&t, 9 * MIN), "nothing left to end");
        assert!(matches!(s.hit(&t, 10 * MIN), Verdict::Pending(_)));
        // Count and each triggers ignore misses.
        let mut c = Slot::default();
        c.hit(&count(3, 60), 0);
        assert!(!c.miss(&count(3, 60), MIN));
        assert_eq!(c.hits, [0]);
    }

    #[test]
    fn late_events_neither_extend_nor_break_a_run() {
        let t = duration(600, 120);
        let mut s = Slot::default();
        s.hit(&t, 10 * MIN);
        s.hit(&t, 12 * MIN);
        assert!(matches!(s.hit(&t, MIN), Verdict::Pending(_)));
        assert_eq!(
            s.run,
            Some(Run {
                since_ms: 10 * MIN,
                last_ms: 12 * MIN
            })
        );
    }

    #[test]
    fn a_late_miss_does_not_break_a_run() {
        let t = duration(600, 120);
        let mut s = Slot::default();
        for minute in [0, 2, 4, 6, 8] {
            s.hit(&t, minute * MIN);
        }
        assert!(!s.miss(&t, 3 * MIN), "older than the run's last event");
        assert_eq!(
            s.run,
            Some(Run {
                since_ms: 0,
                last_ms: 8 * MIN
            })
        );
        assert_eq!(s.hit(&t, 10 * MIN), Verdict::Fire);
        // A miss at the run's last event or later ends it.
        assert!(s.miss(&t, 10 * MIN));
        assert_eq!(s.run, None);
    }

    #[test]
    fn a_late_event_outside_the_count_window_does_not_fire() {
        let t = count(2, 60);
        let mut s = Slot::default();
        s.hit(&t, 10 * MIN);
        assert_eq!(s.hit(&t, 10 * MIN + 30 * SEC), Verdict::Fire);
        assert_eq!(
            s.hit(&t, MIN),
            Verdict::Pending(
                "the event at 1970-01-01T00:01:00Z is more than 60 s older than the newest \
                 matching event (1970-01-01T00:10:30Z): it is outside the window"
                    .into()
            )
        );
        assert_eq!(s.hits, [10 * MIN, 10 * MIN + 30 * SEC], "unchanged");
        // A late event inside the window still fires.
        assert_eq!(s.hit(&t, 9 * MIN + 45 * SEC), Verdict::Fire);
    }

    #[test]
    fn count_fires_with_enough_events_in_the_window() {
        let t = count(3, 300);
        let mut s = Slot::default();
        assert_eq!(
            s.hit(&t, 0),
            Verdict::Pending("1 of the 3 matching events the rule needs within 300 s".into())
        );
        assert_eq!(
            s.hit(&t, 2 * MIN),
            Verdict::Pending("2 of the 3 matching events the rule needs within 300 s".into())
        );
        assert_eq!(
            s.hit(&t, 5 * MIN),
            Verdict::Fire,
            "0 and 5 min are exactly 300 s apart"
        );
        assert_eq!(s.hit(&t, 6 * MIN), Verdict::Fire);
        assert_eq!(
            s.hits,
            [2 * MIN, 5 * MIN, 6 * MIN],
            "keeps only what it needs"
        );
    }

    #[test]
    fn count_forgets_events_that_left_the_window() {
        let t = count(3, 300);
        let mut s = Slot::default();
        s.hit(&t, 0);
        s.hit(&t, MIN);
        assert_eq!(
            s.hit(&t, 5 * MIN + 1),
            Verdict::Pending("2 of the 3 matching events the rule needs within 300 s".into())
        );
        assert_eq!(s.hits, [MIN, 5 * MIN + 1]);
        // A late event inside the window counts.
        assert_eq!(s.hit(&t, 3 * MIN), Verdict::Fire);
        assert_eq!(s.hits, [MIN, 3 * MIN, 5 * MIN + 1]);
    }

    #[test]
    fn count_of_one_fires_at_once() {
        let mut s = Slot::default();
        assert_eq!(s.hit(&count(1, 1), 7), Verdict::Fire);
    }

    #[test]
    fn a_new_window_revision_forgets_the_windows_only() {
        let mut s = Slot {
            window_revision: 1,
            run: Some(Run {
                since_ms: 0,
                last_ms: 1,
            }),
            hits: vec![1],
            open: Some(4),
            cooldown_until_ms: Some(9),
            touched_ms: 0,
        };
        s.follow_revision(1);
        assert!(s.run.is_some());
        s.follow_revision(2);
        assert_eq!(s.run, None);
        assert!(s.hits.is_empty());
        assert_eq!(
            (s.open, s.cooldown_until_ms, s.window_revision),
            (Some(4), Some(9), 2)
        );
    }

    #[test]
    fn idleness() {
        let mut s = Slot::default();
        assert!(s.is_idle(0));
        s.cooldown_until_ms = Some(100);
        assert!(s.cooling(99) && !s.is_idle(99));
        assert!(!s.cooling(100) && s.is_idle(100));
        s.hits = vec![5];
        assert!(!s.is_idle(100));
        assert!(s.is_idle(IDLE_MS + 1), "a stale window is worth nothing");
        s.open = Some(1);
        assert!(!s.is_idle(IDLE_MS + 1));
    }

    #[test]
    fn trigger_numbers_are_checked() {
        assert!(Trigger::Each {}.check().is_ok());
        assert!(duration(600, 120).check().is_ok());
        for (bad, message) in [
            (
                duration(0, 120),
                "trigger.seconds must be 1 to 604800 (7 days); it is 0",
            ),
            (
                duration(MAX_SECONDS + 1, 120),
                "trigger.seconds must be 1 to 604800 (7 days); it is 604801",
            ),
            (
                duration(60, 0),
                "trigger.max_gap_seconds must be 1 to 86400 (1 day); it is 0",
            ),
            (
                duration(60, MAX_WINDOW_SECONDS + 1),
                "trigger.max_gap_seconds must be 1 to 86400 (1 day); it is 86401",
            ),
            (count(0, 60), "trigger.count must be 1 to 100; it is 0"),
            (
                count(MAX_COUNT + 1, 60),
                "trigger.count must be 1 to 100; it is 101",
            ),
            (
                count(2, 0),
                "trigger.window_seconds must be 1 to 86400 (1 day); it is 0",
            ),
        ] {
            assert_eq!(bad.check(), Err(Error::invalid_input(message)), "{bad:?}");
        }
    }

    #[test]
    fn triggers_read_and_write_as_tagged_json() {
        let t: Trigger =
            serde_json::from_str(r#"{"type": "duration", "seconds": 600}"#).expect("valid");
        assert_eq!(t, duration(600, DEFAULT_GAP_SECONDS));
        assert_eq!(
            serde_json::to_value(count(3, 60)).expect("json"),
            serde_json::json!({"type": "count", "count": 3, "window_seconds": 60})
        );
        assert!(serde_json::from_str::<Trigger>(r#"{"type": "each", "x": 1}"#).is_err());
        assert!(
            serde_json::from_str::<Trigger>(
                r#"{"type": "count", "count": 1, "window_seconds": 1, "x": 1}"#
            )
            .is_err()
        );
        assert_eq!(
            serde_json::from_str::<Trigger>(r#"{"type": "each"}"#).expect("each"),
            Trigger::Each {}
        );
        assert!(serde_json::from_str::<Trigger>(r#"{"type": "sometimes"}"#).is_err());
    }
}
