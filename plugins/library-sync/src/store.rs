//! State: the [`Store`] the logic runs on (the host's state and events in the component, an
//! in-memory map in the tests), typed helpers over it, and idempotent replays.
//!
//! State keys (one short prefix per record type):
//!
//! | key | value |
//! |---|---|
//! | `cat/{copy_id}` | the library's catalogue record of a copy ([`crate::catalogue::CatalogueRecord`]) |
//! | `held/{copy_id}` | where the shelf holds a copy ([`crate::shelf::Held`]); absent: not held |
//! | `slot/{0001}` | the copy id in that slot (zero-padded, so slots list in order) |
//! | `card/{card}` | a registered resident card ([`crate::cards::Card`]) |
//! | `loan/{L00000001}` | an open loan ([`crate::loans::Loan`]) |
//! | `done/{L00000001}` | a closed (returned) loan, kept for the record |
//! | `seq/loan` | the number of the last loan id handed out |
//! | `sync` | the sync cursor and the summary of the last page ([`crate::sync::SyncState`]) |
//! | `idem/{operation}/{key}` | the replay record of one idempotency key |

use courtyard_sdk::{Error, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What the logic needs from the host, so that it can be tested without one.
///
/// The host commits a call's writes and events only when the call returns `ok`; the logic
/// nevertheless checks everything before it writes, so that a refusal changes nothing even
/// on a store without that guarantee (the tests check this).
pub trait Store {
    /// The JSON value under `key`.
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error>;
    /// Stores `value` under `key`.
    fn put(&mut self, key: &str, value: Value) -> Result<(), Error>;
    /// Removes `key` (removing a missing key is fine).
    fn delete(&mut self, key: &str) -> Result<(), Error>;
    /// Up to `limit` entries whose key starts with `prefix`, in key order, after `after`.
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, Error>;
    /// Emits an event of a kind declared in the manifest.
    fn emit(&mut self, kind: &str, payload: Value) -> Result<(), Error>;
}

/// The record under `key`, deserialised.
pub fn load<T: DeserializeOwned>(store: &mut impl Store, key: &str) -> Result<Option<T>, Error> {
    match store.get(key)? {
        None => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| Error::internal(format!("state key {key:?} holds a bad record: {e}"))),
    }
}

/// Stores `value` under `key`.
pub fn save<T: Serialize>(store: &mut impl Store, key: &str, value: &T) -> Result<(), Error> {
    store.put(key, to_value(value)?)
}

/// Up to `limit` records under `prefix` after `after`, deserialised.
pub fn scan<T: DeserializeOwned>(
    store: &mut impl Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, T)>, Error> {
    store
        .scan(prefix, after, limit)?
        .into_iter()
        .map(|(key, value)| match serde_json::from_value(value) {
            Ok(record) => Ok((key, record)),
            Err(e) => Err(Error::internal(format!(
                "state key {key:?} holds a bad record: {e}"
            ))),
        })
        .collect()
}

/// Emits `payload` as an event of `kind`.
pub fn emit<T: Serialize>(store: &mut impl Store, kind: &str, payload: &T) -> Result<(), Error> {
    store.emit(kind, to_value(payload)?)
}

/// `value` as JSON.
pub fn to_value<T: Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot serialise: {e}")))
}

/// What is kept per idempotency key: a fingerprint of the request and the output.
#[derive(Debug, Serialize, Deserialize)]
struct Replay {
    request: String,
    output: Value,
}

/// Runs `f` once per idempotency key: the first call with `key` runs and its output is
/// kept; a later call of `operation` with the same key and the same input returns that
/// output without running (so it changes nothing and emits nothing); the same key with a
/// different input is a conflict. Without a key, `f` just runs.
pub fn once<S: Store>(
    store: &mut S,
    operation: &str,
    key: Option<&str>,
    input: &Value,
    f: impl FnOnce(&mut S) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let Some(key) = key else {
        return f(store);
    };
    let replay_key = format!("idem/{operation}/{key}");
    let request = fingerprint(&canonical_json(input));
    if let Some(replay) = load::<Replay>(store, &replay_key)? {
        if replay.request == request {
            return Ok(replay.output);
        }
        return Err(Error::conflict(format!(
            "Idempotency-Key {key:?} was already used for a different {operation} request: \
             send a new request with a new key"
        )));
    }
    let output = f(store)?;
    save(
        store,
        &replay_key,
        &Replay {
            request,
            output: output.clone(),
        },
    )?;
    Ok(output)
}

/// `value` as JSON text with object keys sorted, so that equal documents give equal text
/// whatever the order their keys arrived in.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// A short fingerprint of `text` (64-bit FNV-1a, in hex): enough to tell a replay from a
/// different request; not a cryptographic hash.
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The host's state and event stream, through the SDK.
#[derive(Debug)]
pub struct HostStore;

impl Store for HostStore {
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error> {
        courtyard_sdk::state::get(key)
    }
    fn put(&mut self, key: &str, value: Value) -> Result<(), Error> {
        courtyard_sdk::state::put(key, &value)
    }
    fn delete(&mut self, key: &str) -> Result<(), Error> {
        courtyard_sdk::state::delete(key)
    }
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, Error> {
        courtyard_sdk::state::list(prefix, after, limit)
    }
    fn emit(&mut self, kind: &str, payload: Value) -> Result<(), Error> {
        courtyard_sdk::events::emit(kind, &payload)
    }
}

/// An in-memory [`Store`] for the tests.
#[cfg(test)]
pub mod mem {
    use super::*;
    use std::collections::BTreeMap;

    /// State in a map, events in a list.
    #[derive(Debug, Default, Clone, PartialEq)]
    pub struct MemStore {
        pub data: BTreeMap<String, Value>,
        pub events: Vec<(String, Value)>,
    }

    impl MemStore {
        /// The kinds of the events emitted so far.
        pub fn kinds(&self) -> Vec<&str> {
            self.events.iter().map(|(k, _)| k.as_str()).collect()
        }
    }

    impl Store for MemStore {
        fn get(&mut self, key: &str) -> Result<Option<Value>, Error> {
            Ok(self.data.get(key).cloned())
        }
        fn put(&mut self, key: &str, value: Value) -> Result<(), Error> {
            assert!(!key.is_empty() && key.len() <= 512, "bad key {key:?}");
            self.data.insert(key.to_owned(), value);
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
                .take(limit.min(1000) as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
        fn emit(&mut self, kind: &str, payload: Value) -> Result<(), Error> {
            assert!(payload.is_object(), "event payloads are objects");
            self.events.push((kind.to_owned(), payload));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mem::MemStore;
    use super::*;
    use serde_json::json;

    fn bump(store: &mut MemStore) -> Result<Value, Error> {
        let n = load::<u64>(store, "n")?.unwrap_or(0) + 1;
        save(store, "n", &n)?;
        Ok(json!({ "n": n }))
    }

    #[test]
    fn once_runs_once_per_key_and_input() {
        let mut s = MemStore::default();
        let input = json!({ "a": 1, "b": [1, 2] });
        assert_eq!(
            once(&mut s, "op", Some("k"), &input, bump),
            Ok(json!({"n": 1}))
        );
        // Same key, same input (keys in another order): the first output, nothing runs.
        let reordered: Value = serde_json::from_str(r#"{"b": [1, 2], "a": 1}"#).expect("json");
        assert_eq!(
            once(&mut s, "op", Some("k"), &reordered, bump),
            Ok(json!({"n": 1}))
        );
        assert_eq!(s.data["n"], json!(1));
        // Another key runs again; no key always runs.
        assert_eq!(
            once(&mut s, "op", Some("k2"), &input, bump),
            Ok(json!({"n": 2}))
        );
        assert_eq!(once(&mut s, "op", None, &input, bump), Ok(json!({"n": 3})));
        // The same key for another operation is another key.
        assert_eq!(
            once(&mut s, "other", Some("k"), &input, bump),
            Ok(json!({"n": 4}))
        );
    }

    #[test]
    fn once_refuses_a_key_reused_for_a_different_request() {
        let mut s = MemStore::default();
        once(&mut s, "op", Some("k"), &json!({"a": 1}), bump).expect("first");
        let before = s.clone();
        let err = once(&mut s, "op", Some("k"), &json!({"a": 2}), bump).expect_err("reuse");
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("new key")),
            "{err}"
        );
        assert_eq!(s, before);
    }

    #[test]
    fn a_failed_call_leaves_no_replay_record() {
        let mut s = MemStore::default();
        let fail = |_: &mut MemStore| Err(Error::conflict("no"));
        assert!(once(&mut s, "op", Some("k"), &json!({}), fail).is_err());
        assert_eq!(
            once(&mut s, "op", Some("k"), &json!({}), bump),
            Ok(json!({"n": 1}))
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v: Value =
            serde_json::from_str(r#"{"b": {"y": 1, "x": [true, null]}, "a": "s"}"#).expect("json");
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"s","b":{"x":[true,null],"y":1}}"#
        );
    }

    #[test]
    fn fingerprints_differ_for_different_text() {
        assert_eq!(fingerprint(""), "cbf29ce484222325");
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert_eq!(fingerprint("abc").len(), 16);
    }

    #[test]
    fn bad_records_are_internal_errors() {
        let mut s = MemStore::default();
        s.data.insert("n".into(), json!("not a number"));
        assert!(matches!(load::<u64>(&mut s, "n"), Err(Error::Internal(_))));
        assert!(matches!(
            scan::<u64>(&mut s, "n", None, 10),
            Err(Error::Internal(_))
        ));
    }
}
