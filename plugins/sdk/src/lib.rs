//! The guest SDK for Courtyard plugins written in Rust.
//!
//! This crate is the one place on the guest side where `wit-bindgen` runs over `wit/`.
//! A plugin implements [`Plugin`] and exports it with [`export_plugin!`]; it reads and
//! writes its per-community state with [`state`], logs with [`log`], reads the
//! community's configuration with [`config`] and emits events with [`events`].
//!
//! ```ignore
//! use courtyard_sdk::{Context, Error, Plugin, Value};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn invoke(ctx: &Context, operation: &str, input: Value) -> Result<Value, Error> {
//!         match operation {
//!             "greet" => courtyard_sdk::handle(input, |name: String| Ok(format!("hello {name} from {}", ctx.community))),
//!             other => Err(Error::not_found(format!("no operation {other}"))),
//!         }
//!     }
//! }
//! courtyard_sdk::export_plugin!(Hello);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use serde_json::{self, Value, json};

/// The bindings `wit-bindgen` generates for the `plugin` world of `wit/`.
#[doc(hidden)]
#[allow(missing_debug_implementations, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "courtyard_sdk::bindings",
    });
}

use bindings::courtyard::plugin as wit;

/// What the host says about the call being served. See `call-context` in `wit/types.wit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The community the call is for.
    pub community: String,
    /// This plugin's name.
    pub plugin: String,
    /// The operation being called.
    pub operation: String,
    /// The caller's idempotency key, if any: derive ids from it.
    pub idempotency_key: Option<String>,
    /// "Now", in milliseconds since the Unix epoch (UTC). Use it instead of the clock.
    pub now_ms: i64,
    /// The request id, for correlating logs.
    pub request_id: String,
}

/// Why an operation failed; each variant maps to an HTTP status at the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input is wrong (400).
    InvalidInput(String),
    /// Something the input names does not exist (404).
    NotFound(String),
    /// The request conflicts with the current state (409).
    Conflict(String),
    /// A dependency is unavailable; retry later (503).
    Unavailable(String),
    /// A bug in the plugin (500); the message is logged, not shown.
    Internal(String),
}

impl Error {
    /// An [`Error::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }
    /// An [`Error::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
    /// An [`Error::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }
    /// An [`Error::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
    /// An [`Error::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, message) = match self {
            Self::InvalidInput(m) => ("invalid input", m),
            Self::NotFound(m) => ("not found", m),
            Self::Conflict(m) => ("conflict", m),
            Self::Unavailable(m) => ("unavailable", m),
            Self::Internal(m) => ("internal", m),
        };
        write!(f, "{kind}: {message}")
    }
}

impl std::error::Error for Error {}

impl From<wit::state::StateError> for Error {
    fn from(e: wit::state::StateError) -> Self {
        use wit::state::StateError;
        match e {
            StateError::InvalidKey(m) => Self::Internal(format!("invalid state key: {m}")),
            StateError::TooLarge(m) => Self::Conflict(format!("state limit reached: {m}")),
            StateError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

impl From<wit::events::EmitError> for Error {
    fn from(e: wit::events::EmitError) -> Self {
        use wit::events::EmitError;
        match e {
            EmitError::Invalid(m) => Self::Internal(format!("event refused: {m}")),
            EmitError::TooMany(m) => Self::Conflict(format!("event refused: {m}")),
        }
    }
}

impl From<Error> for wit::types::PluginError {
    fn from(e: Error) -> Self {
        use wit::types::PluginError;
        match e {
            Error::InvalidInput(m) => PluginError::InvalidInput(m),
            Error::NotFound(m) => PluginError::NotFound(m),
            Error::Conflict(m) => PluginError::Conflict(m),
            Error::Unavailable(m) => PluginError::Unavailable(m),
            Error::Internal(m) => PluginError::Internal(m),
        }
    }
}

/// A plugin: one type that serves every operation of its manifest.
pub trait Plugin {
    /// Runs `operation` with `input` (already checked by the host against the
    /// operation's input schema) and returns the output document.
    fn invoke(ctx: &Context, operation: &str, input: Value) -> Result<Value, Error>;
}

/// Deserialises `input` into `I`, runs `f`, and serialises its output: the usual body
/// of one arm of [`Plugin::invoke`]. A deserialisation failure is [`Error::InvalidInput`].
pub fn handle<I, O>(input: Value, f: impl FnOnce(I) -> Result<O, Error>) -> Result<Value, Error>
where
    I: DeserializeOwned,
    O: Serialize,
{
    let input: I = serde_json::from_value(input).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let output = f(input)?;
    serde_json::to_value(output)
        .map_err(|e| Error::Internal(format!("cannot serialise output: {e}")))
}

/// A JSON key-value store and an event sink behind one small trait, so that a plugin's
/// logic runs unchanged against the host ([`store::HostStore`]) and, in native unit tests,
/// against an in-memory store (`testing::MemoryStore`, feature `testing`).
#[cfg(feature = "http")]
pub mod http;

pub mod store {
    use super::{Error, Value};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// What a plugin's logic needs from the host.
    pub trait Store {
        /// The JSON value under `key`.
        fn get(&mut self, key: &str) -> Result<Option<Value>, Error>;
        /// Stores `value` under `key`.
        fn put(&mut self, key: &str, value: &Value) -> Result<(), Error>;
        /// Removes `key`.
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
    pub fn load<T: DeserializeOwned>(
        store: &mut impl Store,
        key: &str,
    ) -> Result<Option<T>, Error> {
        match store.get(key)? {
            None => Ok(None),
            Some(value) => serde_json::from_value(value).map(Some).map_err(|e| {
                Error::internal(format!("state key {key:?} holds an unexpected value: {e}"))
            }),
        }
    }

    /// Up to `limit` entries whose key starts with `prefix`, after `after`, deserialised.
    pub fn scan_as<T: DeserializeOwned>(
        store: &mut impl Store,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, T)>, Error> {
        store
            .scan(prefix, after, limit)?
            .into_iter()
            .map(|(key, value)| match serde_json::from_value(value) {
                Ok(v) => Ok((key, v)),
                Err(e) => Err(Error::internal(format!(
                    "state key {key:?} holds an unexpected value: {e}"
                ))),
            })
            .collect()
    }

    /// Stores `value` under `key`, serialised.
    pub fn save<T: Serialize + ?Sized>(
        store: &mut impl Store,
        key: &str,
        value: &T,
    ) -> Result<(), Error> {
        store.put(key, &to_json(value)?)
    }

    /// Emits an event whose payload is `payload`, serialised.
    pub fn emit<T: Serialize + ?Sized>(
        store: &mut impl Store,
        kind: &str,
        payload: &T,
    ) -> Result<(), Error> {
        store.emit(kind, &to_json(payload)?)
    }

    /// `value` as JSON.
    pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
        serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot serialise: {e}")))
    }

    /// The host's state and event stream.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct HostStore;

    impl Store for HostStore {
        fn get(&mut self, key: &str) -> Result<Option<Value>, Error> {
            super::state::get(key)
        }
        fn put(&mut self, key: &str, value: &Value) -> Result<(), Error> {
            super::state::put(key, value)
        }
        fn delete(&mut self, key: &str) -> Result<(), Error> {
            super::state::delete(key)
        }
        fn scan(
            &mut self,
            prefix: &str,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<(String, Value)>, Error> {
            super::state::list(prefix, after, limit)
        }
        fn emit(&mut self, kind: &str, payload: &Value) -> Result<(), Error> {
            super::events::emit(kind, payload)
        }
    }
}

#[cfg(feature = "testing")]
pub mod testing;

/// Calendar arithmetic for plugins, which take time only from `Context::now_ms`
/// (milliseconds since the Unix epoch, UTC) and have no date library.
pub mod time {
    /// The proleptic Gregorian (year, month, day) of the day `days` after 1970-01-01
    /// (Howard Hinnant's `civil_from_days`).
    pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
        let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
        (yoe + era * 400 + i64::from(month <= 2), month, day)
    }

    /// The number of days from 1970-01-01 to (year, month, day): the inverse of
    /// [`civil_from_days`].
    pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let y = year - i64::from(month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// `ms` as (year, month, day, hour, minute, second) in UTC.
    pub fn utc_fields(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
        let secs = ms.div_euclid(1000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let rem = u32::try_from(secs.rem_euclid(86_400)).unwrap_or(0);
        (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn days_and_dates_round_trip() {
            assert_eq!(civil_from_days(0), (1970, 1, 1));
            assert_eq!(civil_from_days(11_016), (2000, 2, 29));
            assert_eq!(civil_from_days(-1), (1969, 12, 31));
            for days in (-800_000..800_000).step_by(997) {
                let (y, m, d) = civil_from_days(days);
                assert_eq!(days_from_civil(y, m, d), days);
            }
            assert_eq!(
                utc_fields(4_099_766_400_000 + 36_000_000),
                (2099, 12, 1, 10, 0, 0)
            );
        }
    }
}

/// The plugin's per-community key-value state (see `wit/state.wit`).
pub mod state {
    use super::{Error, wit};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// The raw bytes under `key`.
    pub fn get_raw(key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(wit::state::get(key)?)
    }

    /// Stores raw bytes under `key`.
    pub fn set_raw(key: &str, value: &[u8]) -> Result<(), Error> {
        Ok(wit::state::set(key, value)?)
    }

    /// The JSON value under `key`, deserialised.
    pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
        match get_raw(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Internal(format!("state key {key:?} holds bad JSON: {e}"))),
        }
    }

    /// Stores `value` as JSON under `key`.
    pub fn put<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::Internal(format!("cannot serialise state {key:?}: {e}")))?;
        set_raw(key, &bytes)
    }

    /// Removes `key`.
    pub fn delete(key: &str) -> Result<(), Error> {
        Ok(wit::state::delete(key)?)
    }

    /// Up to `limit` JSON entries whose key starts with `prefix`, after `start_after`.
    pub fn list<T: DeserializeOwned>(
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, T)>, Error> {
        wit::state::scan(prefix, start_after, limit)?
            .into_iter()
            .map(|entry| {
                let value = serde_json::from_slice(&entry.value).map_err(|e| {
                    Error::Internal(format!("state key {:?} holds bad JSON: {e}", entry.key))
                })?;
                Ok((entry.key, value))
            })
            .collect()
    }
}

/// Structured logging into the host's log (see `wit/log.wit`).
pub mod log {
    use super::wit;
    pub use wit::log::Level;

    /// Writes a record with fields.
    pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        wit::log::write(level, message, &fields);
    }
    /// Writes a `debug` record.
    pub fn debug(message: &str) {
        write(Level::Debug, message, &[]);
    }
    /// Writes an `info` record.
    pub fn info(message: &str) {
        write(Level::Info, message, &[]);
    }
    /// Writes a `warn` record.
    pub fn warn(message: &str) {
        write(Level::Warn, message, &[]);
    }
    /// Writes an `error` record.
    pub fn error(message: &str) {
        write(Level::Error, message, &[]);
    }
}

/// The calling community's configuration of this plugin (see `wit/config.wit`).
pub mod config {
    use super::{Error, Value, wit};
    use serde::de::DeserializeOwned;

    /// The configuration as a JSON value (defaults from the manifest merged in).
    pub fn raw() -> Result<Value, Error> {
        serde_json::from_str(&wit::config::get())
            .map_err(|e| Error::Internal(format!("host sent bad config JSON: {e}")))
    }

    /// The configuration deserialised into `T`.
    pub fn get<T: DeserializeOwned>() -> Result<T, Error> {
        serde_json::from_value(raw()?)
            .map_err(|e| Error::Internal(format!("config does not fit the plugin: {e}")))
    }
}

/// Events into the community's event stream (see `wit/events.wit`).
pub mod events {
    use super::{Error, wit};
    use serde::Serialize;

    /// Emits an event of a kind declared in the manifest; `payload` must serialise to a
    /// JSON object.
    pub fn emit<T: Serialize + ?Sized>(kind: &str, payload: &T) -> Result<(), Error> {
        let payload = serde_json::to_string(payload)
            .map_err(|e| Error::Internal(format!("cannot serialise event payload: {e}")))?;
        Ok(wit::events::emit(kind, &payload)?)
    }
}

#[doc(hidden)]
pub mod __private {
    use super::{Context, Error, Plugin, wit};

    pub fn invoke<P: Plugin>(
        ctx: wit::types::CallContext,
        operation: String,
        input: String,
    ) -> Result<String, wit::types::PluginError> {
        let ctx = Context {
            community: ctx.community,
            plugin: ctx.plugin,
            operation: ctx.operation,
            idempotency_key: ctx.idempotency_key,
            now_ms: ctx.now_ms,
            request_id: ctx.request_id,
        };
        let input = serde_json::from_str(&input)
            .map_err(|e| Error::InvalidInput(format!("input is not JSON: {e}")))?;
        let output = P::invoke(&ctx, &operation, input)?;
        serde_json::to_string(&output)
            .map_err(|e| Error::Internal(format!("cannot serialise output: {e}")).into())
    }
}

/// Exports `$ty` (a type implementing [`Plugin`]) as this component's `handler`.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __CourtyardExport;

        impl $crate::bindings::exports::courtyard::plugin::handler::Guest for __CourtyardExport {
            fn invoke(
                ctx: $crate::bindings::courtyard::plugin::types::CallContext,
                operation: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::courtyard::plugin::types::PluginError,
            > {
                $crate::__private::invoke::<$ty>(ctx, operation, input)
            }
        }

        $crate::bindings::__export_plugin_world!(__CourtyardExport with_types_in $crate::bindings);
    };
}
