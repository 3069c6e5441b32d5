//! What the logic needs from the host — a JSON key-value store and an event sink — behind the
//! SDK's small [`Store`] trait (re-exported here with its `load`/`save`/`emit`/`to_json`
//! helpers), so that every operation unit-tests natively with the SDK's `MemoryStore`.
//!
//! # State layout
//!
//! | key | value |
//! |---|---|
//! | `rule/{id}` | a [`Rule`](crate::rules::Rule) |
//! | `bykind/{kind}/{id}` | `null`: the rules of an event kind |
//! | `slot/{rule}/{dedupe key}` | a [`Slot`](crate::windows::Slot): window tracker, open alarm, cooldown (a dedupe key of more than 256 bytes is shortened: see [`keys::slot`]) |
//! | `alarm/{999999999999 - seq}` | an [`Alarm`](crate::alarms::Alarm), newest first |
//! | `open/{999999999999 - seq}` | `null`: alarms not cleared yet, newest first |
//! | `due/{escalate at ms}/{seq}` | `null`: raised alarms waiting to escalate, soonest first |
//! | `cleared/{cleared at ms}/{seq}` | `null`: cleared alarms, oldest first (for `purge`) |
//! | `idem/{idempotency key}` | a replay record: operation, input, output |
//! | `event/{kind}/{event id}` | the fingerprint and result of ingesting that event (events are idempotent by kind and id) |
//! | `exp/{expires at ms}/{key}` | `null`: a replay or event record that `purge` removes |
//! | `meta/…` | counters (alarm sequence, rule revision, rule count), seeded templates, cursors |
//!
//! Numbers in keys are zero-padded so that key order is numeric order.

use courtyard_sdk::{Error, Value};
use serde::Serialize;

pub use courtyard_sdk::store::{Store, emit, load, save, to_json};

/// Stores a `null` marker (an index entry) under `key`.
pub fn mark(store: &mut impl Store, key: &str) -> Result<(), Error> {
    store.put(key, &Value::Null)
}

/// Stores `value` under `key`, and an expiry entry so that `purge` removes it once
/// `expires_at_ms` has passed.
pub fn save_until<T: Serialize + ?Sized>(
    store: &mut impl Store,
    key: &str,
    value: &T,
    expires_at_ms: i64,
) -> Result<(), Error> {
    save(store, key, value)?;
    mark(store, &keys::expiry(expires_at_ms, key))
}

/// A 64-bit FNV-1a hash of `bytes`, as 16 hex digits: a fingerprint, not a secret.
pub fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
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
    /// Dedupe keys up to this many bytes appear in slot keys as they are.
    pub const MAX_PLAIN_DEDUPE: usize = 256;
    /// How many bytes of a longer dedupe key its slot key keeps, before the hash.
    const LONG_DEDUPE_PREFIX: usize = 300;

    /// The slot of a rule (at most 63 bytes) and dedupe key. A dedupe key of more than
    /// [`MAX_PLAIN_DEDUPE`] bytes (200 characters may take 800) becomes its first 300 bytes
    /// or so, `#` and its [`digest`](super::digest): at most 386 bytes in all, within the
    /// host's 512, and always longer than a plain key, so the two never meet.
    pub fn slot(rule: &str, dedupe_key: &str) -> String {
        if dedupe_key.len() <= MAX_PLAIN_DEDUPE {
            return format!("{SLOT}{rule}/{dedupe_key}");
        }
        let mut end = LONG_DEDUPE_PREFIX.min(dedupe_key.len());
        while !dedupe_key.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{SLOT}{rule}/{}#{}",
            &dedupe_key[..end],
            super::digest(dedupe_key.as_bytes())
        )
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
    /// The record of event `id` of `kind` (at most 127 and 128 bytes).
    pub fn event(kind: &str, id: &str) -> String {
        format!("event/{kind}/{id}")
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

    #[test]
    fn long_dedupe_keys_are_shortened_in_slot_keys() {
        let rule = "r".repeat(63);
        assert_eq!(keys::slot("smoke", "s-1"), "slot/smoke/s-1");
        let plain = "x".repeat(keys::MAX_PLAIN_DEDUPE);
        assert_eq!(keys::slot("smoke", &plain), format!("slot/smoke/{plain}"));
        // 200 characters of 3 or 4 bytes each.
        for long in ["北".repeat(200), "😀".repeat(200), "x".repeat(257)] {
            let key = keys::slot(&rule, &long);
            assert!(key.len() <= 512, "{} bytes", key.len());
            assert!(key.len() > "slot/".len() + rule.len() + 1 + keys::MAX_PLAIN_DEDUPE);
            assert!(key.ends_with(&digest(long.as_bytes())));
            assert_eq!(key, keys::slot(&rule, &long), "stable");
        }
        // Keys that share their first 300 bytes stay apart.
        let a = format!("{}a", "x".repeat(400));
        let b = format!("{}b", "x".repeat(400));
        assert_ne!(keys::slot("r", &a), keys::slot("r", &b));
    }

    #[test]
    fn digests_are_fnv1a() {
        assert_eq!(digest(b""), "cbf29ce484222325");
        assert_eq!(digest(b"a"), "af63dc4c8601ec8c");
    }
}
