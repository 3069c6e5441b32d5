//! What the domain logic needs from the host — state and events — is the SDK's
//! [`Store`] trait (the host's [`courtyard_sdk::store::HostStore`] in the component, the
//! SDK's in-memory `MemoryStore` in the native tests); this module adds the typed scans the
//! canteen pages with, and the state key layout.
//!
//! The host commits a call's writes and events atomically when the operation returns `ok`
//! and discards them when it returns an error, so a refusal never leaves half a change.

pub use courtyard_sdk::store::{Store, emit, load, save};

use courtyard_sdk::Error;
use serde::de::DeserializeOwned;

/// The most entries one `scan` of the host returns.
pub const MAX_SCAN: u32 = 1000;

/// Up to `limit` records under `prefix` after `after`, deserialised.
pub fn scan<T: DeserializeOwned>(
    store: &mut impl Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, T)>, Error> {
    store
        .scan(prefix, after, limit.min(MAX_SCAN))?
        .into_iter()
        .map(|(key, value)| {
            let record = serde_json::from_value(value).map_err(|e| {
                Error::internal(format!("state key {key:?} holds an unexpected record: {e}"))
            })?;
            Ok((key, record))
        })
        .collect()
}

/// Every record under `prefix`, paging through the host's scan limit.
pub fn scan_all<T: DeserializeOwned>(
    store: &mut impl Store,
    prefix: &str,
) -> Result<Vec<(String, T)>, Error> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Vec<(String, T)> = scan(store, prefix, after.as_deref(), MAX_SCAN)?;
        let full = page.len() == MAX_SCAN as usize;
        after = page.last().map(|(k, _)| k.clone());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Takes the next number of the sequence under `key` (the orders or the runs of a meal
/// slot): one more than the last one taken, or a conflict saying `full()` once `max` are.
pub fn next_seq(
    store: &mut impl Store,
    key: &str,
    max: u32,
    full: impl FnOnce() -> String,
) -> Result<u32, Error> {
    let seq = load::<u32>(store, key)?.unwrap_or(0) + 1;
    if seq > max {
        return Err(Error::conflict(full()));
    }
    save(store, key, &seq)?;
    Ok(seq)
}

/// The state key layout. Numbers are zero-padded so that key order is time order; slots
/// are stored by their index (0 breakfast, 1 lunch, 2 dinner) so that a day's keys come
/// in meal order.
pub mod keys {
    use crate::menu::Slot;

    /// A menu: `menu/{date}/{slot index}`.
    pub fn menu(date: &str, slot: Slot) -> String {
        format!("menu/{date}/{}", slot.index())
    }
    /// Every menu.
    pub const MENU_PREFIX: &str = "menu/";
    /// The menus of one day.
    pub fn menu_day_prefix(date: &str) -> String {
        format!("menu/{date}/")
    }

    /// An order: `order/{date}/{slot index}/{seq:04}`.
    pub fn order(date: &str, slot: Slot, seq: u32) -> String {
        format!("order/{date}/{}/{seq:04}", slot.index())
    }
    /// The orders of one day.
    pub fn order_day_prefix(date: &str) -> String {
        format!("order/{date}/")
    }
    /// The orders of one meal slot.
    pub fn order_slot_prefix(date: &str, slot: Slot) -> String {
        format!("order/{date}/{}/", slot.index())
    }
    /// The last order number used in a meal slot.
    pub fn order_seq(date: &str, slot: Slot) -> String {
        format!("seq/order/{date}/{}", slot.index())
    }

    /// A delivery run: `run/{date}/{slot index}/{seq:03}`.
    pub fn run(date: &str, slot: Slot, seq: u32) -> String {
        format!("run/{date}/{}/{seq:03}", slot.index())
    }
    /// The runs of one day.
    pub fn run_day_prefix(date: &str) -> String {
        format!("run/{date}/")
    }
    /// The runs of one meal slot.
    pub fn run_slot_prefix(date: &str, slot: Slot) -> String {
        format!("run/{date}/{}/", slot.index())
    }
    /// The last run number used in a meal slot.
    pub fn run_seq(date: &str, slot: Slot) -> String {
        format!("seq/run/{date}/{}", slot.index())
    }

    /// A registered resident.
    pub fn resident(resident_id: &str) -> String {
        format!("resident/{resident_id}")
    }
    /// Every resident.
    pub const RESIDENT_PREFIX: &str = "resident/";
    /// The index entry of a resident's order (value: the order id).
    pub fn resident_order(resident_id: &str, date: &str, slot: Slot, seq: u32) -> String {
        format!("resord/{resident_id}/{date}/{}/{seq:04}", slot.index())
    }
    /// A resident's orders in one meal slot.
    pub fn resident_slot_prefix(resident_id: &str, date: &str, slot: Slot) -> String {
        format!("resord/{resident_id}/{date}/{}/", slot.index())
    }

    /// The replay record of an idempotency key.
    pub fn replay(key: &str) -> String {
        format!("idem/{key}")
    }
    /// The time index of replay records, for the sweep.
    pub const REPLAY_TIME_PREFIX: &str = "idemt/";
    /// A replay record's entry in the time index.
    pub fn replay_time(at_ms: i64, key: &str) -> String {
        format!("idemt/{:013}/{key}", at_ms.max(0))
    }

    /// The date from which the sweep looks for slots whose cutoff passed.
    pub const SWEEP_CURSOR: &str = "sweep/menu-cursor";
}
