//! What the domain logic needs from the host — state and events — behind a trait, so that
//! it unit-tests natively against [`mem::MemStore`]; and the state key layout.

use courtyard_sdk::{Error, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The plugin's state and event stream in one community.
///
/// The host commits a call's writes and events atomically when the operation returns `ok`
/// and discards them when it returns an error, so a refusal never leaves half a change.
pub trait Store {
    /// The JSON value under `key`.
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error>;
    /// Stores `value` under `key`.
    fn put(&mut self, key: &str, value: &Value) -> Result<(), Error>;
    /// Removes `key` (a missing key is not an error).
    fn delete(&mut self, key: &str) -> Result<(), Error>;
    /// Up to `limit` (at most 1000) entries whose key starts with `prefix`, in key order,
    /// after `after`.
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, Error>;
    /// Emits an event of a kind declared in the manifest.
    fn emit(&mut self, kind: &str, payload: &Value) -> Result<(), Error>;
}

/// The most entries one `scan` of the host returns.
pub const MAX_SCAN: u32 = 1000;

/// The value under `key`, deserialised.
pub fn load<T: DeserializeOwned>(store: &mut impl Store, key: &str) -> Result<Option<T>, Error> {
    match store.get(key)? {
        None => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(|e| {
            Error::internal(format!("state key {key:?} holds an unexpected record: {e}"))
        }),
    }
}

/// Stores `value` as JSON under `key`.
pub fn save<T: Serialize>(store: &mut impl Store, key: &str, value: &T) -> Result<(), Error> {
    store.put(key, &to_json(value)?)
}

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

/// Emits an event with a serialisable payload.
pub fn emit<T: Serialize>(store: &mut impl Store, kind: &str, payload: &T) -> Result<(), Error> {
    store.emit(kind, &to_json(payload)?)
}

/// Serialises a record or an output.
pub fn to_json<T: Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot serialise: {e}")))
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

/// An in-memory [`Store`] for the native tests, with the host's all-or-nothing calls.
#[cfg(test)]
pub mod mem {
    use super::*;
    use std::collections::BTreeMap;

    /// State and events in memory.
    #[derive(Debug, Default, Clone)]
    pub struct MemStore {
        /// The committed state.
        pub data: BTreeMap<String, Value>,
        /// The committed events, in order.
        pub events: Vec<(String, Value)>,
    }

    impl MemStore {
        /// Runs `f` like the host runs a call: its writes and events are kept only if it
        /// returns `Ok`.
        pub fn call<T>(
            &mut self,
            f: impl FnOnce(&mut Self) -> Result<T, Error>,
        ) -> Result<T, Error> {
            let before = self.clone();
            let result = f(self);
            if result.is_err() {
                *self = before;
            }
            result
        }

        /// The kinds of the events emitted so far.
        pub fn event_kinds(&self) -> Vec<&str> {
            self.events.iter().map(|(k, _)| k.as_str()).collect()
        }
    }

    impl Store for MemStore {
        fn get(&mut self, key: &str) -> Result<Option<Value>, Error> {
            Ok(self.data.get(key).cloned())
        }
        fn put(&mut self, key: &str, value: &Value) -> Result<(), Error> {
            assert!(!key.is_empty() && key.len() <= 512, "bad key {key:?}");
            self.data.insert(key.to_owned(), value.clone());
            Ok(())
        }
        fn delete(&mut self, key: &str) -> Result<(), Error> {
            self.data.remove(key);
            Ok(())
        }
        fn scan(
            &mut self,
            prefix: &str,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<(String, Value)>, Error> {
            Ok(self
                .data
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                .take(limit.min(MAX_SCAN) as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
        fn emit(&mut self, kind: &str, payload: &Value) -> Result<(), Error> {
            assert!(payload.is_object(), "event payloads are objects");
            self.events.push((kind.to_owned(), payload.clone()));
            Ok(())
        }
    }
}
