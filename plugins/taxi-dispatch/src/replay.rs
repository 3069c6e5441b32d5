//! Idempotent replays. Every operation that changes state, called with an idempotency
//! key, stores a replay record (the input and the output) under
//! `idem/{operation}/{key}`. A call with the same operation and key returns the recorded
//! output and changes nothing; the same key with a different input is refused
//! (`conflict`), since it is almost certainly a client bug. A failed call records
//! nothing (its writes are discarded), so it can be retried with the same key.
//!
//! Records are kept `replay_retention_h` hours; `tick` purges older ones a slice at a
//! time.

use crate::store::{Store, load, save};
use courtyard_sdk::{Error, Value};
use serde::{Deserialize, Serialize};

/// Prefix of replay records.
pub const PREFIX: &str = "idem/";
/// Where the purge goes on from.
pub const CURSOR: &str = "sweep/replay-cursor";

/// What a first call with a key answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// The input of the first call.
    pub input: Value,
    /// Its output.
    pub output: Value,
    /// When (host time).
    pub at_ms: i64,
}

/// The key of a replay record.
pub fn key(operation: &str, idempotency_key: &str) -> String {
    format!("{PREFIX}{operation}/{idempotency_key}")
}

/// Runs `f` once per (operation, idempotency key): a replay returns the first output.
/// Without a key, `f` simply runs.
pub fn once<S: Store>(
    store: &mut S,
    operation: &str,
    idempotency_key: Option<&str>,
    input: Value,
    now_ms: i64,
    f: impl FnOnce(&mut S, Value) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let Some(idempotency_key) = idempotency_key else {
        return f(store, input);
    };
    let record_key = key(operation, idempotency_key);
    if let Some(record) = load::<ReplayRecord>(store, &record_key)? {
        if record.input == input {
            return Ok(record.output);
        }
        return Err(Error::conflict(format!(
            "Idempotency-Key {idempotency_key:?} was already used for a different {operation} request; send each new request with a new key"
        )));
    }
    let output = f(store, input.clone())?;
    save(
        store,
        &record_key,
        &ReplayRecord {
            input,
            output: output.clone(),
            at_ms: now_ms,
        },
    )?;
    Ok(output)
}

/// Deletes replay records older than `retention_ms`, looking at no more than `budget`
/// records, going on from where the previous purge stopped. Returns how many it deleted.
pub fn purge(
    store: &mut impl Store,
    now_ms: i64,
    retention_ms: i64,
    budget: u32,
) -> Result<u32, Error> {
    let cursor: Option<String> = load(store, CURSOR)?;
    let page = store.scan(PREFIX, cursor.as_deref(), budget)?;
    let mut purged = 0;
    for (key, value) in &page {
        // A record that does not parse is purged too: it can never be replayed.
        let at_ms = serde_json::from_value::<ReplayRecord>(value.clone())
            .map(|r| r.at_ms)
            .unwrap_or(i64::MIN);
        if now_ms.saturating_sub(at_ms) > retention_ms {
            store.delete(key)?;
            purged += 1;
        }
    }
    match page.last() {
        Some((last, _)) if page.len() >= budget as usize => save(store, CURSOR, last)?,
        _ => store.delete(CURSOR)?,
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::keys;
    use courtyard_sdk::json;
    use courtyard_sdk::testing::MemoryStore;

    const T0: i64 = 4_102_444_800_000;
    const HOUR: i64 = 3_600_000;

    fn bump(store: &mut MemoryStore, _: Value) -> Result<Value, Error> {
        let n = store.data.get("n").and_then(Value::as_u64).unwrap_or(0) + 1;
        store.put("n", &json!(n))?;
        Ok(json!({ "n": n }))
    }

    #[test]
    fn without_a_key_every_call_runs() {
        let mut s = MemoryStore::default();
        once(&mut s, "op", None, json!({}), T0, bump).expect("1");
        let out = once(&mut s, "op", None, json!({}), T0, bump).expect("2");
        assert_eq!(out, json!({ "n": 2 }));
        assert!(keys(&s, PREFIX).is_empty());
    }

    #[test]
    fn a_replay_returns_the_first_output_and_changes_nothing() {
        let mut s = MemoryStore::default();
        let first = once(&mut s, "op", Some("k"), json!({"a": 1}), T0, bump).expect("1");
        let again = once(&mut s, "op", Some("k"), json!({"a": 1}), T0 + 5, bump).expect("2");
        assert_eq!(first, again);
        assert_eq!(s.data["n"], json!(1));
        // The same key for another operation is another request.
        let other = once(&mut s, "other", Some("k"), json!({"a": 1}), T0, bump).expect("3");
        assert_eq!(other, json!({ "n": 2 }));
    }

    #[test]
    fn the_same_key_with_another_input_is_a_conflict() {
        let mut s = MemoryStore::default();
        once(&mut s, "op", Some("k"), json!({"a": 1}), T0, bump).expect("1");
        match once(&mut s, "op", Some("k"), json!({"a": 2}), T0, bump) {
            Err(Error::Conflict(m)) => {
                assert!(m.contains("\"k\"") && m.contains("new key"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.data["n"], json!(1));
    }

    #[test]
    fn a_failed_call_records_nothing() {
        let mut s = MemoryStore::default();
        let failed = once(&mut s, "op", Some("k"), json!({}), T0, |_, _| {
            Err(Error::conflict("no"))
        });
        assert!(failed.is_err());
        assert!(keys(&s, PREFIX).is_empty());
    }

    #[test]
    fn purge_removes_old_records_a_slice_at_a_time() {
        let mut s = MemoryStore::default();
        for i in 0..5 {
            once(&mut s, "op", Some(&format!("old{i}")), json!({}), T0, bump).expect("old");
        }
        once(&mut s, "op", Some("new"), json!({}), T0 + 47 * HOUR, bump).expect("new");
        let now = T0 + 48 * HOUR + 1;
        // 6 records, 4 at a time, in key order: new, old0, old1, old2 first. The slice
        // deletes the 3 old ones and keeps a cursor.
        assert_eq!(purge(&mut s, now, 48 * HOUR, 4), Ok(3));
        assert!(s.data.contains_key(CURSOR));
        // The second slice finds old3 and old4, and ends the pass.
        assert_eq!(purge(&mut s, now, 48 * HOUR, 4), Ok(2));
        assert!(!s.data.contains_key(CURSOR));
        assert_eq!(keys(&s, PREFIX), ["idem/op/new"]);
        // Exactly at the retention age a record is kept.
        assert_eq!(purge(&mut s, T0 + 95 * HOUR, 48 * HOUR, 4), Ok(0));
        assert_eq!(purge(&mut s, T0 + 95 * HOUR + 1, 48 * HOUR, 4), Ok(1));
    }
}
