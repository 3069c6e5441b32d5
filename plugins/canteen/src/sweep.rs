//! The sweep: what time alone changes, applied when someone calls `sweep` (plugins have no
//! timers; a cron workflow calls it every few minutes).
//!
//! Ordering itself never waits for the sweep: every order, menu read and summary compares
//! the slot's cutoff with `now_ms` on the spot. The sweep does the two things that need a
//! call of their own:
//!
//! - it announces `canteen.slot-closed` (the kitchen's prep list) for each slot whose
//!   cutoff has passed, once per closing;
//! - it forgets the replay records of idempotency keys older than the config's
//!   `replay_retention_days`.

use crate::config::Config;
use crate::menu::{self, Menu, Slot, SlotStatus};
use crate::store::{self, Store, keys};
use courtyard_sdk::{Error, Value};
use serde::{Deserialize, Serialize};

/// The most slots one sweep announces (the host caps a call's events at 64).
pub const MAX_ANNOUNCED: usize = 50;
/// The most replay records one sweep forgets.
pub const MAX_PRUNED: u32 = 500;
const MS_PER_DAY: i64 = 86_400_000;

/// Input of `sweep`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepInput {
    /// How many menus to look at, from the first one that may still close (default 200).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A slot announced as closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosedSlot {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// `cutoff` or `staff`.
    pub reason: String,
}

/// Output of `sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepOutput {
    /// The slots announced by this call.
    pub slots_closed: Vec<ClosedSlot>,
    /// How many replay records were forgotten.
    pub replays_pruned: u32,
    /// Whether work was left for another call (call again right away).
    pub more: bool,
}

/// `sweep`.
pub fn sweep(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: SweepInput,
) -> Result<SweepOutput, Error> {
    let limit = input.limit.unwrap_or(200).clamp(1, store::MAX_SCAN);
    let (slots_closed, menus_left) = announce_closed_slots(store, config, now_ms, limit)?;
    let (replays_pruned, replays_left) = prune_replays(store, config, now_ms)?;
    Ok(SweepOutput {
        slots_closed,
        replays_pruned,
        more: menus_left || replays_left,
    })
}

/// Announces the closed slots from the cursor on. The cursor is the date of the first menu
/// that may still owe an announcement; every menu before it has made its own.
fn announce_closed_slots(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    limit: u32,
) -> Result<(Vec<ClosedSlot>, bool), Error> {
    let cursor: Option<String> = store::load(store, keys::SWEEP_CURSOR)?;
    // "menu/{date}" sorts just before the menus of that date.
    let start_after = cursor.as_ref().map(|c| format!("{}{c}", keys::MENU_PREFIX));
    let page: Vec<(String, Menu)> =
        store::scan(store, keys::MENU_PREFIX, start_after.as_deref(), limit)?;
    let full_page = page.len() == limit as usize;
    let mut announced = Vec::new();
    let mut frontier: Option<String> = None;
    let mut last_date: Option<String> = None;
    let mut left = false;
    for (_, mut menu) in page {
        last_date = Some(menu.date.clone());
        if !menu.close_notified {
            let status = menu.status(config, now_ms)?;
            if status != SlotStatus::Open && announced.len() == MAX_ANNOUNCED {
                left = true;
            } else if menu.notify_if_closed(store, config, now_ms)? {
                menu::save(store, &menu)?;
                announced.push(ClosedSlot {
                    date: menu.date.clone(),
                    slot: menu.slot,
                    reason: match status {
                        SlotStatus::ClosedByStaff => "staff".into(),
                        _ => "cutoff".into(),
                    },
                });
            }
        }
        if !menu.close_notified && frontier.is_none() {
            frontier = Some(menu.date.clone());
        }
    }
    let frontier_was_none = frontier.is_none();
    let new_cursor = frontier.or(last_date);
    if let Some(c) = new_cursor
        && cursor.as_ref() != Some(&c)
    {
        store::save(store, keys::SWEEP_CURSOR, &c)?;
    }
    // A full page of menus that have all made their announcement: the cursor moved to its
    // end, and the menus after it are for the next call.
    Ok((announced, left || (full_page && frontier_was_none)))
}

/// Forgets replay records older than the retention, oldest first.
fn prune_replays(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
) -> Result<(u32, bool), Error> {
    let horizon = now_ms - i64::from(config.replay_retention_days) * MS_PER_DAY;
    let page = store.scan(keys::REPLAY_TIME_PREFIX, None, MAX_PRUNED)?;
    let full = page.len() == MAX_PRUNED as usize;
    let mut pruned = 0;
    for (key, _) in page {
        let rest = &key[keys::REPLAY_TIME_PREFIX.len()..];
        let (at, idem_key) = rest
            .split_once('/')
            .ok_or_else(|| Error::internal(format!("bad replay index key {key:?}")))?;
        let at: i64 = at
            .parse()
            .map_err(|_| Error::internal(format!("bad replay index key {key:?}")))?;
        if at >= horizon {
            return Ok((pruned, false));
        }
        store.delete(&keys::replay(idem_key))?;
        store.delete(&key)?;
        pruned += 1;
    }
    Ok((pruned, full))
}

/// Records that a replay record was written at `at_ms`, for [`prune_replays`].
pub fn index_replay(store: &mut impl Store, at_ms: i64, idem_key: &str) -> Result<(), Error> {
    store.put(&keys::replay_time(at_ms, idem_key), &Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// Runs `sweep` with the default config at `now_ms`.
    fn sweep_at(s: &mut MemoryStore, now_ms: i64, limit: Option<u32>) -> SweepOutput {
        sweep(s, &Config::default(), now_ms, SweepInput { limit }).expect("sweep")
    }

    #[test]
    fn announces_each_slot_once_when_its_cutoff_passes() {
        let mut s = MemoryStore::default();
        for date in ["2099-12-01", "2099-12-02"] {
            for slot in Slot::ALL {
                set_menu_for(&mut s, date, slot);
            }
        }
        let out = sweep_at(&mut s, NOW, None);
        assert!(out.slots_closed.is_empty());
        assert!(s.events.is_empty());

        // After lunch's cutoff on the first day: breakfast and lunch close.
        let t = local_ms("2099-12-01T10:00");
        let out = sweep_at(&mut s, t, None);
        let got: Vec<_> = out
            .slots_closed
            .iter()
            .map(|c| (c.date.as_str(), c.slot, c.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("2099-12-01", Slot::Breakfast, "cutoff"),
                ("2099-12-01", Slot::Lunch, "cutoff")
            ]
        );
        assert_eq!(event_kinds(&s), [crate::events::SLOT_CLOSED; 2]);
        assert_eq!(s.events[1].1["dishes"][0]["dish_id"], "tofu");
        assert_eq!(
            s.data[keys::SWEEP_CURSOR],
            "2099-12-01",
            "dinner is still open"
        );

        // Nothing twice.
        let out = sweep_at(&mut s, t + 1, None);
        assert!(out.slots_closed.is_empty());
        assert_eq!(s.events.len(), 2);

        // The next day, the rest.
        let t = local_ms("2099-12-02T23:00");
        let out = sweep_at(&mut s, t, None);
        assert_eq!(out.slots_closed.len(), 4);
        assert_eq!(s.data[keys::SWEEP_CURSOR], "2099-12-02");
        assert!(!out.more);
    }

    #[test]
    fn slots_closed_by_staff_are_not_announced_twice() {
        let mut s = lunch_menu();
        menu::close_slot(&mut s, &Config::default(), NOW, close_input(None)).expect("close");
        assert_eq!(s.events.len(), 1);
        let out = sweep_at(&mut s, local_ms("2099-12-01T23:00"), None);
        assert!(out.slots_closed.is_empty());
        assert_eq!(s.events.len(), 1);
    }

    #[test]
    fn a_new_menu_behind_the_cursor_is_found() {
        let mut s = MemoryStore::default();
        set_menu_for(&mut s, "2099-12-01", Slot::Lunch);
        set_menu_for(&mut s, "2099-12-03", Slot::Lunch);
        let t = local_ms("2099-12-02T12:00");
        sweep_at(&mut s, t, None);
        assert_eq!(s.data[keys::SWEEP_CURSOR], "2099-12-03");
        // The staff publish today's dinner late: the cursor moves back to it.
        let c = Config::default();
        menu::set_menu(&mut s, &c, t, menu_input("2099-12-02", Slot::Dinner)).expect("set");
        assert_eq!(s.data[keys::SWEEP_CURSOR], "2099-12-02");
        let out = sweep_at(&mut s, local_ms("2099-12-02T18:00"), None);
        let got: Vec<_> = out
            .slots_closed
            .iter()
            .map(|c| (c.date.as_str(), c.slot))
            .collect();
        assert_eq!(got, [("2099-12-02", Slot::Dinner)]);
    }

    #[test]
    fn many_future_menus_do_not_make_the_sweep_spin() {
        let mut s = MemoryStore::default();
        for day in 1..=9 {
            set_menu_for(&mut s, &format!("2099-12-0{day}"), Slot::Lunch);
        }
        let out = sweep_at(&mut s, NOW, Some(3));
        assert!(!out.more, "nothing is due");
        let t = local_ms("2099-12-05T12:00");
        let out = sweep_at(&mut s, t, Some(3));
        assert_eq!(out.slots_closed.len(), 3);
        assert!(out.more);
        let out = sweep_at(&mut s, t, Some(3));
        assert_eq!(
            out.slots_closed.len(),
            2,
            "12-04 and 12-05 (12-03 is re-read at the cursor)"
        );
        assert!(out.more, "a full page");
        let out = sweep_at(&mut s, t, Some(3));
        assert!(out.slots_closed.is_empty());
        assert!(!out.more, "stopped at the first open menu, 12-06");
        assert_eq!(s.data[keys::SWEEP_CURSOR], "2099-12-06");
    }

    #[test]
    fn the_event_cap_leaves_work_for_the_next_call() {
        let mut s = MemoryStore::default();
        for day in 1..=20 {
            for slot in Slot::ALL {
                set_menu_for(&mut s, &format!("2099-12-{day:02}"), slot);
            }
        }
        let t = local_ms("2099-12-25T00:00");
        let out = sweep_at(&mut s, t, None);
        assert_eq!(out.slots_closed.len(), MAX_ANNOUNCED);
        assert!(out.more);
        let out = sweep_at(&mut s, t, None);
        assert_eq!(out.slots_closed.len(), 10);
        assert!(!out.more);
    }

    #[test]
    fn old_replay_records_are_forgotten() {
        let mut s = MemoryStore::default();
        for (at, key) in [
            (NOW - 40 * MS_PER_DAY, "old-1"),
            (NOW - 31 * MS_PER_DAY, "old-2"),
            (NOW - MS_PER_DAY, "new"),
        ] {
            s.data.insert(keys::replay(key), serde_json::json!({}));
            index_replay(&mut s, at, key).expect("index");
        }
        let out = sweep_at(&mut s, NOW, None);
        assert_eq!(out.replays_pruned, 2);
        assert!(!s.data.contains_key("idem/old-1"));
        assert!(!s.data.contains_key("idem/old-2"));
        assert!(s.data.contains_key("idem/new"));
        assert_eq!(s.data.keys().filter(|k| k.starts_with("idemt/")).count(), 1);
    }
}
