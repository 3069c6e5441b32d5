//! `purge`: housekeeping that a daily cron workflow calls. It removes cleared alarms older
//! than `alarm_retention_days`, replay and event-id records older than
//! `replay_retention_days`, and dedupe slots that hold nothing worth keeping (no open
//! alarm, no cooldown in force, no window that moved in the last two days). Each call does a
//! bounded amount of work; `more: true` says to call again.

use crate::config::Config;
use crate::store::{Store, keys, load, save};
use crate::windows::Slot;
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// The most records of each sort one call removes or inspects.
pub const MAX_LIMIT: u32 = 500;

/// `purge`'s input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeInput {
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `purge`'s output.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct PurgeOutput {
    pub alarms_deleted: u32,
    pub records_deleted: u32,
    pub slots_deleted: u32,
    pub more: bool,
}

/// `purge`.
pub fn purge(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: PurgeInput,
) -> Result<PurgeOutput, Error> {
    let limit = input.limit.unwrap_or(200).clamp(1, MAX_LIMIT);
    let mut more = false;

    // Cleared alarms, oldest clearing first.
    let cutoff = now_ms.saturating_sub(config.alarm_retention_ms());
    let mut alarms_deleted = 0;
    let entries = store.scan(keys::CLEARED, None, limit + 1)?;
    for (key, _) in entries {
        let Some((at, seq)) = keys::split_timed(keys::CLEARED, &key) else {
            return Err(Error::internal(format!("bad cleared index key {key}")));
        };
        if at >= cutoff {
            break;
        }
        if alarms_deleted == limit {
            more = true;
            break;
        }
        let seq: u64 = seq
            .parse()
            .map_err(|_| Error::internal(format!("bad cleared index key {key}")))?;
        store.delete(&keys::alarm(seq))?;
        store.delete(&key)?;
        alarms_deleted += 1;
    }

    // Replay and event-id records whose time is up.
    let mut records_deleted = 0;
    for (key, _) in store.scan(keys::EXPIRY, None, limit + 1)? {
        let Some((at, record)) = keys::split_timed(keys::EXPIRY, &key) else {
            return Err(Error::internal(format!("bad expiry index key {key}")));
        };
        if at > now_ms {
            break;
        }
        if records_deleted == limit {
            more = true;
            break;
        }
        let record = record.to_owned();
        store.delete(&record)?;
        store.delete(&key)?;
        records_deleted += 1;
    }

    // Idle slots, a page at a time from where the last call stopped.
    let cursor: Option<String> = load(store, keys::SLOT_CURSOR)?;
    let page = store.scan(keys::SLOT, cursor.as_deref(), limit)?;
    let full = page.len() == limit as usize;
    let mut slots_deleted = 0;
    let mut last = None;
    for (key, value) in page {
        let slot: Slot = serde_json::from_value(value)
            .map_err(|e| Error::internal(format!("slot {key} is unreadable: {e}")))?;
        if slot.is_idle(now_ms) {
            store.delete(&key)?;
            slots_deleted += 1;
        }
        last = Some(key);
    }
    if full {
        save(store, keys::SLOT_CURSOR, &last)?;
        more = true;
    } else {
        store.delete(keys::SLOT_CURSOR)?;
    }

    Ok(PurgeOutput {
        alarms_deleted,
        records_deleted,
        slots_deleted,
        more,
    })
}
