//! The operations of the manifest, dispatched over a [`Store`], with replays by
//! idempotency key.
//!
//! Every operation that changes state stores a replay record under its idempotency key
//! (when the call has one): a replayed call returns the first result and changes nothing;
//! the same key used for another operation or another input is a conflict. Every call
//! first installs the configured default templates not installed yet
//! ([`rules::seed_defaults`]).

use crate::config::Config;
use crate::store::{Store, keys, load, save_until, to_json};
use crate::{alarms, ingest, purge, rules, templates};
use courtyard_sdk::{Context, Error, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Every operation, as the manifest names them.
pub const OPERATIONS: &[&str] = &[
    "create-rule",
    "update-rule",
    "delete-rule",
    "get-rule",
    "list-rules",
    "list-templates",
    "install-template",
    "ingest",
    "get-alarm",
    "list-alarms",
    "acknowledge-alarm",
    "clear-alarm",
    "escalate-due",
    "purge",
];

/// The operations that change state (and so are replayed by idempotency key). Reads may
/// still escalate alarms whose time has come; that is not replayed, it is just applied.
pub const CHANGING: &[&str] = &[
    "create-rule",
    "update-rule",
    "delete-rule",
    "install-template",
    "ingest",
    "acknowledge-alarm",
    "clear-alarm",
    "escalate-due",
    "purge",
];

/// A replay record: what a call with an idempotency key did.
#[derive(Debug, Serialize, Deserialize)]
struct Replay {
    operation: String,
    input: Value,
    output: Value,
}

/// Runs `operation`.
pub fn dispatch(
    store: &mut impl Store,
    config: &Config,
    ctx: &Context,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    if !OPERATIONS.contains(&operation) {
        return Err(Error::not_found(format!(
            "alert-rules has no operation {operation:?}"
        )));
    }
    let now = ctx.now_ms;
    rules::seed_defaults(store, config, now)?;
    let replay_key = ctx
        .idempotency_key
        .as_deref()
        .filter(|_| CHANGING.contains(&operation))
        .map(keys::replay);
    if let Some(key) = &replay_key
        && let Some(replay) = load::<Replay>(store, key)?
    {
        let idem = ctx.idempotency_key.as_deref().unwrap_or_default();
        if replay.operation != operation {
            return Err(Error::conflict(format!(
                "idempotency key {idem:?} was used for {} already; use a new key for each call",
                replay.operation
            )));
        }
        if replay.input != input {
            return Err(Error::conflict(format!(
                "idempotency key {idem:?} was used for {operation} with another input; use a \
                 new key for each call"
            )));
        }
        return Ok(replay.output);
    }
    let output = run(store, config, now, operation, input.clone())?;
    if let Some(key) = replay_key {
        let record = Replay {
            operation: operation.to_owned(),
            input,
            output: output.clone(),
        };
        let expires = now.saturating_add(config.replay_retention_ms());
        save_until(store, &key, &record, expires)?;
    }
    Ok(output)
}

fn parse<I: DeserializeOwned>(input: Value) -> Result<I, Error> {
    serde_json::from_value(input).map_err(|e| Error::invalid_input(e.to_string()))
}

fn out<O: Serialize>(output: Result<O, Error>) -> Result<Value, Error> {
    to_json(&output?)
}

fn run(
    store: &mut impl Store,
    config: &Config,
    now: i64,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    match operation {
        "create-rule" => out(rules::create(store, config, now, parse(input)?)),
        "update-rule" => out(rules::update(store, now, parse(input)?)),
        "delete-rule" => out(rules::delete(store, parse(input)?)),
        "get-rule" => out(rules::get(store, parse(input)?)),
        "list-rules" => out(rules::list(store, parse(input)?)),
        "list-templates" => {
            let _: Empty = parse(input)?;
            out(Ok(templates::list()))
        }
        "install-template" => out(rules::install(store, config, now, parse(input)?)),
        "ingest" => out(ingest::ingest(store, config, now, parse(input)?)),
        "get-alarm" => out(alarms::get(store, now, parse(input)?)),
        "list-alarms" => out(alarms::list(store, now, parse(input)?)),
        "acknowledge-alarm" => out(alarms::acknowledge(store, now, parse(input)?)),
        "clear-alarm" => out(alarms::clear(store, config, now, parse(input)?)),
        "escalate-due" => out(alarms::escalate_due(store, now, parse(input)?)),
        "purge" => out(purge::purge(store, config, now, parse(input)?)),
        other => Err(Error::not_found(format!(
            "alert-rules has no operation {other:?}"
        ))),
    }
}

/// An input with no fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}
