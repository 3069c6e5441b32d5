//! `expire-due`: the sweep a workflow or cron schedule calls (every few minutes) to
//! write down the time-based transitions — unanswered visits and passes at the end of
//! their window expire, with their events — and to remove what the community keeps
//! no longer: closed visits and gate checks older than `retention_days`, replay
//! records older than seven days.
//!
//! Reads apply expiry too, so nobody ever sees a visit that should have expired; the
//! sweep makes sure the events go out even for visits nobody reads.

use crate::audit;
use crate::keys;
use crate::store::{REPLAY_KEEP_MS, Session, Store};
use crate::visits;
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// Default and largest number of expiries per call (each emits an event; the host
/// allows 64 per call).
pub const MAX_EXPIRIES: u32 = 50;
/// Closed visits removed per call at most.
pub const VISIT_PURGE_BUDGET: usize = 200;
/// Gate checks removed per call at most.
pub const CHECK_PURGE_BUDGET: usize = 500;
/// Replay records removed per call at most.
pub const REPLAY_PURGE_BUDGET: usize = 500;

/// `expire-due`'s input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepInput {
    /// At most this many expiries (1–50, default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `expire-due`'s output.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepOutput {
    /// Visits that expired.
    pub expired: usize,
    /// Closed visits removed after `retention_days`.
    pub purged_visits: usize,
    /// Gate checks removed after `retention_days`.
    pub purged_checks: usize,
    /// Replay records removed after seven days.
    pub purged_replays: usize,
    /// Whether work is left: call again.
    pub more: bool,
}

/// At most this many keys are examined by one walk of the due keys (stale and malformed
/// ones included), so that a call stays within the host's CPU limit; a walk that stops
/// there says that keys are left.
pub const MAX_EXAMINED: usize = 2000;
const SCAN_BATCH: u32 = 200;

/// Walks the `<prefix><ms>/<rest>` keys, earliest first, whose time is at or before
/// `cutoff`, calling `f` with the key, its time and its rest until `budget` calls did
/// their work (`f` returns whether it did; a stale entry it only deletes does not
/// count, and the walk goes on past it). Malformed keys are deleted. Returns how many
/// did their work and whether due keys may be left for the next call: `false` only
/// when the due keys ran out (or the next key is not yet due).
fn due_keys<S: Store>(
    s: &mut Session<'_, S>,
    prefix: &str,
    cutoff: i64,
    budget: usize,
    mut f: impl FnMut(&mut Session<'_, S>, &str, i64, &str) -> Result<bool, Error>,
) -> Result<(usize, bool), Error> {
    let mut done = 0;
    let mut examined = 0;
    let mut cursor: Option<String> = None;
    loop {
        let batch = s.scan(prefix, cursor.as_deref(), SCAN_BATCH)?;
        let full = batch.len() == SCAN_BATCH as usize;
        for (key, _) in batch {
            if examined == MAX_EXAMINED {
                return Ok((done, true));
            }
            examined += 1;
            match keys::split_timed(&key, prefix) {
                None => s.delete(&key)?,
                Some((at, _)) if at > cutoff => return Ok((done, false)),
                Some(_) if done == budget => return Ok((done, true)),
                Some((at, rest)) => {
                    if f(s, &key, at, rest)? {
                        done += 1;
                    }
                }
            }
            cursor = Some(key);
        }
        if !full {
            return Ok((done, false));
        }
    }
}

/// `expire-due`.
pub fn run<S: Store>(s: &mut Session<'_, S>, input: SweepInput) -> Result<SweepOutput, Error> {
    let limit = input.limit.unwrap_or(MAX_EXPIRIES).clamp(1, MAX_EXPIRIES) as usize;
    let now = s.now_ms;

    // Deadlines, earliest first.
    let (expired, more_due) = due_keys(s, keys::DUE, now, limit, |s, key, at, id| {
        match visits::load(s, id)? {
            Some(visit) if visit.deadline() == Some(at) => visits::expire_if_due(s, &visit),
            // A deadline that no longer belongs to an open visit.
            _ => s.delete(key).map(|()| false),
        }
    })?;

    let before = now - s.config.retention_ms();
    // Closed visits, by closing time.
    let (purged_visits, more_visits) = due_keys(
        s,
        keys::DONE,
        before,
        VISIT_PURGE_BUDGET,
        |s, key, _, id| match visits::load(s, id)? {
            Some(visit) => visits::purge(s, &visit).map(|()| true),
            None => s.delete(key).map(|()| false),
        },
    )?;

    let (purged_checks, more_checks) = audit::purge(s, before, CHECK_PURGE_BUDGET)?;

    // Replay records, by time.
    let (purged_replays, more_replays) = due_keys(
        s,
        keys::REPLAYS_BY_TIME,
        now - REPLAY_KEEP_MS,
        REPLAY_PURGE_BUDGET,
        |s, key, _, rest| {
            if let Some((operation, idem)) = rest.split_once('/') {
                s.delete(&keys::replay(operation, idem))?;
            }
            s.delete(key).map(|()| true)
        },
    )?;

    Ok(SweepOutput {
        expired,
        purged_visits,
        purged_checks,
        purged_replays,
        more: more_due || more_visits || more_checks || more_replays,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::session;
    use courtyard_sdk::testing::MemoryStore;
    use serde_json::json;

    /// `n` keys due at 1, 2, … under `p/`; `f` does its work on the keys whose rest
    /// starts with `w` and deletes the others (stale).
    fn walk(store: &mut MemoryStore, cutoff: i64, budget: usize) -> (usize, bool) {
        let mut s = session(store, 0, None);
        due_keys(&mut s, "p/", cutoff, budget, |s, key, _, rest| {
            s.delete(key)?;
            Ok(rest.starts_with('w'))
        })
        .expect("walk")
    }

    #[test]
    fn the_walk_goes_past_stale_keys_until_its_budget_or_the_end() {
        let mut store = MemoryStore::default();
        for n in 1..=450 {
            let rest = if n % 150 == 0 { "work" } else { "stale" };
            store.data.insert(format!("p/{n:013}/{rest}"), json!(true));
        }
        store.data.insert("p/not-a-time".into(), json!(true));
        assert_eq!(
            walk(&mut store, 10_000, 2),
            (2, true),
            "past 299 stale keys"
        );
        assert_eq!(walk(&mut store, 10_000, 2), (1, false));
        assert!(store.data.is_empty(), "stale and malformed keys went too");
    }

    #[test]
    fn the_walk_stops_at_the_cutoff_and_at_its_examination_cap() {
        let mut store = MemoryStore::default();
        for n in 1..=10 {
            store.data.insert(format!("p/{n:013}/work"), json!(true));
        }
        assert_eq!(
            walk(&mut store, 4, 50),
            (4, false),
            "the rest is not yet due"
        );
        let mut store = MemoryStore::default();
        for n in 1..=MAX_EXAMINED + 5 {
            store.data.insert(format!("p/{n:013}/stale"), json!(true));
        }
        assert_eq!(walk(&mut store, i64::MAX, 5), (0, true));
        assert_eq!(walk(&mut store, i64::MAX, 5), (0, false));
    }
}
