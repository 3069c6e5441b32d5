//! What the logic needs from the host — key-value state and events — as a small trait,
//! so that every operation unit-tests natively against an in-memory store.
//!
//! ## State keys
//!
//! | key | value |
//! |---|---|
//! | `screen/{screen_id}` | a [`Screen`](crate::screens::Screen) |
//! | `driver/{driver_id}` | a [`Driver`](crate::drivers::Driver) |
//! | `ride/{ride_id}` | a [`Ride`](crate::rides::Ride) |
//! | `seq/ride` | the number of the last ride created |
//! | `all/{inverted seq}` | ride id: every ride, newest first |
//! | `hist/{screen_id}/{inverted seq}` | ride id: a screen's rides, newest first |
//! | `open/{state}/{ride_id}` | ride id: rides in a non-final state, oldest first |
//! | `due/{deadline ms, 15 digits}/{ride_id}` | ride id: the offer round deadlines, soonest first |
//! | `offer/{driver_id}/{ride_id}` | ride id: the open offers of a driver |
//! | `idem/{operation}/{idempotency key}` | a replay record |
//! | `sweep/replay-cursor` | where `tick` goes on purging replay records |

use courtyard_sdk::{Error, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most entries the host returns from one scan.
pub const MAX_SCAN: u32 = 1000;

/// The plugin's state and event stream.
pub trait Store {
    /// The JSON value under `key`.
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error>;
    /// Stores a JSON value under `key`.
    fn put(&mut self, key: &str, value: &Value) -> Result<(), Error>;
    /// Removes `key` (a missing key is not an error).
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
pub fn save<T: Serialize>(store: &mut impl Store, key: &str, value: &T) -> Result<(), Error> {
    let value = to_json(value)?;
    store.put(key, &value)
}

/// Serialises a value for state, output or an event.
pub fn to_json<T: Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot serialise: {e}")))
}

/// A page of string values (ids) under `prefix`, after the key `after`: the values and
/// whether more follow.
pub fn page_of_ids(
    store: &mut impl Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<String>, bool), Error> {
    let limit = limit.clamp(1, MAX_SCAN - 1);
    // One more than asked, to know whether there is a next page.
    let mut entries = store.scan(prefix, after, limit + 1)?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let ids = entries
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(id) => Ok(id),
            other => Err(Error::internal(format!(
                "index key {key:?} holds {other} instead of an id"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ids, more))
}

/// A page of values under `prefix`, after the key `after`, deserialised: the values and
/// whether more follow.
pub fn page_of<T: DeserializeOwned>(
    store: &mut impl Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<T>, bool), Error> {
    let limit = limit.clamp(1, MAX_SCAN - 1);
    let mut entries = store.scan(prefix, after, limit + 1)?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let items = entries
        .into_iter()
        .map(|(key, value)| {
            serde_json::from_value(value).map_err(|e| {
                Error::internal(format!("state key {key:?} holds an unexpected value: {e}"))
            })
        })
        .collect::<Result<Vec<T>, _>>()?;
    Ok((items, more))
}

/// Every value under `prefix`, deserialised, scanning page by page.
pub fn load_all<T: DeserializeOwned>(
    store: &mut impl Store,
    prefix: &str,
) -> Result<Vec<(String, T)>, Error> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan(prefix, after.as_deref(), MAX_SCAN)?;
        let full = page.len() >= MAX_SCAN as usize;
        after = page.last().map(|(k, _)| k.clone());
        for (key, value) in page {
            let item = serde_json::from_value(value).map_err(|e| {
                Error::internal(format!("state key {key:?} holds an unexpected value: {e}"))
            })?;
            out.push((key, item));
        }
        if !full {
            return Ok(out);
        }
    }
}

#[cfg(test)]
pub(crate) mod mem {
    //! An in-memory [`Store`] for the unit tests.

    use super::*;
    use std::collections::BTreeMap;

    /// State in a sorted map; emitted events in a list.
    #[derive(Debug, Default, Clone)]
    pub struct MemStore {
        pub data: BTreeMap<String, Value>,
        pub events: Vec<(String, Value)>,
    }

    impl MemStore {
        /// The kinds of the events emitted so far.
        pub fn event_kinds(&self) -> Vec<&str> {
            self.events.iter().map(|(k, _)| k.as_str()).collect()
        }

        /// The keys under a prefix.
        pub fn keys(&self, prefix: &str) -> Vec<String> {
            self.data
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
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

#[cfg(test)]
mod tests {
    use super::mem::MemStore;
    use super::*;
    use courtyard_sdk::json;

    #[test]
    fn pages_of_ids_say_whether_more_follow() {
        let mut s = MemStore::default();
        for i in 0..5 {
            s.put(&format!("x/{i}"), &json!(format!("id{i}")))
                .expect("put");
        }
        s.put("y/0", &json!("other")).expect("put");
        let (ids, more) = page_of_ids(&mut s, "x/", None, 3).expect("page");
        assert_eq!(ids, ["id0", "id1", "id2"]);
        assert!(more);
        let (ids, more) = page_of_ids(&mut s, "x/", Some("x/2"), 3).expect("page");
        assert_eq!(ids, ["id3", "id4"]);
        assert!(!more);
    }

    #[test]
    fn an_index_holding_a_non_id_is_an_internal_error() {
        let mut s = MemStore::default();
        s.put("x/0", &json!(5)).expect("put");
        assert!(matches!(
            page_of_ids(&mut s, "x/", None, 3),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn load_all_crosses_scan_pages() {
        let mut s = MemStore::default();
        for i in 0..(MAX_SCAN + 5) {
            s.put(&format!("n/{i:05}"), &json!(i)).expect("put");
        }
        let all: Vec<(String, u32)> = load_all(&mut s, "n/").expect("all");
        assert_eq!(all.len(), (MAX_SCAN + 5) as usize);
        assert_eq!(all.last().map(|(_, v)| *v), Some(MAX_SCAN + 4));
    }

    #[test]
    fn bad_state_values_are_internal_errors_naming_the_key() {
        let mut s = MemStore::default();
        s.put("n/1", &json!("text")).expect("put");
        match load::<u32>(&mut s, "n/1") {
            Err(Error::Internal(m)) => assert!(m.contains("n/1"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(load::<u32>(&mut s, "n/2"), Ok(None));
    }
}
