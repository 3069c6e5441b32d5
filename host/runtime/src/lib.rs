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
//! A call's way through the crate follows its modules: [`admission`](Admission) (does
//! the community run the plugin, with which config and grants), `slots` (its turn:
//! its namespace, its community's share of the slots, a slot, all waited for
//! asynchronously within a queue deadline), `invoke` (the instance, the guest's call,
//! the commit), `warm` (the pool of reusable instances), `error` (what can go wrong).
//!
//! Architecture invariant: no other crate names a wasmtime type; plugins see the
//! world only through `wit/` (and a locked-down WASI).

mod admission;
mod bindings;
mod cache;
mod call;
mod error;
mod host;
mod invoke;
mod limits;
mod metrics;
mod slots;
mod warm;

pub use admission::{Admission, Admitted, Grants, InvalidOrigin, Origin};
pub use cache::Compiled;
pub use call::{EmittedEvent, Invocation, LogLevel, LogRecord, Outcome};
pub use courtyard_registry::InputError;
pub use error::{InvokeError, PluginErrorKind};

use bindings::PluginPre;
use courtyard_registry::{Package, PluginName, PreparedManifest};
use courtyard_store::{Namespace, QueueName, Store};
use host::HostState;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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
    /// How many of those slots one community may hold at once; its further calls wait
    /// (so that one busy or hostile community cannot take every slot).
    pub max_concurrency_per_community: u32,
    /// How long a call may wait for its turn (its namespace, its community's share, a
    /// slot) before it gives up with [`InvokeError::Busy`], without having run. A call
    /// is answered within this wait, plus its CPU deadline, plus the commit.
    pub max_queue_wait: Duration,
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
            max_concurrency_per_community: 8,
            max_queue_wait: Duration::from_millis(1000),
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

pub use host::http::MAX_RESPONSE_BYTES;

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

struct LoadedPlugin {
    manifest: Arc<PreparedManifest>,
    pre: PluginPre<HostState>,
    /// The manifest's default config as JSON text, serialised once.
    default_config_json: Arc<str>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    store: Arc<dyn Store>,
    config: RuntimeConfig,
    plugins: RwLock<BTreeMap<String, Arc<LoadedPlugin>>>,
    /// The admission gate, once set.
    admission: std::sync::OnceLock<Arc<dyn Admission>>,
    /// Each call's turn: its namespace, its community's share, a slot.
    slots: slots::Slots,
    ticker_stop: Arc<AtomicBool>,
    /// Instances of plugins that allow reuse, one per namespace at most, bounded.
    warm: warm::WarmPool,
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
        let slots = slots::Slots::new(
            config.limits.max_concurrency,
            config.limits.max_concurrency_per_community,
        );
        let warm = warm::WarmPool::new(config.limits.max_warm_instances);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                store,
                config,
                plugins: RwLock::default(),
                admission: std::sync::OnceLock::new(),
                slots,
                ticker_stop,
                warm,
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

    /// The clock of call contexts (and of everything that must agree with them).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.config.clock.clone()
    }

    /// Whether the store serves (see [`Store::health`]).
    pub fn store_health(&self) -> Result<(), courtyard_store::StoreError> {
        self.inner.store.health()
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
        self.inner.warm.remove(&Namespace::new(community, plugin));
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
        let admitted = admission::admit(self.inner.admission.get(), &invocation, &plugin)?;
        // A failed store refuses everything: the call would only fail inside.
        self.inner.store.health()?;

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
        // The turn is waited for asynchronously: a queued call blocks no thread, gives
        // up at its deadline, and leaves the queue at once if its caller stops waiting.
        let namespace = Namespace::new(&invocation.community, &invocation.plugin);
        let turn = self
            .inner
            .slots
            .turn(&namespace, self.inner.config.limits.max_queue_wait)
            .await
            .map_err(|busy| InvokeError::Busy {
                community: invocation.community.clone(),
                plugin: invocation.plugin.clone(),
                waited: busy.waited,
            })?;
        // The call owns its turn until it ends. On a multi-threaded runtime it runs on
        // this thread, and tokio hands the worker's other tasks to another thread
        // meanwhile (`block_in_place`): the hop to the blocking pool (`spawn_blocking`)
        // cost 5x on a warm state read and 2.5x on a fresh call here
        // (docs/performance.md). The price: while the call runs (at most its CPU
        // deadline), its caller's own timeouts wait for it; every wait before it is
        // async. On a current-thread runtime the call goes to the blocking pool, and a
        // caller that stops waiting leaves the call running to its end with its turn.
        let inner = self.inner.clone();
        if tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        {
            let outcome = tokio::task::block_in_place(|| {
                inner.run_call(&plugin, namespace, invocation, admitted, durable)
            });
            drop(turn);
            return outcome;
        }
        tokio::task::spawn_blocking(move || {
            let outcome = inner.run_call(&plugin, namespace, invocation, admitted, durable);
            drop(turn);
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
