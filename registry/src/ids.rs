//! Validated identifiers: a value of these types is always well formed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {rule}")]
pub struct IdError {
    /// Which kind of identifier.
    pub what: &'static str,
    /// The refused value.
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

fn is_slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Defines a validated string identifier: a newtype over `String` with `new`, serde
/// (through `TryFrom<String>`, so deserialising checks the rule), `Display`,
/// `FromStr`, `Borrow<str>` and a JSON Schema with the rule's pattern. Errors are
/// [`IdError`](crate::IdError). The defining crate needs `serde` and `schemars`.
#[macro_export]
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $pattern:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier.
            pub fn new(value: impl Into<String>) -> Result<Self, $crate::IdError> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if check(&value) {
                    Ok(Self(value))
                } else {
                    Err($crate::IdError { what: $what, value, rule: $rule })
                }
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::IdError;
            fn try_from(value: String) -> Result<Self, $crate::IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::IdError;
            fn from_str(s: &str) -> Result<Self, $crate::IdError> {
                Self::new(s)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Maps keyed by the id are looked up by `&str`.
        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl ::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                ::schemars::json_schema!({ "type": "string", "pattern": $pattern, "description": $rule })
            }
        }
    };
}

id_type!(
    /// A plugin's name: `canteen`, `library-sync`.
    PluginName,
    "plugin name",
    "^[a-z][a-z0-9-]{0,62}$",
    "1 to 63 characters: lowercase letters, digits and '-', starting with a letter",
    |s| {
        (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(is_slug_char)
    }
);

id_type!(
    /// An operation's name: `place-order`, `check_gate`.
    OperationName,
    "operation name",
    "^[a-z][a-z0-9_-]{0,62}$",
    "1 to 63 characters: lowercase letters, digits, '-' and '_', starting with a letter",
    |s| {
        (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| is_slug_char(c) || c == '_')
    }
);

id_type!(
    /// An event kind: dot-separated segments, `canteen.order-placed`, `camera.object-thrown`.
    EventKind,
    "event kind",
    "^[a-z][a-z0-9_-]*(\\.[a-z0-9][a-z0-9_-]*)*$",
    "up to 127 characters: dot-separated segments of lowercase letters, digits, '-' and '_'",
    |s| {
        (1..=127).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.split('.').all(|seg| {
                !seg.is_empty() && seg.chars().all(|c| is_slug_char(c) || c == '_')
            })
    }
);

/// A capability a plugin asks for in its manifest. The community's admin grants
/// capabilities when enabling the plugin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Persistent key-value state in the community's namespace.
    State,
    /// Emitting events into the community's event stream.
    Events,
    /// Outgoing HTTP requests (`wasi:http`), to the origins the community allows.
    Http,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names() {
        for ok in ["canteen", "library-sync", "a", "x9"] {
            assert!(PluginName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Canteen", "9lives", "-x", "a_b", "a.b", &"a".repeat(64)] {
            assert!(PluginName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_kinds() {
        for ok in [
            "camera.object-thrown",
            "a",
            "counter.threshold-reached",
            "a.b_c.d9",
        ] {
            assert!(EventKind::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "A.b", "9a"] {
            assert!(EventKind::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deserialising_checks_the_rule() {
        let err = serde_json::from_str::<PluginName>("\"Bad Name\"").expect_err("refused");
        assert!(err.to_string().contains("lowercase"), "{err}");
    }
}
