//! The per-call [`Session`] that every operation runs in, over the SDK's [`Store`]
//! (the host's state and events, or `courtyard_sdk::testing::MemoryStore` in native
//! tests), idempotent replays and paged listings.

use crate::config::Config;
use courtyard_sdk::store::{emit, load, save, to_json};
use courtyard_sdk::{Error, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use courtyard_sdk::store::Store;

/// The host allows 64 events per call; expiries applied while reading ("on touch")
/// emit at most this many, so that a call always has room for its own events. Beyond
/// it, expiries are computed for the answer but left for the next read or sweep.
pub const TOUCH_EVENT_BUDGET: usize = 32;

/// One call: the store, the clock and the caller's context. Every operation runs in one.
#[derive(Debug)]
pub struct Session<'s, S> {
    store: &'s mut S,
    /// "Now", from the host (`ctx.now_ms`), never from the clock.
    pub now_ms: i64,
    /// The community's configuration.
    pub config: Config,
    /// The community the call is for.
    pub community: String,
    /// The caller's idempotency key, if any.
    pub idempotency_key: Option<String>,
    touch_events: usize,
}

impl<'s, S: Store> Session<'s, S> {
    /// A session over `store`.
    pub fn new(
        store: &'s mut S,
        now_ms: i64,
        config: Config,
        community: impl Into<String>,
        idempotency_key: Option<String>,
    ) -> Self {
        Self {
            store,
            now_ms,
            config,
            community: community.into(),
            idempotency_key,
            touch_events: 0,
        }
    }

    /// The value under `key`, deserialised.
    pub fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, Error> {
        load(self.store, key)
    }

    /// Whether `key` holds a value.
    pub fn exists(&mut self, key: &str) -> Result<bool, Error> {
        Ok(self.store.get(key)?.is_some())
    }

    /// Stores `value` as JSON under `key`.
    pub fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        save(self.store, key, value)
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &str) -> Result<(), Error> {
        self.store.delete(key)
    }

    /// Raw entries under `prefix` after the key `after`.
    pub fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, Error> {
        self.store.scan(prefix, after, limit)
    }

    /// Emits an event.
    pub fn emit<T: Serialize + ?Sized>(&mut self, kind: &str, payload: &T) -> Result<(), Error> {
        emit(self.store, kind, payload)
    }

    /// Takes one event from the budget of expiries applied on touch; `false` when the
    /// budget is spent (the expiry is then left for later).
    pub fn take_touch_event(&mut self) -> bool {
        if self.touch_events < TOUCH_EVENT_BUDGET {
            self.touch_events += 1;
            true
        } else {
            false
        }
    }

    /// Increments the counter under `key` and returns its new value (1 first).
    pub fn next_seq(&mut self, key: &str) -> Result<u64, Error> {
        let next = self.get::<u64>(key)?.unwrap_or(0) + 1;
        self.put(key, &next)?;
        Ok(next)
    }
}

/// How long a replay record is kept: a retry with the same idempotency key within this
/// time returns the first result; the `expire-due` sweep removes older records.
pub const REPLAY_KEEP_MS: i64 = 7 * 24 * 60 * 60 * 1000;

#[derive(Debug, Serialize, serde::Deserialize)]
struct Replay {
    at_ms: i64,
    /// The request the key was first used for: the operation and its input, as sent
    /// (`None` in records written before requests were kept: never replayed).
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    output: Value,
}

/// Runs `f` once per idempotency key of `operation`: a retry with a key seen before and
/// the same request (`operation` and an equal `input`) returns the first result and
/// changes nothing; the key with another request is a `conflict` (never the first
/// request's result). Without a key, just runs `f`. A failed call records nothing (its
/// writes are discarded by the host), so a retry runs again.
pub fn once<S: Store, T: Serialize>(
    s: &mut Session<'_, S>,
    operation: &str,
    input: &Value,
    f: impl FnOnce(&mut Session<'_, S>) -> Result<T, Error>,
) -> Result<Value, Error> {
    let Some(key) = s.idempotency_key.clone() else {
        return to_json(&f(s)?);
    };
    let record_key = crate::keys::replay(operation, &key);
    if let Some(replay) = s.get::<Replay>(&record_key)? {
        if replay.operation.as_deref() == Some(operation) && replay.input.as_ref() == Some(input) {
            return Ok(replay.output);
        }
        return Err(Error::conflict(format!(
            "the Idempotency-Key {key:?} was already used for a different request ({operation}); use a new key for a new request"
        )));
    }
    let output = to_json(&f(s)?)?;
    let at_ms = s.now_ms;
    s.put(
        &record_key,
        &Replay {
            at_ms,
            operation: Some(operation.to_owned()),
            input: Some(input.clone()),
            output: output.clone(),
        },
    )?;
    s.put(&crate::keys::replay_by_time(at_ms, operation, &key), &true)?;
    Ok(output)
}

/// At most this many entries are examined by one listing call (filters may skip
/// entries); when the budget runs out the page ends early with a `next` cursor.
pub const MAX_EXAMINED: usize = 2000;
const SCAN_BATCH: u32 = 200;

/// The page size of a listing when its input has no `limit`.
pub const DEFAULT_PAGE: u32 = 50;
/// The largest page size of a listing.
pub const MAX_PAGE: u32 = 100;

/// The page size a listing's `limit` asks for: [`DEFAULT_PAGE`] without one, and
/// between 1 and [`MAX_PAGE`].
pub fn page_size(limit: Option<u32>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize
}

/// A page of a listing: the items and the cursor of the next page.
#[derive(Debug)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// The suffix to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Pages through the entries under `prefix` (after the key suffix `after`), mapping
/// each with `f` (which may skip it by returning `None`) until `limit` items are found,
/// the entries run out, or [`MAX_EXAMINED`] entries were examined. `f` gets the key
/// suffix (the key without `prefix`) and the value.
pub fn page<S: Store, T>(
    s: &mut Session<'_, S>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    mut f: impl FnMut(&mut Session<'_, S>, &str, Value) -> Result<Option<T>, Error>,
) -> Result<Page<T>, Error> {
    let limit = limit.max(1);
    let mut cursor = after.map(|a| format!("{prefix}{a}"));
    let mut items = Vec::new();
    let mut examined = 0usize;
    let mut last = String::new();
    loop {
        let batch = s.scan(prefix, cursor.as_deref(), SCAN_BATCH)?;
        let full = batch.len() == SCAN_BATCH as usize;
        for (key, value) in batch {
            if items.len() == limit || examined == MAX_EXAMINED {
                // There is at least this entry more.
                return Ok(Page {
                    items,
                    next: Some(last),
                });
            }
            examined += 1;
            last = key[prefix.len()..].to_owned();
            if let Some(item) = f(s, &last, value)? {
                items.push(item);
            }
            cursor = Some(key);
        }
        if !full {
            return Ok(Page { items, next: None });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use courtyard_sdk::testing::MemoryStore;
    use serde_json::json;

    /// A session of community `nanhu` with the default config: the fixture of the
    /// modules' unit tests.
    pub(crate) fn session<'a>(
        store: &'a mut MemoryStore,
        now_ms: i64,
        key: Option<&str>,
    ) -> Session<'a, MemoryStore> {
        Session::new(
            store,
            now_ms,
            Config::default(),
            "nanhu",
            key.map(str::to_owned),
        )
    }

    #[test]
    fn once_replays_the_first_output_and_runs_nothing_twice() {
        let mut store = MemoryStore::default();
        let mut runs = 0;
        for _ in 0..3 {
            let mut s = session(&mut store, 1_000, Some("k1"));
            let out = once(&mut s, "op", &json!({"a": 1}), |s| {
                runs += 1;
                s.next_seq("seq/x")
            })
            .expect("ok");
            assert_eq!(out, json!(1));
        }
        assert_eq!(runs, 1);
        // The same key on another operation is another call.
        let mut s = session(&mut store, 1_000, Some("k1"));
        let out = once(&mut s, "other", &json!({"a": 1}), |s| s.next_seq("seq/x")).expect("ok");
        assert_eq!(out, json!(2));
    }

    #[test]
    fn once_refuses_a_key_reused_for_another_request() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1_000, Some("k1"));
        once(&mut s, "op", &json!({"a": 1}), |s| s.next_seq("seq/x")).expect("ok");
        let e = once(&mut s, "op", &json!({"a": 2}), |s| s.next_seq("seq/x"))
            .expect_err("another input");
        assert!(
            matches!(&e, Error::Conflict(m) if m.contains("\"k1\" was already used for a different request (op)")),
            "{e}"
        );
        assert_eq!(s.get::<u64>("seq/x").expect("read"), Some(1), "nothing ran");
        // A record without the request (written before requests were kept) is never
        // replayed either.
        s.put(
            &crate::keys::replay("old", "k1"),
            &json!({"at_ms": 1, "output": 7}),
        )
        .expect("put");
        let e = once(&mut s, "old", &json!({}), |s| s.next_seq("seq/x")).expect_err("old");
        assert!(matches!(e, Error::Conflict(_)));
    }

    #[test]
    fn once_without_a_key_always_runs() {
        let mut store = MemoryStore::default();
        for n in 1..=2 {
            let mut s = session(&mut store, 1_000, None);
            assert_eq!(
                once(&mut s, "op", &json!({}), |s| s.next_seq("seq/x")).expect("ok"),
                json!(n)
            );
        }
        assert!(!store.data.keys().any(|k| k.starts_with("idem/")));
    }

    #[test]
    fn page_filters_and_returns_a_cursor_only_when_more_remain() {
        let mut store = MemoryStore::default();
        for n in 0..10 {
            store.data.insert(format!("p/{n:02}"), json!(n));
        }
        store.data.insert("q/00".into(), json!(99));
        let mut s = session(&mut store, 1_000, None);
        let even = |_: &mut Session<'_, MemoryStore>, _: &str, v: Value| {
            Ok(v.as_i64().filter(|n| n % 2 == 0))
        };
        let first = page(&mut s, "p/", None, 3, even).expect("page");
        assert_eq!(first.items, [0, 2, 4]);
        assert_eq!(first.next.as_deref(), Some("04"));
        let second = page(&mut s, "p/", first.next.as_deref(), 3, even).expect("page");
        assert_eq!(second.items, [6, 8]);
        assert_eq!(second.next, None);
        let exact = page(&mut s, "p/", Some("07"), 1, even).expect("page");
        assert_eq!(exact.items, [8]);
        assert_eq!(
            exact.next.as_deref(),
            Some("08"),
            "09 remains to be examined"
        );
    }

    #[test]
    fn page_walks_past_a_scan_batch() {
        let mut store = MemoryStore::default();
        for n in 0..450 {
            store.data.insert(format!("p/{n:04}"), json!(n));
        }
        let mut s = session(&mut store, 1_000, None);
        let last = page(&mut s, "p/", None, 1000, |_, _, v| {
            Ok(v.as_i64().filter(|n| *n >= 440))
        })
        .expect("page");
        assert_eq!(last.items.len(), 10);
        assert_eq!(last.next, None);
    }

    #[test]
    fn page_stops_after_examining_its_budget_with_a_cursor() {
        let mut store = MemoryStore::default();
        for n in 0..MAX_EXAMINED + 10 {
            store.data.insert(format!("p/{n:05}"), json!(n));
        }
        let mut s = session(&mut store, 1_000, None);
        let none = |_: &mut Session<'_, MemoryStore>, _: &str, _: Value| Ok(None::<i64>);
        let first = page(&mut s, "p/", None, 10, none).expect("page");
        assert!(first.items.is_empty());
        assert_eq!(first.next, Some(format!("{:05}", MAX_EXAMINED - 1)));
        let rest = page(&mut s, "p/", first.next.as_deref(), 10, none).expect("page");
        assert_eq!(rest.next, None);
    }

    #[test]
    fn the_touch_event_budget_runs_out() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1_000, None);
        let taken = (0..100).filter(|_| s.take_touch_event()).count();
        assert_eq!(taken, TOUCH_EVENT_BUDGET);
    }
}
