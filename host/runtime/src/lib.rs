//! The Courtyard plugin runtime: the only crate that knows wasmtime.
//!
//! One [`Runtime`] per process holds the wasmtime `Engine` (pooling allocator, epoch
//! interruption), the `Linker` with every interface of `wit/`, and one prepared
//! instance (`InstancePre`) per loaded plugin. Each [`Runtime::invoke`] gets a fresh
//! `Store` and instance — or, for a plugin whose manifest allows reuse, a warm one that
//! served earlier calls of the same community — with a CPU deadline, a memory cap and a
//! stack limit; the plugin's state writes and events are held until it returns and
//! committed atomically, and durably, only if it returns `ok`.
//!
//! Architecture invariant: no other crate names a wasmtime type; plugins see the
//! world only through `wit/` (and a locked-down WASI).

mod bindings;
mod cache;
mod host;
mod limits;
mod metrics;

pub use cache::Compiled;
pub use courtyard_registry::InputError;

use bindings::PluginPre;
use bindings::courtyard::plugin::types::{CallContext, PluginError as WitPluginError};
use courtyard_registry::{Package, PluginName, PreparedManifest};
use courtyard_store::{Batch, Namespace, QueueName, Store, StoreError};
use host::{CallState, HostState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// How often the engine's epoch advances; CPU deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How much of a plugin's stdout and of its stderr is kept per call.
const MAX_CAPTURED_OUTPUT: usize = 64 * 1024;

/// The limits every invocation runs under. Defaults are in the README.
#[derive(Debug, Clone)]
pub struct Limits {
    /// CPU deadline of one invocation, instantiation included.
    pub timeout: Duration,
    /// Linear memory cap of one instance, in bytes.
    pub max_memory_bytes: usize,
    /// Maximum native stack the plugin's wasm code may use, in bytes.
    pub max_wasm_stack: usize,
    /// How many invocations run at once; more wait for a slot.
    pub max_concurrency: u32,
    /// How many idle instances are kept for reuse, over all communities, for plugins
    /// whose manifest allows it (`instance_reuse`); 0 turns reuse off.
    pub max_warm_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(1000),
            max_memory_bytes: 64 * 1024 * 1024,
            max_wasm_stack: 512 * 1024,
            max_concurrency: 64,
            max_warm_instances: 64,
        }
    }
}

/// The source of "now" for call contexts; tests inject a fixed clock.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch, UTC.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

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

pub use host::http::MAX_RESPONSE_BYTES;

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
struct CallSetup {
    config: Arc<str>,
    grants: Grants,
    http_origins: Arc<[Origin]>,
}

/// The gate every call passes: whether a community runs a plugin, and how. Without
/// one (tests of the runtime alone), every loaded plugin runs everywhere with its
/// default config and every capability.
pub trait Admission: Send + Sync + std::fmt::Debug + 'static {
    /// How `community` runs `plugin`, or `None` if it does not.
    fn admit(&self, community: &str, plugin: &str) -> Option<Admitted>;
}

/// How to build a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The limits of every invocation.
    pub limits: Limits,
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// The clock of call contexts.
    pub clock: Arc<dyn Clock>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            cache_dir: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The wasmtime engine refused the configuration.
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    /// The admission gate was set already.
    #[error("the runtime's admission gate is set already")]
    AdmissionSet,
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component could not be compiled (or read from the cache).
    #[error("cannot compile plugin {plugin}: {reason}")]
    Compile {
        /// The plugin.
        plugin: PluginName,
        /// What wasmtime said.
        reason: String,
    },
    /// The component does not fit the `plugin` world: an import the host does not
    /// provide, or a missing or mistyped export.
    #[error("plugin {plugin} does not fit the courtyard:plugin world: {reason}")]
    Incompatible {
        /// The plugin.
        plugin: PluginName,
        /// What is missing or wrong.
        reason: String,
    },
}

/// What was loaded.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The plugin.
    pub plugin: PluginName,
    /// Its version.
    pub version: String,
    /// The component's content address.
    pub digest: String,
    /// Whether it was compiled or loaded precompiled.
    pub compiled: Compiled,
    /// How long loading took.
    pub elapsed: Duration,
}

/// One call of a plugin operation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The community the call is for (a valid community id).
    pub community: String,
    /// The plugin.
    pub plugin: String,
    /// The operation.
    pub operation: String,
    /// The input document.
    pub input: serde_json::Value,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The request id, for logs.
    pub request_id: String,
    /// The community's configuration of the plugin (merged over the defaults);
    /// `None` means the manifest's defaults.
    pub config: Option<serde_json::Value>,
    /// How many events led to this call: 0 for a call from a person or a device, the
    /// triggering event's depth for a workflow step. Events the call emits get one
    /// more, which bounds chains of events (see the workflow engine).
    pub depth: u32,
    /// The chain of events this call belongs to (the sequence number of the event that
    /// started it), if any: events the call emits carry it on, so that the workflow
    /// engine can bound how many runs one chain starts.
    pub chain: Option<u64>,
}

/// Log levels of plugin log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (also: a line on stdout).
    Info,
    /// Something to look at (also: a line on stderr).
    Warn,
    /// A failure.
    Error,
}

/// One log record of a plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Key-value fields.
    pub fields: Vec<(String, String)>,
}

/// An event a call emitted, as recorded in the community's event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmittedEvent {
    /// The kind, declared in the plugin's manifest.
    pub kind: String,
    /// The payload (a JSON object).
    pub payload: serde_json::Value,
    /// The plugin that emitted it.
    pub source: String,
    /// The call's "now".
    pub at_ms: i64,
    /// The call's request id.
    pub request_id: String,
    /// How many events led to it (see [`Invocation::depth`]); 0 for an event posted
    /// by a device.
    #[serde(default)]
    pub depth: u32,
    /// The idempotency id a device gave the event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The chain of events it belongs to (see [`Invocation::chain`]); none when it
    /// starts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<u64>,
}

/// The result of a successful call.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The output document.
    pub output: serde_json::Value,
    /// The call's log records (stdout and stderr lines included).
    pub logs: Vec<LogRecord>,
    /// The events the call emitted (now recorded in the community's stream).
    pub events: Vec<EmittedEvent>,
}

/// The error variants a plugin can return (`plugin-error` in `wit/types.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginErrorKind {
    /// The input is wrong.
    InvalidInput,
    /// Something the input names does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// A dependency is unavailable; retry later.
    Unavailable,
    /// A bug in the plugin.
    Internal,
}

/// Why an invocation failed. Each variant is a different thing for the caller to do.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No plugin of that name is loaded.
    #[error("no plugin named {plugin:?}")]
    UnknownPlugin {
        /// The name asked for.
        plugin: String,
    },
    /// The plugin has no such operation.
    #[error("plugin {plugin} has no operation {operation:?}")]
    UnknownOperation {
        /// The plugin.
        plugin: String,
        /// The operation asked for.
        operation: String,
    },
    /// The input does not satisfy the operation's input schema.
    #[error("invalid input for {plugin}/{operation}: {error}")]
    InvalidInput {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The problems, with JSON pointers.
        error: InputError,
    },
    /// The plugin returned an error.
    #[error("{plugin}/{operation}: {message}")]
    Plugin {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// Which error.
        kind: PluginErrorKind,
        /// The plugin's message.
        message: String,
    },
    /// The call ran past its CPU deadline.
    #[error("{plugin}/{operation} ran past its deadline of {} ms", limit.as_millis())]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The deadline.
        limit: Duration,
    },
    /// The call tried to grow its memory past the cap.
    #[error("{plugin}/{operation} exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The cap.
        limit: usize,
    },
    /// The call overflowed the wasm stack (recursion too deep).
    #[error("{plugin}/{operation} overflowed its stack")]
    StackOverflow {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
    },
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access…).
    #[error("{plugin}/{operation} trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The trap, and the last line the plugin wrote to stderr (a panic message).
        message: String,
    },
    /// The plugin returned an output that is not JSON, or that breaks its output schema.
    #[error("{plugin}/{operation} returned a bad output: {message}")]
    BadOutput {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The parse error.
        message: String,
    },
    /// The store failed while committing the call's writes.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// The community does not run the plugin (an admission gate is set and said no).
    #[error("plugin {plugin} is not enabled in community {community}")]
    NotEnabled {
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
    },
    /// The community pinned a version of the plugin that the host does not have.
    #[error("community {community} pins {plugin} {pinned}, but the host has {plugin} {loaded}")]
    VersionUnavailable {
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
        /// The version pinned.
        pinned: String,
        /// The version loaded.
        loaded: String,
    },
    /// The plugin used a capability its community did not grant it; the call was
    /// stopped there and nothing it did was kept.
    #[error(
        "{plugin}/{operation} used the capability `{capability}`, which community {community} has not granted it"
    )]
    CapabilityDenied {
        /// The community.
        community: String,
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The capability (`state`, `events`).
        capability: String,
    },
    /// A bug in the host.
    #[error("internal error: {0}")]
    Internal(String),
}

struct LoadedPlugin {
    manifest: Arc<PreparedManifest>,
    pre: PluginPre<HostState>,
    /// The manifest's default config as JSON text, serialised once.
    default_config_json: Arc<str>,
}

/// The captured stdout and stderr of an instance, and how much of each earlier calls
/// have already taken.
struct Pipes {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    stdout_seen: usize,
    stderr_seen: usize,
}

impl Pipes {
    fn new() -> Self {
        Self {
            stdout: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
            stderr: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
            stdout_seen: 0,
            stderr_seen: 0,
        }
    }

    /// What was written since the last call, as text.
    fn take_new(&mut self) -> (String, String) {
        let out = self.stdout.contents();
        let err = self.stderr.contents();
        let new_out =
            String::from_utf8_lossy(out.get(self.stdout_seen..).unwrap_or_default()).into_owned();
        let new_err =
            String::from_utf8_lossy(err.get(self.stderr_seen..).unwrap_or_default()).into_owned();
        self.stdout_seen = out.len();
        self.stderr_seen = err.len();
        (new_out, new_err)
    }

    /// Whether a further call could run out of room to write (the pipes are not
    /// emptied; an instance is retired before they fill).
    fn nearly_full(&self) -> bool {
        self.stdout_seen.max(self.stderr_seen) > MAX_CAPTURED_OUTPUT / 2
    }
}

/// An instance kept for the next call of the same (community, plugin).
struct WarmInstance {
    plugin: Arc<LoadedPlugin>,
    store: wasmtime::Store<HostState>,
    instance: bindings::Plugin,
    pipes: Pipes,
    calls: u32,
    last_used: u64,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    store: Arc<dyn Store>,
    config: RuntimeConfig,
    plugins: RwLock<BTreeMap<String, Arc<LoadedPlugin>>>,
    /// The admission gate, once set.
    admission: std::sync::OnceLock<Arc<dyn Admission>>,
    /// Calls of one plugin in one community run one at a time, so a read-modify-write
    /// never loses an update.
    namespace_locks: Mutex<HashMap<Namespace, Arc<Mutex<()>>>>,
    slots: Arc<tokio::sync::Semaphore>,
    ticker_stop: Arc<AtomicBool>,
    /// Instances of plugins that allow reuse, one per namespace at most, bounded.
    warm: Mutex<HashMap<Namespace, WarmInstance>>,
    warm_clock: std::sync::atomic::AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The plugin runtime. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.inner.config.limits)
            .field("plugins", &self.plugins())
            .finish_non_exhaustive()
    }
}

fn engine_for(limits: &Limits) -> Result<Engine, RuntimeError> {
    // Every running call holds an instance slot, and so does every warm instance.
    let slots = limits.max_concurrency.max(1) + limits.max_warm_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        // Components built by other toolchains (componentize-py, jco) have many core
        // instances, memories and tables; Rust components a handful.
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .total_core_instances(slots * 16)
        .total_memories(slots * 4)
        .total_tables(slots * 16)
        .max_memory_size(limits.max_memory_bytes);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .max_wasm_stack(limits.max_wasm_stack);
    Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until `stop` is set.
fn start_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("courtyard-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the epoch thread; CPU deadlines will not fire"));
}

impl Runtime {
    /// A runtime over `store`.
    pub fn new(config: RuntimeConfig, store: Arc<dyn Store>) -> Result<Self, RuntimeError> {
        let engine = engine_for(&config.limits)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        start_ticker(engine.clone(), ticker_stop.clone());
        let slots = Arc::new(tokio::sync::Semaphore::new(
            config.limits.max_concurrency.max(1) as usize,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                store,
                config,
                plugins: RwLock::default(),
                namespace_locks: Mutex::default(),
                admission: std::sync::OnceLock::new(),
                slots,
                ticker_stop,
                warm: Mutex::default(),
                warm_clock: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Sets the admission gate of every later call (once; later calls are refused).
    pub fn set_admission(&self, admission: Arc<dyn Admission>) -> Result<(), RuntimeError> {
        self.inner
            .admission
            .set(admission)
            .map_err(|_| RuntimeError::AdmissionSet)
    }

    /// Asks the gate how the call's community runs its plugin: its config and grants.
    fn admit(&self, inv: &Invocation, plugin: &LoadedPlugin) -> Result<CallSetup, InvokeError> {
        let Some(gate) = self.inner.admission.get() else {
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

    /// The clock of call contexts (and of everything that must agree with them).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.config.clock.clone()
    }

    /// The limits invocations run under.
    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// Compiles (or loads from the cache) and prepares `package`, replacing any loaded
    /// plugin of the same name.
    pub fn load(&self, package: &Package) -> Result<LoadReport, LoadError> {
        let started = Instant::now();
        let (loaded, compiled) = self.prepare(package)?;
        let manifest = loaded.manifest.manifest();
        let report = LoadReport {
            plugin: manifest.name.clone(),
            version: manifest.version.to_string(),
            digest: package.digest().to_string(),
            compiled,
            elapsed: started.elapsed(),
        };
        self.inner
            .plugins
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(report.plugin.to_string(), Arc::new(loaded));
        Ok(report)
    }

    /// Loads `package` unless a version at least as high is loaded already (checked and
    /// swapped under one lock, so that concurrent publishes end with the highest).
    /// Returns whether it was loaded.
    pub fn load_if_newer(&self, package: &Package) -> Result<bool, LoadError> {
        let (loaded, _) = self.prepare(package)?;
        let name = loaded.manifest.manifest().name.to_string();
        let mut plugins = self
            .inner
            .plugins
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if plugins
            .get(&name)
            .is_some_and(|p| p.manifest.manifest().version >= loaded.manifest.manifest().version)
        {
            return Ok(false);
        }
        plugins.insert(name, Arc::new(loaded));
        Ok(true)
    }

    /// Drops the warm instance of (`community`, `plugin`), if there is one: after the
    /// community changes how it runs the plugin, no instance made before serves a call.
    pub fn drop_warm(&self, community: &str, plugin: &str) {
        self.inner
            .warm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&Namespace::new(community, plugin));
    }

    /// Checks that `package` would load (it compiles, and fits the world) without
    /// loading it. The compiled code is cached, so a later [`Runtime::load`] is fast.
    pub fn check(&self, package: &Package) -> Result<(), LoadError> {
        self.prepare(package).map(drop)
    }

    fn prepare(&self, package: &Package) -> Result<(LoadedPlugin, Compiled), LoadError> {
        let manifest = package.manifest().clone();
        let name = manifest.manifest().name.clone();
        let (component, compiled): (Component, Compiled) = cache::component(
            &self.inner.engine,
            self.inner.config.cache_dir.as_deref(),
            package.digest(),
            package.component(),
        )
        .map_err(|e| LoadError::Compile {
            plugin: name.clone(),
            reason: format!("{e:#}"),
        })?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| LoadError::Incompatible {
                plugin: name.clone(),
                reason: format!("{e:#}"),
            })?;
        Ok((
            LoadedPlugin {
                default_config_json: manifest.default_config().to_string().into(),
                manifest,
                pre,
            },
            compiled,
        ))
    }

    /// The names of the loaded plugins.
    pub fn plugins(&self) -> Vec<String> {
        self.inner
            .plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// The manifest of a loaded plugin.
    pub fn manifest(&self, plugin: &str) -> Option<Arc<PreparedManifest>> {
        self.inner
            .plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(plugin)
            .map(|p| p.manifest.clone())
    }

    /// Runs one operation. Returns once the call's writes and events are durable.
    pub async fn invoke(&self, invocation: Invocation) -> Result<Outcome, InvokeError> {
        self.invoke_with(invocation, true).await
    }

    /// Runs one operation, and returns once the call's writes and events are committed
    /// (visible to every later call) without waiting for them to be durable. For a
    /// caller that records the outcome in a later batch of its own, such as a workflow
    /// step: the store makes batches durable in commit order, so if that later batch
    /// survives a crash, this one does too, and if not, the caller repeats the call.
    pub async fn invoke_deferred(&self, invocation: Invocation) -> Result<Outcome, InvokeError> {
        self.invoke_with(invocation, false).await
    }

    async fn invoke_with(
        &self,
        invocation: Invocation,
        durable: bool,
    ) -> Result<Outcome, InvokeError> {
        let started = Instant::now();
        let community = invocation.community.clone();
        let (plugin, operation) = (invocation.plugin.clone(), invocation.operation.clone());
        let result = self.invoke_checked(invocation, durable).await;
        metrics::record(&community, &plugin, &operation, &result, started.elapsed());
        result
    }

    async fn invoke_checked(
        &self,
        invocation: Invocation,
        durable: bool,
    ) -> Result<Outcome, InvokeError> {
        let plugin = self
            .inner
            .plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&invocation.plugin)
            .cloned()
            .ok_or_else(|| InvokeError::UnknownPlugin {
                plugin: invocation.plugin.clone(),
            })?;
        // An operation the plugin does not have is refused first, so that a made-up name
        // never reaches the metrics as a label (the admission's refusals are labelled).
        if !plugin.manifest.has_operation(&invocation.operation) {
            return Err(InvokeError::UnknownOperation {
                plugin: invocation.plugin,
                operation: invocation.operation,
            });
        }
        let admitted = self.admit(&invocation, &plugin)?;

        match plugin
            .manifest
            .check_input(&invocation.operation, &invocation.input)
        {
            None => {
                return Err(InvokeError::UnknownOperation {
                    plugin: invocation.plugin,
                    operation: invocation.operation,
                });
            }
            Some(Err(error)) => {
                return Err(InvokeError::InvalidInput {
                    plugin: invocation.plugin,
                    operation: invocation.operation,
                    error,
                });
            }
            Some(Ok(())) => {}
        }
        // The slot is held by the call itself, not by this future: if the caller stops
        // waiting (a step timeout, a client that hangs up), the call still runs to its
        // end, and until then it still counts against `max_concurrency`.
        let slot = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| InvokeError::Internal(format!("invocation slots closed: {e}")))?;
        let inner = self.inner.clone();
        // On a multi-threaded runtime the call runs on this thread, and tokio hands the
        // worker's other tasks to another thread meanwhile (`block_in_place`): it saves
        // the two thread switches of `spawn_blocking`, which cost as much as a whole
        // call of a small plugin (docs/performance.md).
        if tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        {
            let outcome = tokio::task::block_in_place(|| {
                inner.invoke_blocking(&plugin, invocation, admitted, durable)
            });
            drop(slot);
            return outcome;
        }
        tokio::task::spawn_blocking(move || {
            let outcome = inner.invoke_blocking(&plugin, invocation, admitted, durable);
            drop(slot);
            outcome
        })
        .await
        .map_err(|e| InvokeError::Internal(format!("invocation task failed: {e}")))?
    }

    /// Up to `limit` events of `community`'s stream after sequence number `after`.
    pub fn events(
        &self,
        community: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, EmittedEvent)>, InvokeError> {
        self.inner
            .store
            .read_queue(&QueueName::events(community), after, limit)?
            .into_iter()
            .map(|entry| {
                serde_json::from_slice(&entry.value)
                    .map(|event| (entry.seq, event))
                    .map_err(|e| {
                        InvokeError::Internal(format!("unreadable event {}: {e}", entry.seq))
                    })
            })
            .collect()
    }
}

impl Inner {
    fn namespace_lock(&self, ns: &Namespace) -> Arc<Mutex<()>> {
        self.namespace_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(ns.clone())
            .or_default()
            .clone()
    }

    fn invoke_blocking(
        &self,
        plugin: &Arc<LoadedPlugin>,
        inv: Invocation,
        setup: CallSetup,
        durable: bool,
    ) -> Result<Outcome, InvokeError> {
        let limits = &self.config.limits;
        let namespace = Namespace::new(&inv.community, &inv.plugin);
        let lock = self.namespace_lock(&namespace);
        let serialised = lock.lock().unwrap_or_else(PoisonError::into_inner);

        let CallSetup {
            config: config_json,
            grants,
            http_origins,
        } = setup;
        let call = CallState {
            grants,
            denied: None,
            http: host::http::HttpPolicy {
                allowed: http_origins,
                // A request may wait no longer than the whole call may run.
                timeout: limits.timeout,
            },
            namespace: namespace.clone(),
            store: self.store.clone(),
            manifest: plugin.manifest.clone(),
            config_json,
            operation: inv.operation.clone(),
            request_id: inv.request_id.clone(),
            writes: BTreeMap::new(),
            write_bytes: 0,
            events: Vec::new(),
            logs: Vec::new(),
            dropped_logs: 0,
        };
        let reuse = plugin.manifest.manifest().instance_reuse;
        let warm = match reuse {
            Some(_) => self.take_warm(&namespace, plugin),
            None => None,
        };
        ::metrics::counter!(
            "courtyard_plugin_instances_total",
            "kind" => if warm.is_some() { "warm" } else { "fresh" }
        )
        .increment(1);
        let (mut store, mut pipes, calls, instance) = match warm {
            Some(w) => {
                let mut store = w.store;
                store.data_mut().call = call;
                store.data_mut().limiter.memory_exceeded = false;
                (store, w.pipes, w.calls, Some(w.instance))
            }
            None => {
                let pipes = Pipes::new();
                // WASI locked down: no preopens, no environment, no arguments, no
                // network; stdout and stderr go to memory and then to the plugin's log.
                let wasi = WasiCtxBuilder::new()
                    .stdout(pipes.stdout.clone())
                    .stderr(pipes.stderr.clone())
                    .allow_tcp(false)
                    .allow_udp(false)
                    .allow_ip_name_lookup(false)
                    .build();
                let state = HostState {
                    wasi,
                    table: ResourceTable::new(),
                    http: wasmtime_wasi_http::WasiHttpCtx::new(),
                    limiter: limits::CallLimiter {
                        max_memory_bytes: limits.max_memory_bytes,
                        max_table_elements: 100_000,
                        memory_exceeded: false,
                    },
                    call,
                };
                let mut store = wasmtime::Store::new(&self.engine, state);
                store.limiter(|s| &mut s.limiter);
                store.epoch_deadline_trap();
                (store, pipes, 0, None)
            }
        };
        let ticks = limits.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));

        let now_ms = self.config.clock.now_ms();
        let ctx = CallContext {
            community: inv.community.clone(),
            plugin: inv.plugin.clone(),
            operation: inv.operation.clone(),
            idempotency_key: inv.idempotency_key.clone(),
            now_ms,
            request_id: inv.request_id.clone(),
        };
        let input = inv.input.to_string();
        let instance = match instance {
            Some(i) => Ok(i),
            None => plugin.pre.instantiate(&mut store),
        };
        let (instance, result) = match instance {
            Ok(i) => {
                let r = i.courtyard_plugin_handler().call_invoke(
                    &mut store,
                    &ctx,
                    &inv.operation,
                    &input,
                );
                (Some(i), r)
            }
            Err(e) => (None, Err(e)),
        };
        // The guest returned (with `ok` or with its own error): its instance is sound.
        // After a trap or a limit hit it is not, and is dropped.
        let returned = result.is_ok();

        // This call's stdout and stderr become log records, whatever the outcome.
        let (stdout_text, stderr_text) = pipes.take_new();
        let call = &mut store.data_mut().call;
        for line in stdout_text.lines().filter(|l| !l.trim().is_empty()) {
            call.record(
                LogLevel::Info,
                line.to_owned(),
                vec![("stream".into(), "stdout".into())],
            );
        }
        for line in stderr_text.lines().filter(|l| !l.trim().is_empty()) {
            call.record(
                LogLevel::Warn,
                line.to_owned(),
                vec![("stream".into(), "stderr".into())],
            );
        }
        let memory_exceeded = store.data().limiter.memory_exceeded;
        let data = store.data_mut().take_call();
        let outcome = self.finish(
            plugin,
            &inv,
            now_ms,
            data,
            result,
            memory_exceeded,
            &stderr_text,
        );

        if returned
            && let (Some(reuse), Some(instance)) = (reuse, instance)
            && calls + 1 < reuse.max_calls
            && !pipes.nearly_full()
        {
            self.put_warm(
                namespace,
                WarmInstance {
                    plugin: plugin.clone(),
                    store,
                    instance,
                    pipes,
                    calls: calls + 1,
                    last_used: 0,
                },
            );
        }
        drop(serialised);
        let outcome = outcome?;
        // Durable before the caller hears "ok". Concurrent calls share the flush.
        if durable {
            self.store.sync()?;
        }
        Ok(outcome)
    }

    /// Turns what the guest returned into the call's outcome, and commits its writes
    /// and events if it succeeded.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        plugin: &LoadedPlugin,
        inv: &Invocation,
        now_ms: i64,
        data: CallState,
        result: wasmtime::Result<Result<String, WitPluginError>>,
        memory_exceeded: bool,
        stderr_text: &str,
    ) -> Result<Outcome, InvokeError> {
        let limits = &self.config.limits;
        let (plugin_name, operation) = (inv.plugin.clone(), inv.operation.clone());
        let output = match result {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => {
                let (kind, message) = match error {
                    WitPluginError::InvalidInput(m) => (PluginErrorKind::InvalidInput, m),
                    WitPluginError::NotFound(m) => (PluginErrorKind::NotFound, m),
                    WitPluginError::Conflict(m) => (PluginErrorKind::Conflict, m),
                    WitPluginError::Unavailable(m) => (PluginErrorKind::Unavailable, m),
                    WitPluginError::Internal(m) => (PluginErrorKind::Internal, m),
                };
                return Err(InvokeError::Plugin {
                    plugin: plugin_name,
                    operation,
                    kind,
                    message,
                });
            }
            Err(_) if data.denied.is_some() => {
                let err = InvokeError::CapabilityDenied {
                    community: inv.community.clone(),
                    plugin: plugin_name,
                    operation,
                    capability: data.denied.unwrap_or_default().to_owned(),
                };
                tracing::warn!(community = %inv.community, request_id = %inv.request_id, error = %err, "plugin call refused");
                return Err(err);
            }
            Err(error) => {
                let err = classify(
                    error,
                    memory_exceeded,
                    limits,
                    plugin_name,
                    operation,
                    stderr_text,
                );
                tracing::warn!(community = %inv.community, request_id = %inv.request_id, error = %err, "plugin call failed");
                return Err(err);
            }
        };
        let output: serde_json::Value =
            serde_json::from_str(&output).map_err(|e| InvokeError::BadOutput {
                plugin: plugin_name.clone(),
                operation: operation.clone(),
                message: e.to_string(),
            })?;
        // The output schema is part of the plugin's contract with its callers: an output
        // that breaks it is a plugin bug, and the call's writes are not committed.
        if let Some(Err(problems)) = plugin.manifest.check_output(&operation, &output) {
            let err = InvokeError::BadOutput {
                plugin: plugin_name,
                operation,
                message: format!("the output does not match the output schema: {problems}"),
            };
            tracing::warn!(community = %inv.community, request_id = %inv.request_id, error = %err, "plugin call failed");
            return Err(err);
        }

        let CallState {
            namespace,
            writes,
            events,
            logs,
            ..
        } = data;
        let events: Vec<EmittedEvent> = events
            .into_iter()
            .map(|e| EmittedEvent {
                kind: e.kind,
                payload: e.payload,
                source: inv.plugin.clone(),
                at_ms: now_ms,
                request_id: inv.request_id.clone(),
                depth: inv.depth.saturating_add(1),
                id: None,
                chain: inv.chain,
            })
            .collect();
        let mut batch = Batch::default();
        if !writes.is_empty() {
            batch.writes.insert(namespace, writes);
        }
        for event in &events {
            let bytes =
                serde_json::to_vec(event).map_err(|e| InvokeError::Internal(e.to_string()))?;
            batch
                .appends
                .push((QueueName::events(&inv.community), bytes));
        }
        if !batch.is_empty() {
            self.store.commit(batch)?;
        }
        Ok(Outcome {
            output,
            logs,
            events,
        })
    }

    /// The warm instance of `namespace`, if there is one of this very plugin (a
    /// reloaded plugin's old instances are dropped).
    fn take_warm(&self, namespace: &Namespace, plugin: &Arc<LoadedPlugin>) -> Option<WarmInstance> {
        let warm = self
            .warm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(namespace)?;
        Arc::ptr_eq(&warm.plugin, plugin).then_some(warm)
    }

    /// Keeps an instance for the next call of its namespace; the least recently used
    /// one goes when the pool is full.
    fn put_warm(&self, namespace: Namespace, mut instance: WarmInstance) {
        let max = self.config.limits.max_warm_instances as usize;
        if max == 0 {
            return;
        }
        instance.last_used = self.warm_clock.fetch_add(1, Ordering::Relaxed);
        let evicted = {
            let mut warm = self.warm.lock().unwrap_or_else(PoisonError::into_inner);
            let evicted = if warm.len() >= max && !warm.contains_key(&namespace) {
                let oldest = warm
                    .iter()
                    .min_by_key(|(_, w)| w.last_used)
                    .map(|(ns, _)| ns.clone());
                oldest.and_then(|ns| warm.remove(&ns))
            } else {
                None
            };
            warm.insert(namespace, instance);
            evicted
        };
        // Dropped outside the lock.
        drop(evicted);
    }
}

fn classify(
    error: wasmtime::Error,
    memory_exceeded: bool,
    limits: &Limits,
    plugin: String,
    operation: String,
    stderr: &str,
) -> InvokeError {
    if memory_exceeded
        || error
            .downcast_ref::<limits::MemoryLimitExceeded>()
            .is_some()
    {
        return InvokeError::MemoryLimit {
            plugin,
            operation,
            limit: limits.max_memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout {
            plugin,
            operation,
            limit: limits.timeout,
        },
        Some(Trap::StackOverflow) => InvokeError::StackOverflow { plugin, operation },
        Some(trap) => {
            let mut message = trap.to_string();
            // The end of stderr, where a Rust panic message is (without the note on
            // RUST_BACKTRACE, which means nothing inside a sandbox).
            let tail: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
                .collect();
            let tail = tail[tail.len().saturating_sub(2)..].join(" ");
            if !tail.is_empty() {
                message.push_str(&format!(" (stderr: {tail})"));
            }
            InvokeError::Trap {
                plugin,
                operation,
                message,
            }
        }
        None => InvokeError::Trap {
            plugin,
            operation,
            message: format!("{error:#}"),
        },
    }
}
