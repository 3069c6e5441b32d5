//! What the logic needs from the host — a JSON key-value store and an event sink — behind a
//! small [`Store`] trait, so that every operation unit-tests natively with [`MemStore`].
//!
//! # State layout
//!
//! | key | value |
//! |---|---|
//! | `rule/{id}` | a [`Rule`](crate::rules::Rule) |
//! | `bykind/{kind}/{id}` | `null`: the rules of an event kind |
//! | `slot/{rule}/{dedupe key}` | a [`Slot`](crate::windows::Slot): window tracker, open alarm, cooldown |
//! | `alarm/{999999999999 - seq}` | an [`Alarm`](crate::alarms::Alarm), newest first |
//! | `open/{999999999999 - seq}` | `null`: alarms not cleared yet, newest first |
//! | `due/{escalate at ms}/{seq}` | `null`: raised alarms waiting to escalate, soonest first |
//! | `cleared/{cleared at ms}/{seq}` | `null`: cleared alarms, oldest first (for `purge`) |
//! | `idem/{idempotency key}` | a replay record: operation, input, output |
//! | `evt/{event id}` | the result of ingesting that event (events are idempotent by id) |
//! | `exp/{expires at ms}/{key}` | `null`: a replay or event record that `purge` removes |
//! | `meta/…` | counters (alarm sequence, rule revision, rule count), seeded templates, cursors |
//!
//! Numbers in keys are zero-padded so that key order is numeric order.

use courtyard_sdk::{Error, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The host's state and event stream, as the logic sees them.
pub trait Store {
    /// The JSON value under `key`.
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error>;
    /// Stores `value` under `key`.
    fn put(&mut self, key: &str, value: &Value) -> Result<(), Error>;
    /// Removes `key` (a missing key is fine).
    fn delete(&mut self, key: &str) -> Result<(), Error>;
    /// Up to `limit` entries whose key starts with `prefix`, in key order, after `after`.
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, Error>;
    /// Emits an event of a kind declared in the manifest.
    fn emit(&mut self, kind: &str, payload: &Value) -> Result<(), Error>;
}

/// The value under `key`, deserialised.
pub fn load<T: DeserializeOwned>(store: &mut impl Store, key: &str) -> Result<Option<T>, Error> {
    match store.get(key)? {
        None => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(|e| {
            Error::internal(format!("state key {key:?} holds an unexpected value: {e}"))
        }),
    }
}

/// Stores `value` as JSON under `key`.
pub fn save<T: Serialize + ?Sized>(
    store: &mut impl Store,
    key: &str,
    value: &T,
) -> Result<(), Error> {
    store.put(key, &to_json(value)?)
}

/// Stores a `null` marker (an index entry) under `key`.
pub fn mark(store: &mut impl Store, key: &str) -> Result<(), Error> {
    store.put(key, &Value::Null)
}

/// Emits `payload` as an event of `kind`.
pub fn emit<T: Serialize + ?Sized>(
    store: &mut impl Store,
    kind: &str,
    payload: &T,
) -> Result<(), Error> {
    store.emit(kind, &to_json(payload)?)
}

/// `value` as JSON.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot serialise: {e}")))
}

/// The keys of the state layout (see the module documentation).
pub mod keys {
    /// The largest alarm sequence number (12 digits).
    pub const MAX_SEQ: u64 = 999_999_999_999;

    pub const RULE: &str = "rule/";
    pub const ALARM: &str = "alarm/";
    pub const OPEN: &str = "open/";
    pub const DUE: &str = "due/";
    pub const CLEARED: &str = "cleared/";
    pub const SLOT: &str = "slot/";
    pub const EXPIRY: &str = "exp/";
    pub const SEQ: &str = "meta/alarm-seq";
    pub const REVISION: &str = "meta/rule-revision";
    pub const RULE_COUNT: &str = "meta/rule-count";
    pub const SEEDED: &str = "meta/seeded-templates";
    pub const SLOT_CURSOR: &str = "meta/purge-slot-cursor";

    /// A time in milliseconds as 13 digits (negative times are clamped to 0).
    fn ms(at: i64) -> String {
        format!("{:013}", at.max(0))
    }

    pub fn rule(id: &str) -> String {
        format!("{RULE}{id}")
    }
    pub fn by_kind_prefix(kind: &str) -> String {
        format!("bykind/{kind}/")
    }
    pub fn by_kind(kind: &str, id: &str) -> String {
        format!("bykind/{kind}/{id}")
    }
    pub fn slot(rule: &str, dedupe_key: &str) -> String {
        format!("{SLOT}{rule}/{dedupe_key}")
    }
    /// The suffix that orders alarms newest first.
    pub fn newest_first(seq: u64) -> String {
        format!("{:012}", MAX_SEQ - seq.min(MAX_SEQ))
    }
    pub fn alarm(seq: u64) -> String {
        format!("{ALARM}{}", newest_first(seq))
    }
    pub fn open(seq: u64) -> String {
        format!("{OPEN}{}", newest_first(seq))
    }
    pub fn due(at: i64, seq: u64) -> String {
        format!("{DUE}{}/{seq:012}", ms(at))
    }
    pub fn cleared(at: i64, seq: u64) -> String {
        format!("{CLEARED}{}/{seq:012}", ms(at))
    }
    pub fn replay(key: &str) -> String {
        format!("idem/{key}")
    }
    pub fn event(id: &str) -> String {
        format!("evt/{id}")
    }
    pub fn expiry(at: i64, record: &str) -> String {
        format!("{EXPIRY}{}/{record}", ms(at))
    }
    /// The time and the rest of a `{prefix}{13-digit ms}/{rest}` key.
    pub fn split_timed<'k>(prefix: &str, key: &'k str) -> Option<(i64, &'k str)> {
        let rest = key.strip_prefix(prefix)?;
        let (at, rest) = rest.split_once('/')?;
        Some((at.parse().ok()?, rest))
    }
}

/// An in-memory [`Store`] for tests: a sorted map and the list of emitted events.
#[cfg(test)]
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    pub data: std::collections::BTreeMap<String, Value>,
    pub events: Vec<(String, Value)>,
    /// The previous values of the keys written since [`MemStore::begin`], oldest first,
    /// and how many events there were then.
    undo: Option<Undo>,
}

/// The previous values of the keys a call wrote, and the number of events before it.
#[cfg(test)]
type Undo = (Vec<(String, Option<Value>)>, usize);

#[cfg(test)]
impl MemStore {
    /// Starts a call: its writes and events can be undone, as the host discards them
    /// when a call fails.
    pub fn begin(&mut self) {
        self.undo = Some((Vec::new(), self.events.len()));
    }
    /// Ends a call; a failed call's writes and events are undone.
    pub fn end(&mut self, ok: bool) {
        if let Some((writes, events)) = self.undo.take()
            && !ok
        {
            for (key, value) in writes.into_iter().rev() {
                match value {
                    Some(v) => self.data.insert(key, v),
                    None => self.data.remove(&key),
                };
            }
            self.events.truncate(events);
        }
    }
    fn remember(&mut self, key: &str) {
        let previous = self.data.get(key).cloned();
        if let Some((writes, _)) = &mut self.undo {
            writes.push((key.to_owned(), previous));
        }
    }
    /// The kinds of the events emitted so far, and forgets them.
    pub fn take_events(&mut self) -> Vec<String> {
        self.events.drain(..).map(|(kind, _)| kind).collect()
    }
    /// How many keys start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.data.keys().filter(|k| k.starts_with(prefix)).count()
    }
}

#[cfg(test)]
impl Store for MemStore {
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error> {
        Ok(self.data.get(key).cloned())
    }
    fn put(&mut self, key: &str, value: &Value) -> Result<(), Error> {
        assert!(!key.is_empty() && key.len() <= 512, "bad key {key:?}");
        self.remember(key);
        self.data.insert(key.to_owned(), value.clone());
        Ok(())
    }
    fn delete(&mut self, key: &str) -> Result<(), Error> {
        self.remember(key);
        self.data.remove(key);
        Ok(())
    }
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, Error> {
        assert!(limit <= 1000, "the host caps scans at 1000");
        Ok(self
            .data
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn emit(&mut self, kind: &str, payload: &Value) -> Result<(), Error> {
        assert!(payload.is_object(), "event payloads are objects");
        self.events.push((kind.to_owned(), payload.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_keys_sort_and_split() {
        assert!(keys::due(999, 5) < keys::due(1000, 1));
        assert_eq!(
            keys::split_timed(keys::DUE, &keys::due(42, 7)),
            Some((42, "000000000007"))
        );
        assert_eq!(keys::split_timed(keys::DUE, "due/x"), None);
        assert!(keys::alarm(2) < keys::alarm(1), "newest first");
    }
}
