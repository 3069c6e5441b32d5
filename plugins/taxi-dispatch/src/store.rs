//! What the logic needs from the host — key-value state and events — is the SDK's
//! [`Store`] trait (re-exported here with its helpers), so that every operation
//! unit-tests natively against the SDK's in-memory store; this module adds the paging
//! the plugin's listings need.
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
//! | `sweep/driver-cursor` | the driver key where `tick` goes on removing idle drivers |

use courtyard_sdk::{Error, Value};
use serde::de::DeserializeOwned;

pub use courtyard_sdk::store::{Store, load, save};

/// The most entries the host returns from one scan.
pub const MAX_SCAN: u32 = 1000;

/// The value of the state entry `key`, deserialised.
fn from_state<T: DeserializeOwned>(key: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value)
        .map_err(|e| Error::internal(format!("state key {key:?} holds an unexpected value: {e}")))
}

/// A page of the entries under `prefix`, after the key `after`, each turned into an item
/// by `item`: the items and whether more follow.
fn page_with<T>(
    store: &mut impl Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
    item: impl Fn(String, Value) -> Result<T, Error>,
) -> Result<(Vec<T>, bool), Error> {
    let limit = limit.clamp(1, MAX_SCAN - 1);
    // One more than asked, to know whether there is a next page.
    let mut entries = store.scan(prefix, after, limit + 1)?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let items = entries
        .into_iter()
        .map(|(key, value)| item(key, value))
        .collect::<Result<Vec<T>, _>>()?;
    Ok((items, more))
}

/// A page of string values (ids) under `prefix`, after the key `after`: the values and
/// whether more follow.
pub fn page_of_ids(
    store: &mut impl Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<String>, bool), Error> {
    page_with(store, prefix, after, limit, |key, value| match value {
        Value::String(id) => Ok(id),
        other => Err(Error::internal(format!(
            "index key {key:?} holds {other} instead of an id"
        ))),
    })
}

/// A page of values under `prefix`, after the key `after`, deserialised: the values and
/// whether more follow.
pub fn page_of<T: DeserializeOwned>(
    store: &mut impl Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<T>, bool), Error> {
    page_with(store, prefix, after, limit, |key, value| {
        from_state(&key, value)
    })
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
            let item = from_state(&key, value)?;
            out.push((key, item));
        }
        if !full {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtyard_sdk::json;
    use courtyard_sdk::testing::MemoryStore;

    #[test]
    fn pages_of_ids_say_whether_more_follow() {
        let mut s = MemoryStore::default();
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
        let mut s = MemoryStore::default();
        s.put("x/0", &json!(5)).expect("put");
        assert!(matches!(
            page_of_ids(&mut s, "x/", None, 3),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn load_all_crosses_scan_pages() {
        let mut s = MemoryStore::default();
        for i in 0..(MAX_SCAN + 5) {
            s.put(&format!("n/{i:05}"), &json!(i)).expect("put");
        }
        let all: Vec<(String, u32)> = load_all(&mut s, "n/").expect("all");
        assert_eq!(all.len(), (MAX_SCAN + 5) as usize);
        assert_eq!(all.last().map(|(_, v)| *v), Some(MAX_SCAN + 4));
    }

    #[test]
    fn bad_state_values_are_internal_errors_naming_the_key() {
        let mut s = MemoryStore::default();
        s.put("n/1", &json!("text")).expect("put");
        match load::<u32>(&mut s, "n/1") {
            Err(Error::Internal(m)) => assert!(m.contains("n/1"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(load::<u32>(&mut s, "n/2"), Ok(None));
    }
}
