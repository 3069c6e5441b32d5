//! `counter`: named per-community counters, the example Courtyard plugin.
//!
//! The domain logic is plain Rust over the SDK's [`Store`] trait, so that it unit-tests
//! natively against an in-memory store; the component is the thin [`Counter`] layer that
//! runs it against the host's state.

use courtyard_sdk::store::{HostStore, Store, emit, load, save, scan_as};
use courtyard_sdk::{Context, Error, Plugin, Value};
use serde::{Deserialize, Serialize};

/// The community's configuration of the plugin (see `manifest.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "one")]
    pub step: u64,
    #[serde(default)]
    pub max: Option<u64>,
    #[serde(default)]
    pub notify_at: Option<u64>,
}

fn one() -> u64 {
    1
}

impl Default for Config {
    /// The manifest's defaults.
    fn default() -> Self {
        Self {
            step: one(),
            max: None,
            notify_at: None,
        }
    }
}

/// A counter as operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterValue {
    pub name: String,
    pub value: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementInput {
    pub name: String,
    #[serde(default)]
    pub by: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameInput {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct ListOutput {
    pub counters: Vec<CounterValue>,
    pub next: Option<String>,
}

const COUNTER_PREFIX: &str = "c/";
const REPLAY_PREFIX: &str = "idem/";

/// `increment`: adds to a counter, once per idempotency key.
pub fn increment(
    store: &mut impl Store,
    config: &Config,
    idempotency_key: Option<&str>,
    input: IncrementInput,
) -> Result<CounterValue, Error> {
    if let Some(key) = idempotency_key
        && let Some(previous) = load::<CounterValue>(store, &format!("{REPLAY_PREFIX}{key}"))?
    {
        return Ok(previous);
    }
    let by = input.by.unwrap_or(config.step);
    let key = format!("{COUNTER_PREFIX}{}", input.name);
    let current: u64 = load(store, &key)?.unwrap_or(0);
    let value = current
        .checked_add(by)
        .ok_or_else(|| Error::conflict(format!("counter {:?} would overflow", input.name)))?;
    if let Some(max) = config.max
        && value > max
    {
        return Err(Error::conflict(format!(
            "counter {:?} is at {current}; adding {by} would exceed this community's max of {max}",
            input.name
        )));
    }
    save(store, &key, &value)?;
    let result = CounterValue {
        name: input.name,
        value,
    };
    if let Some(at) = config.notify_at
        && current < at
        && value >= at
    {
        emit(store, "counter.threshold-reached", &result)?;
    }
    if let Some(key) = idempotency_key {
        save(store, &format!("{REPLAY_PREFIX}{key}"), &result)?;
    }
    Ok(result)
}

/// `get`: reads a counter.
pub fn get(store: &mut impl Store, input: NameInput) -> Result<CounterValue, Error> {
    match load::<u64>(store, &format!("{COUNTER_PREFIX}{}", input.name))? {
        Some(value) => Ok(CounterValue {
            name: input.name,
            value,
        }),
        None => Err(Error::not_found(format!(
            "no counter named {:?}",
            input.name
        ))),
    }
}

/// `reset`: sets an existing counter back to 0.
pub fn reset(store: &mut impl Store, input: NameInput) -> Result<CounterValue, Error> {
    let key = format!("{COUNTER_PREFIX}{}", input.name);
    if load::<u64>(store, &key)?.is_none() {
        return Err(Error::not_found(format!(
            "no counter named {:?}",
            input.name
        )));
    }
    save(store, &key, &0u64)?;
    Ok(CounterValue {
        name: input.name,
        value: 0,
    })
}

/// `list`: a page of counters in name order.
pub fn list(store: &mut impl Store, input: ListInput) -> Result<ListOutput, Error> {
    let limit = input.limit.unwrap_or(50).clamp(1, 100);
    let after = input.after.map(|a| format!("{COUNTER_PREFIX}{a}"));
    // One more than asked, to know whether there is a next page.
    let mut page: Vec<(String, u64)> = scan_as(store, COUNTER_PREFIX, after.as_deref(), limit + 1)?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let counters: Vec<CounterValue> = page
        .into_iter()
        .map(|(key, value)| CounterValue {
            name: key[COUNTER_PREFIX.len()..].to_owned(),
            value,
        })
        .collect();
    let next = if more {
        counters.last().map(|c| c.name.clone())
    } else {
        None
    };
    Ok(ListOutput { counters, next })
}

/// The component.
#[derive(Debug)]
pub struct Counter;

/// Runs `ctx.operation` over `store`.
pub fn dispatch(
    store: &mut impl Store,
    config: &Config,
    ctx: &Context,
    input: Value,
) -> Result<Value, Error> {
    match ctx.operation.as_str() {
        "increment" => courtyard_sdk::handle(input, |i| {
            increment(store, config, ctx.idempotency_key.as_deref(), i)
        }),
        "get" => courtyard_sdk::handle(input, |i| get(store, i)),
        "reset" => courtyard_sdk::handle(input, |i| reset(store, i)),
        "list" => courtyard_sdk::handle(input, |i| list(store, i)),
        other => Err(Error::not_found(format!(
            "counter has no operation {other:?}"
        ))),
    }
}

impl Plugin for Counter {
    fn invoke(ctx: &Context, _operation: &str, input: Value) -> Result<Value, Error> {
        let config: Config = courtyard_sdk::config::get()?;
        dispatch(&mut HostStore, &config, ctx, input)
    }
}

#[cfg(target_arch = "wasm32")]
courtyard_sdk::export_plugin!(Counter);

#[cfg(test)]
mod tests {
    use super::*;
    use courtyard_sdk::testing::{MemoryStore, run_doc_example};

    fn value_of(s: &mut MemoryStore, name: &str) -> Result<u64, Error> {
        get(s, NameInput { name: name.into() }).map(|c| c.value)
    }

    fn inc(name: &str, by: Option<u64>) -> IncrementInput {
        IncrementInput {
            name: name.into(),
            by,
        }
    }

    #[test]
    fn increments_from_zero_with_the_configured_step() {
        let mut s = MemoryStore::default();
        let config = Config {
            step: 5,
            ..Config::default()
        };
        assert_eq!(
            increment(&mut s, &config, None, inc("a", None)).map(|c| c.value),
            Ok(5)
        );
        assert_eq!(
            increment(&mut s, &config, None, inc("a", Some(2))).map(|c| c.value),
            Ok(7)
        );
    }

    #[test]
    fn a_replayed_idempotency_key_adds_nothing() {
        let mut s = MemoryStore::default();
        let config = Config::default();
        let first = increment(&mut s, &config, Some("k1"), inc("a", None));
        let again = increment(&mut s, &config, Some("k1"), inc("a", None));
        assert_eq!(first, again);
        assert_eq!(value_of(&mut s, "a"), Ok(1));
    }

    #[test]
    fn max_is_a_conflict_and_changes_nothing() {
        let mut s = MemoryStore::default();
        let config = Config {
            step: 1,
            max: Some(1),
            notify_at: None,
        };
        assert!(increment(&mut s, &config, None, inc("a", None)).is_ok());
        assert!(matches!(
            increment(&mut s, &config, None, inc("a", None)),
            Err(Error::Conflict(_))
        ));
        assert_eq!(value_of(&mut s, "a"), Ok(1));
    }

    #[test]
    fn crossing_notify_at_emits_once() {
        let mut s = MemoryStore::default();
        let config = Config {
            step: 1,
            max: None,
            notify_at: Some(2),
        };
        for _ in 0..4 {
            increment(&mut s, &config, None, inc("a", None)).expect("increment");
        }
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].1["value"], 2);
    }

    #[test]
    fn unknown_counters_are_not_found() {
        let mut s = MemoryStore::default();
        assert!(matches!(
            get(&mut s, NameInput { name: "x".into() }),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            reset(&mut s, NameInput { name: "x".into() }),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn list_pages_in_name_order() {
        let mut s = MemoryStore::default();
        let config = Config::default();
        for name in ["c", "a", "b"] {
            increment(&mut s, &config, None, inc(name, None)).expect("increment");
        }
        let page = list(
            &mut s,
            ListInput {
                after: None,
                limit: Some(2),
            },
        )
        .expect("list");
        let names: Vec<_> = page.counters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(page.next.as_deref(), Some("b"));
        let page = list(
            &mut s,
            ListInput {
                after: page.next,
                limit: Some(2),
            },
        )
        .expect("list");
        assert_eq!(page.counters.len(), 1);
        assert_eq!(page.next, None);
    }

    /// The worked example of docs/plugins/counter.md, natively (the host runs it too).
    #[test]
    fn the_doc_example_runs() {
        let doc = include_str!("../../../docs/plugins/counter.md");
        let mut stores: std::collections::BTreeMap<String, MemoryStore> = Default::default();
        let ran = run_doc_example(doc, 1_800_000_000_000, |ctx, input| {
            let store = stores.entry(ctx.community.clone()).or_default();
            store.call(|s| dispatch(s, &Config::default(), ctx, input))
        });
        assert_eq!(ran, 5);
    }
}
