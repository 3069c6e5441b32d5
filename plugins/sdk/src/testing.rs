//! Helpers for a plugin's native unit tests (feature `testing`): an in-memory store that
//! behaves like the host's, and a runner for the worked examples of a plugin's doc page.
//!
//! ```toml
//! [dev-dependencies]
//! courtyard-sdk = { workspace = true, features = ["testing"] }
//! ```

use crate::store::Store;
use crate::{Context, Error, Value};
use std::collections::BTreeMap;

/// An in-memory [`Store`]. [`MemoryStore::call`] runs one operation the way the host does:
/// its writes and events are kept if it returns `Ok` and discarded if it returns `Err`.
/// Like the host, it refuses keys that are empty or longer than 512 bytes and event
/// payloads that are not JSON objects, and returns at most 1000 entries per scan.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemoryStore {
    /// The state.
    pub data: BTreeMap<String, Value>,
    /// The events emitted so far, in order.
    pub events: Vec<(String, Value)>,
    /// During a call: each key's value before the call first wrote it (to undo a failure).
    journal: Option<Vec<(String, Option<Value>)>>,
}

impl MemoryStore {
    /// Runs `f` as one plugin call: all of its changes, or none. Undoing a failed call
    /// costs what the call wrote, not the size of the store.
    pub fn call<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        let events_before = self.events.len();
        let outer = self.journal.replace(Vec::new());
        let result = f(self);
        let journal = std::mem::replace(&mut self.journal, outer).unwrap_or_default();
        if result.is_err() {
            for (key, before) in journal.into_iter().rev() {
                match before {
                    Some(value) => self.data.insert(key, value),
                    None => self.data.remove(&key),
                };
            }
            self.events.truncate(events_before);
        } else if let Some(outer) = self.journal.as_mut() {
            outer.extend(journal);
        }
        result
    }

    /// The events emitted since the last call of this method.
    pub fn take_events(&mut self) -> Vec<(String, Value)> {
        std::mem::take(&mut self.events)
    }

    /// The kinds of the events emitted so far, in order.
    pub fn event_kinds(&self) -> Vec<&str> {
        self.events.iter().map(|(kind, _)| kind.as_str()).collect()
    }

    fn remember(&mut self, key: &str) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push((key.to_owned(), self.data.get(key).cloned()));
        }
    }
}

/// The host refuses keys that are empty or longer than 512 bytes; so does the memory store.
fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > 512 {
        return Err(Error::internal(format!(
            "invalid state key: {} bytes (the host allows 1 to 512)",
            key.len()
        )));
    }
    Ok(())
}

impl Store for MemoryStore {
    fn get(&mut self, key: &str) -> Result<Option<Value>, Error> {
        check_key(key)?;
        Ok(self.data.get(key).cloned())
    }
    fn put(&mut self, key: &str, value: &Value) -> Result<(), Error> {
        check_key(key)?;
        self.remember(key);
        self.data.insert(key.to_owned(), value.clone());
        Ok(())
    }
    fn delete(&mut self, key: &str) -> Result<(), Error> {
        check_key(key)?;
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
        // The host returns at most 1000 entries per call; so does this.
        let limit = limit.min(1000) as usize;
        Ok(self
            .data
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn emit(&mut self, kind: &str, payload: &Value) -> Result<(), Error> {
        // The host refuses payloads that are not JSON objects.
        if !payload.is_object() {
            return Err(Error::internal(format!(
                "event refused: the payload of {kind} must be a JSON object"
            )));
        }
        self.events.push((kind.to_owned(), payload.clone()));
        Ok(())
    }
}

/// The body the host answers for a plugin error (`{"error": {"code", "message"}}`).
pub fn error_body(error: &Error) -> Value {
    let (code, message) = match error {
        Error::InvalidInput(m) => ("invalid_input", m.clone()),
        Error::NotFound(m) => ("not_found", m.clone()),
        Error::Conflict(m) => ("conflict", m.clone()),
        Error::Unavailable(m) => ("unavailable", m.clone()),
        Error::Internal(_) => ("plugin_failed", "<logged by the host>".to_owned()),
    };
    serde_json::json!({ "error": { "code": code, "message": message } })
}

pub use courtyard_doc_examples::{Step, difference, doc_steps};

/// Runs the worked example of a doc page natively, with "now" advancing by one second per
/// step from `start_ms`, against `invoke` (usually the plugin's dispatch over a
/// [`MemoryStore`] wrapped in [`MemoryStore::call`]). Steps refused by the input schema
/// are skipped (only a host checks schemas). Returns how many steps ran; panics at the
/// first step whose answer differs, naming its line.
pub fn run_doc_example(
    markdown: &str,
    start_ms: i64,
    mut invoke: impl FnMut(&Context, Value) -> Result<Value, Error>,
) -> usize {
    let mut ran = 0;
    for (i, step) in doc_steps(markdown).into_iter().enumerate() {
        if step.refused_by_schema() {
            continue;
        }
        let ctx = Context {
            community: step.community.clone(),
            plugin: step.plugin.clone(),
            operation: step.operation.clone(),
            idempotency_key: step.idempotency_key.clone(),
            now_ms: start_ms + i64::try_from(i).unwrap_or(0) * 1000,
            request_id: format!("doc-{}", step.line),
        };
        let actual = match invoke(&ctx, step.input.clone()) {
            Ok(output) => output,
            Err(e) => error_body(&e),
        };
        if let Some(diff) = difference(&step.expected, &actual) {
            panic!(
                "line {}: {} answered {actual}: {diff}",
                step.line, step.operation
            );
        }
        ran += 1;
    }
    ran
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_call_leaves_nothing_behind() {
        let mut s = MemoryStore::default();
        s.call(|s| {
            s.put("kept", &json!(0))?;
            s.put("changed", &json!(1))?;
            s.emit("x.y", &json!({ "n": 1 }))
        })
        .expect("ok");
        let before = s.clone();
        let r: Result<(), Error> = s.call(|s| {
            s.put("a", &json!(1))?;
            s.put("changed", &json!(2))?;
            s.put("changed", &json!(3))?;
            s.delete("kept")?;
            s.emit("x.y", &json!({}))?;
            Err(Error::conflict("no"))
        });
        assert!(r.is_err());
        assert_eq!(s, before);
        assert_eq!(s.event_kinds(), ["x.y"]);
    }

    #[test]
    fn a_nested_failure_undoes_only_the_inner_call() {
        let mut s = MemoryStore::default();
        let r: Result<(), Error> = s.call(|s| {
            s.put("outer", &json!(1))?;
            let inner: Result<(), Error> = s.call(|s| {
                s.put("inner", &json!(1))?;
                Err(Error::conflict("no"))
            });
            assert!(inner.is_err());
            Ok(())
        });
        assert!(r.is_ok());
        assert_eq!(s.data.keys().collect::<Vec<_>>(), ["outer"]);
    }

    #[test]
    fn host_limits_are_checked() {
        let mut s = MemoryStore::default();
        assert!(s.put("", &json!(1)).is_err());
        assert!(s.put(&"k".repeat(513), &json!(1)).is_err());
        assert!(s.emit("x.y", &json!([1])).is_err());
        assert!(s.emit("x.y", &json!({})).is_ok());
    }

    #[test]
    fn scan_pages_by_prefix() {
        let mut s = MemoryStore::default();
        for k in ["a/1", "a/2", "a/3", "b/1"] {
            s.put(k, &json!(k)).expect("put");
        }
        let keys = |v: Vec<(String, Value)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(s.scan("a/", None, 2).expect("scan")), ["a/1", "a/2"]);
        assert_eq!(keys(s.scan("a/", Some("a/2"), 9).expect("scan")), ["a/3"]);
    }

    #[test]
    fn doc_steps_are_parsed_and_compared() {
        let page = "```sh\ncurl -s -X POST localhost:8080/v1/communities/nanhu/plugins/p/invoke/op \\\n  -H 'Content-Type: application/json' -H 'Idempotency-Key: k-1' \\\n  -d '{\"a\": \"b c\"}'\n```\n\n```json\n{\"ok\": \"<any>\"}\n```\n";
        let steps = doc_steps(page);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            (steps[0].community.as_str(), steps[0].operation.as_str()),
            ("nanhu", "op")
        );
        assert_eq!(steps[0].idempotency_key.as_deref(), Some("k-1"));
        assert_eq!(steps[0].input, json!({ "a": "b c" }));
        assert_eq!(difference(&steps[0].expected, &json!({ "ok": [1] })), None);
        assert!(difference(&steps[0].expected, &json!({ "ok": 1, "x": 2 })).is_some());
        let ran = run_doc_example(page, 0, |ctx, input| {
            Ok(json!({ "ok": [ctx.now_ms, input] }))
        });
        assert_eq!(ran, 1);
    }
}
