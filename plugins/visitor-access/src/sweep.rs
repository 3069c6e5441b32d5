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

/// Walks the `<prefix><ms>/<rest>` keys, earliest first, whose time is at or before
/// `cutoff`, calling `f` with the key, its time and its rest until `budget` calls did
/// their work (`f` returns whether it did; a stale entry it only deletes does not
/// count). Malformed keys are deleted. Returns how many did their work and whether
/// due keys are left for the next call.
fn due_keys<S: Store>(
    s: &mut Session<'_, S>,
    prefix: &str,
    cutoff: i64,
    budget: usize,
    mut f: impl FnMut(&mut Session<'_, S>, &str, i64, &str) -> Result<bool, Error>,
) -> Result<(usize, bool), Error> {
    let mut done = 0;
    for (key, _) in s.scan(prefix, None, budget as u32 + 1)? {
        let Some((at, rest)) = keys::split_timed(&key, prefix) else {
            s.delete(&key)?;
            continue;
        };
        if at > cutoff {
            break;
        }
        if done == budget {
            return Ok((done, true));
        }
        if f(s, &key, at, rest)? {
            done += 1;
        }
    }
    Ok((done, false))
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
