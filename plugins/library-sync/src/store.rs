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
//! | `sweep/replay-cursor` | where `sweep-overdue` goes on purging replay records |

use courtyard_sdk::{Error, Value};
use serde::{Deserialize, Serialize};

/// What the logic needs from the host, so that it can be tested without one (the SDK's
/// trait, [`courtyard_sdk::store::HostStore`] in the component, the SDK's `MemoryStore` in
/// the tests), and the SDK's typed helpers over it.
///
/// The host commits a call's writes and events only when the call returns `ok`; the logic
/// nevertheless checks everything before it writes, so that a refusal changes nothing even
/// on a store without that guarantee (the tests check this).
pub use courtyard_sdk::store::{Store, emit, load, save};

/// Up to `limit` records under `prefix` after `after`, deserialised.
pub use courtyard_sdk::store::scan_as as scan;

/// The prefix of replay records.
pub const REPLAY_PREFIX: &str = "idem/";
/// Where the purge of replay records goes on from.
pub const REPLAY_CURSOR: &str = "sweep/replay-cursor";

/// What is kept per idempotency key: a fingerprint of the request, the output, and when
/// (host time; absent in records written before it was kept).
#[derive(Debug, Serialize, Deserialize)]
struct Replay {
    request: String,
    output: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at_ms: Option<i64>,
}

/// Runs `f` once per idempotency key: the first call with `key` runs and its output is
/// kept (with `now_ms`, for [`purge_replays`]); a later call of `operation` with the same
/// key and the same input returns that output without running (so it changes nothing and
/// emits nothing); the same key with a different input is a conflict. Without a key, `f`
/// just runs.
pub fn once<S: Store>(
    store: &mut S,
    operation: &str,
    key: Option<&str>,
    input: &Value,
    now_ms: i64,
    f: impl FnOnce(&mut S) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let Some(key) = key else {
        return f(store);
    };
    let replay_key = format!("{REPLAY_PREFIX}{operation}/{key}");
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
            at_ms: Some(now_ms),
        },
    )?;
    Ok(output)
}

/// Deletes the replay records older than `retention_ms`, looking at no more than `budget`
/// records and going on from where the previous purge stopped (a pass over every record
/// takes as many calls as it takes). A record without its time (written before the time
/// was kept) is stamped with `now_ms`, so it goes one retention later; one that does not
/// parse is deleted (it can never be replayed). Returns how many records it deleted.
pub fn purge_replays(
    store: &mut impl Store,
    now_ms: i64,
    retention_ms: i64,
    budget: u32,
) -> Result<u32, Error> {
    let cursor: Option<String> = load(store, REPLAY_CURSOR)?;
    let page = store.scan(REPLAY_PREFIX, cursor.as_deref(), budget)?;
    let mut purged = 0;
    for (key, value) in &page {
        match serde_json::from_value::<Replay>(value.clone()) {
            Ok(Replay {
                at_ms: Some(at), ..
            }) if now_ms.saturating_sub(at) <= retention_ms => {}
            Ok(mut undated @ Replay { at_ms: None, .. }) => {
                undated.at_ms = Some(now_ms);
                save(store, key, &undated)?;
            }
            Ok(_) | Err(_) => {
                store.delete(key)?;
                purged += 1;
            }
        }
    }
    match page.last() {
        Some((last, _)) if page.len() >= budget as usize => save(store, REPLAY_CURSOR, last)?,
        _ => store.delete(REPLAY_CURSOR)?,
    }
    Ok(purged)
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

#[cfg(test)]
mod tests {
    use super::*;
    use courtyard_sdk::testing::MemoryStore;
    use serde_json::json;

    fn bump(store: &mut MemoryStore) -> Result<Value, Error> {
        let n = load::<u64>(store, "n")?.unwrap_or(0) + 1;
        save(store, "n", &n)?;
        Ok(json!({ "n": n }))
    }

    #[test]
    fn once_runs_once_per_key_and_input() {
        let mut s = MemoryStore::default();
        let input = json!({ "a": 1, "b": [1, 2] });
        assert_eq!(
            once(&mut s, "op", Some("k"), &input, 0, bump),
            Ok(json!({"n": 1}))
        );
        // Same key, same input (keys in another order): the first output, nothing runs.
        let reordered: Value = serde_json::from_str(r#"{"b": [1, 2], "a": 1}"#).expect("json");
        assert_eq!(
            once(&mut s, "op", Some("k"), &reordered, 0, bump),
            Ok(json!({"n": 1}))
        );
        assert_eq!(s.data["n"], json!(1));
        // Another key runs again; no key always runs.
        assert_eq!(
            once(&mut s, "op", Some("k2"), &input, 0, bump),
            Ok(json!({"n": 2}))
        );
        assert_eq!(
            once(&mut s, "op", None, &input, 0, bump),
            Ok(json!({"n": 3}))
        );
        // The same key for another operation is another key.
        assert_eq!(
            once(&mut s, "other", Some("k"), &input, 0, bump),
            Ok(json!({"n": 4}))
        );
        crate::tests::check_store(&s);
    }

    #[test]
    fn once_refuses_a_key_reused_for_a_different_request() {
        let mut s = MemoryStore::default();
        once(&mut s, "op", Some("k"), &json!({"a": 1}), 0, bump).expect("first");
        let before = s.clone();
        let err = once(&mut s, "op", Some("k"), &json!({"a": 2}), 0, bump).expect_err("reuse");
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("new key")),
            "{err}"
        );
        assert_eq!(s, before);
    }

    #[test]
    fn a_failed_call_leaves_no_replay_record() {
        let mut s = MemoryStore::default();
        let fail = |_: &mut MemoryStore| Err(Error::conflict("no"));
        assert!(once(&mut s, "op", Some("k"), &json!({}), 0, fail).is_err());
        assert_eq!(
            once(&mut s, "op", Some("k"), &json!({}), 0, bump),
            Ok(json!({"n": 1}))
        );
    }

    #[test]
    fn purge_deletes_old_replay_records_a_slice_at_a_time() {
        const HOUR: i64 = 3_600_000;
        let mut s = MemoryStore::default();
        for i in 0..5 {
            once(&mut s, "op", Some(&format!("old{i}")), &json!({}), 0, bump).expect("old");
        }
        once(&mut s, "op", Some("new"), &json!({}), 47 * HOUR, bump).expect("new");
        let now = 48 * HOUR + 1;
        // Six records, four at a time in key order (new, old0, old1, old2 first): the
        // slice deletes three and keeps a cursor; the next one ends the pass.
        assert_eq!(purge_replays(&mut s, now, 48 * HOUR, 4), Ok(3));
        assert!(s.data.contains_key(REPLAY_CURSOR));
        assert_eq!(purge_replays(&mut s, now, 48 * HOUR, 4), Ok(2));
        assert!(!s.data.contains_key(REPLAY_CURSOR));
        let left: Vec<&String> = s.data.keys().filter(|k| k.starts_with("idem/")).collect();
        assert_eq!(left, ["idem/op/new"]);
        // A replay still answers after a purge pass that kept it.
        assert_eq!(
            once(&mut s, "op", Some("new"), &json!({}), now, bump),
            Ok(json!({"n": 6}))
        );
    }

    #[test]
    fn purge_dates_undated_records_and_deletes_unreadable_ones() {
        let mut s = MemoryStore::default();
        let undated = json!({"request": fingerprint("{}"), "output": {"n": 1}});
        s.data.insert("idem/op/undated".into(), undated);
        s.data.insert("idem/op/garbage".into(), json!(17));
        assert_eq!(purge_replays(&mut s, 1_000, 10, 100), Ok(1));
        assert_eq!(s.data["idem/op/undated"]["at_ms"], json!(1_000));
        // Still a replay, and purged one retention later.
        assert_eq!(
            once(&mut s, "op", Some("undated"), &json!({}), 1_005, bump),
            Ok(json!({"n": 1}))
        );
        assert_eq!(purge_replays(&mut s, 1_010, 10, 100), Ok(0));
        assert_eq!(purge_replays(&mut s, 1_011, 10, 100), Ok(1));
        assert!(s.data.keys().all(|k| !k.starts_with("idem/")));
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
        let mut s = MemoryStore::default();
        s.data.insert("n".into(), json!("not a number"));
        assert!(matches!(load::<u64>(&mut s, "n"), Err(Error::Internal(_))));
        assert!(matches!(
            scan::<u64>(&mut s, "n", None, 10),
            Err(Error::Internal(_))
        ));
    }
}
