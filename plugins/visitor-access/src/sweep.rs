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

/// `expire-due`.
pub fn run<S: Store>(s: &mut Session<'_, S>, input: SweepInput) -> Result<SweepOutput, Error> {
    let limit = input.limit.unwrap_or(MAX_EXPIRIES).clamp(1, MAX_EXPIRIES) as usize;
    let mut out = SweepOutput::default();
    let now = s.now_ms;

    // Deadlines, earliest first.
    for (key, _) in s.scan(keys::DUE, None, limit as u32 + 1)? {
        let Some((at, id)) = keys::split_timed(&key, keys::DUE) else {
            s.delete(&key)?;
            continue;
        };
        if at > now {
            break;
        }
        if out.expired == limit {
            out.more = true;
            break;
        }
        let visit = visits::load(s, id)?;
        match visit {
            Some(visit) if visit.deadline() == Some(at) => {
                if visits::expire_if_due(s, &visit)? {
                    out.expired += 1;
                }
            }
            // A deadline that no longer belongs to an open visit.
            _ => s.delete(&key)?,
        }
    }

    let before = now - s.config.retention_ms();
    // Closed visits, by closing time.
    for (key, _) in s.scan(keys::DONE, None, VISIT_PURGE_BUDGET as u32 + 1)? {
        let Some((at, id)) = keys::split_timed(&key, keys::DONE) else {
            s.delete(&key)?;
            continue;
        };
        if at > before {
            break;
        }
        if out.purged_visits == VISIT_PURGE_BUDGET {
            out.more = true;
            break;
        }
        match visits::load(s, id)? {
            Some(visit) => {
                visits::purge(s, &visit)?;
                out.purged_visits += 1;
            }
            None => s.delete(&key)?,
        }
    }

    let (checks, more) = audit::purge(s, before, CHECK_PURGE_BUDGET)?;
    out.purged_checks = checks;
    out.more |= more;

    // Replay records, by time.
    for (key, _) in s.scan(keys::REPLAYS_BY_TIME, None, REPLAY_PURGE_BUDGET as u32 + 1)? {
        let Some((at, rest)) = keys::split_timed(&key, keys::REPLAYS_BY_TIME) else {
            s.delete(&key)?;
            continue;
        };
        if at + REPLAY_KEEP_MS > now {
            break;
        }
        if out.purged_replays == REPLAY_PURGE_BUDGET {
            out.more = true;
            break;
        }
        if let Some((operation, idem)) = rest.split_once('/') {
            s.delete(&keys::replay(operation, idem))?;
        }
        s.delete(&key)?;
        out.purged_replays += 1;
    }
    Ok(out)
}
