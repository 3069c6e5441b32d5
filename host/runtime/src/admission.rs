//! Admission: whether a community runs a plugin, and how (its version pin, config,
//! capability grants and HTTP origins). The gate is a trait the tenancy implements, so
//! the runtime does not depend on it.

use crate::{Invocation, InvokeError, LoadedPlugin};
use std::sync::Arc;

/// The capabilities a community granted a plugin: the host interfaces it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// `courtyard:plugin/state`.
    pub state: bool,
    /// `courtyard:plugin/events`.
    pub events: bool,
}

impl Grants {
    /// Every capability.
    pub const ALL: Self = Self {
        state: true,
        events: true,
    };
}

/// An origin a plugin may send HTTP requests to: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host name or address, lowercase.
    pub host: String,
    /// The port (the scheme's default when the text has none).
    pub port: u16,
}

/// Why an origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an origin: write `https://host` or `http://host:port`, without a path")]
pub struct InvalidOrigin(pub String);

impl Origin {
    /// Parses `https://host[:port]` or `http://host[:port]` (no user, path or query). A
    /// host is a name (letters, digits, `-`, `.`), an IPv4 address, or an IPv6 address
    /// in brackets (`http://[::1]:8080`).
    pub fn parse(text: &str) -> Result<Self, InvalidOrigin> {
        let bad = || InvalidOrigin(text.to_owned());
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(bad()),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| bad())?,
                None if after.is_empty() => default,
                None => return Err(bad()),
            };
            (format!("[{addr}]"), port)
        } else {
            let (host, port) = match rest.split_once(':') {
                Some((host, p)) => (host, p.parse::<u16>().map_err(|_| bad())?),
                None => (rest, default),
            };
            let name_ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !host.starts_with(['-', '.']);
            if !name_ok {
                return Err(bad());
            }
            (host.to_ascii_lowercase(), port)
        };
        if port == 0 {
            return Err(bad());
        }
        Ok(Self { scheme, host, port })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// How a community runs a plugin: what an [`Admission`] gate answers.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The version the community pinned, if any.
    pub version: Option<String>,
    /// The community's config: top-level keys set over the manifest's defaults (none:
    /// the defaults).
    pub config: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// The capabilities granted.
    pub grants: Grants,
    /// Where the plugin may send HTTP requests (the `http` capability; empty: nowhere).
    pub http_origins: Arc<[Origin]>,
}

/// What a call runs with: the community's config, grants and HTTP origins.
#[derive(Debug)]
pub(crate) struct CallSetup {
    pub(crate) config: Arc<str>,
    pub(crate) grants: Grants,
    pub(crate) http_origins: Arc<[Origin]>,
}

/// The gate every call passes: whether a community runs a plugin, and how. Without
/// one (tests of the runtime alone), every loaded plugin runs everywhere with its
/// default config and every capability.
pub trait Admission: Send + Sync + std::fmt::Debug + 'static {
    /// How `community` runs `plugin`, or `None` if it does not.
    fn admit(&self, community: &str, plugin: &str) -> Option<Admitted>;
}

/// Asks the gate how the call's community runs its plugin: its config and grants.
pub(crate) fn admit(
    gate: Option<&Arc<dyn Admission>>,
    inv: &Invocation,
    plugin: &LoadedPlugin,
) -> Result<CallSetup, InvokeError> {
    let Some(gate) = gate else {
        let config = match &inv.config {
            Some(config) => config.to_string().into(),
            None => plugin.default_config_json.clone(),
        };
        return Ok(CallSetup {
            config,
            grants: Grants::ALL,
            http_origins: Arc::from([]),
        });
    };
    let admitted =
        gate.admit(&inv.community, &inv.plugin)
            .ok_or_else(|| InvokeError::NotEnabled {
                community: inv.community.clone(),
                plugin: inv.plugin.clone(),
            })?;
    let loaded = &plugin.manifest.manifest().version;
    if let Some(pinned) = &admitted.version
        && *pinned != loaded.to_string()
    {
        return Err(InvokeError::VersionUnavailable {
            community: inv.community.clone(),
            plugin: inv.plugin.clone(),
            pinned: pinned.clone(),
            loaded: loaded.to_string(),
        });
    }
    let config = match (&inv.config, &admitted.config) {
        (Some(config), _) => config.to_string().into(),
        (None, Some(overrides)) if !overrides.is_empty() => {
            let mut config = plugin.manifest.default_config().clone();
            if let serde_json::Value::Object(map) = &mut config {
                for (k, v) in overrides.iter() {
                    map.insert(k.clone(), v.clone());
                }
            }
            config.to_string().into()
        }
        (None, _) => plugin.default_config_json.clone(),
    };
    Ok(CallSetup {
        config,
        grants: admitted.grants,
        http_origins: admitted.http_origins,
    })
}
