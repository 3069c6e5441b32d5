//! The engine: triggers, durable runs, waits and timers.
//!
//! Everything a run does is recorded in the store, in the community's `$workflows`
//! namespace, one atomic batch per state change:
//!
//! - `wf/<name>` the applied workflow (revision, on/off), `rev/<name>/<revision>` the
//!   document of each revision (a run follows the revision it started with);
//! - `run/<id>` a run and its steps, `open/<id>` an index of unfinished runs;
//! - `cursor` the last event of the community's stream that triggers and waits have
//!   seen; `cron/<name>` a schedule's last fire; `evid/<id>` device event ids.
//!
//! **Events.** An event is accepted once it is durably in the community's stream
//! (the store's queue). A dispatcher reads the stream after `cursor`, starts the runs
//! of matching event triggers, wakes matching waits, and moves `cursor` — all in one
//! batch, so after a crash every accepted event is dispatched exactly once.
//!
//! **Steps.** A run is driven step by step; each step's result and the run's next
//! position are committed together. A crash between a plugin call and that commit
//! repeats the call after the restart (at least once), with the same idempotency key
//! (`workflow:<run>:<step>`), so the plugin applies it once.
//!
//! **Time.** Delays and wait timeouts are deadlines in the run record; the engine
//! keeps them in memory as timers, rebuilt from the open runs at start. Cron triggers
//! keep their last fire in the store; fires missed while the host was down follow the
//! trigger's `missed` policy. Every "now" comes from the runtime's clock, so tests
//! inject time.

mod records;

pub use records::{
    RunRecord, RunStatus, RunTrigger, StepError, StepRecord, StepStatus, WaitState, WorkflowRecord,
};

use crate::compile::{
    self, Action, Catalog, CompiledStep, CompiledTrigger, CompiledWorkflow, Problem, Target,
};
use crate::document::{MissedFires, Workflow, WorkflowName};
use crate::expr::Vars;
use courtyard_runtime::{Clock, EmittedEvent, Invocation, InvokeError, PluginErrorKind, Runtime};
use courtyard_store::{Batch, Namespace, QueueName, Store, StoreError};
use courtyard_tenancy::{Actor, CommunityId, Tenancy};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// The prefix of the idempotency keys of workflow steps (`workflow:<run>:<step>`); the API
/// refuses it from callers.
pub const STEP_KEY_PREFIX: &str = "workflow:";

/// The namespace (plugin slot) of the engine's records in each community.
pub const NAMESPACE: &str = "$workflows";
/// The largest event payload accepted, in bytes of JSON.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Events read per dispatch batch.
const DISPATCH_BATCH: usize = 256;
/// Pages of events one dispatch handles before it lets timers and waits of the
/// community in (it comes back at once).
const DISPATCH_PAGES: usize = 4;
/// A schedule's fire is "late", and counts as missed, when it is handled more than this
/// after its instant.
const LATE_FIRE_MS: i64 = 60_000;
/// How often open runs are checked for one that no task is driving (after an error).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How many events may lead to one another: an event of a longer chain is
    /// recorded but starts no run and wakes no wait (no infinite event loops).
    pub max_event_depth: u32,
    /// How often the background loop looks at timers, schedules and every
    /// community's stream even when nothing woke it.
    pub poll_interval: Duration,
    /// How many runs one chain of events may start in all (a device's event, the
    /// runs it starts, the events they emit, the runs those start…): with the depth
    /// limit alone, a workflow that emits its own trigger twice would start 2⁸ runs.
    pub max_runs_per_chain: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_event_depth: 8,
            poll_interval: Duration::from_millis(500),
            max_runs_per_chain: 100,
        }
    }
}

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// No such community.
    #[error("no community {0:?}")]
    CommunityNotFound(String),
    /// No such workflow in the community.
    #[error("no workflow {workflow:?} in {community}")]
    WorkflowNotFound {
        /// The community.
        community: String,
        /// The workflow asked for.
        workflow: String,
    },
    /// No such run in the community.
    #[error("no run {run:?} in {community}")]
    RunNotFound {
        /// The community.
        community: String,
        /// The run asked for.
        run: String,
    },
    /// The document was refused; every problem has its path.
    #[error("the workflow document has {} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// The workflow is switched off, so it starts no run.
    #[error("workflow {0:?} is disabled")]
    Disabled(String),
    /// The event's kind is in a plugin's namespace; only the plugin emits those.
    #[error("event kinds beginning with {plugin:?}. belong to the plugin {plugin}")]
    ReservedKind {
        /// The kind.
        kind: String,
        /// The plugin.
        plugin: String,
    },
    /// The event is not acceptable (payload not an object, too large).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// An event id was used before for another event.
    #[error("event id {0:?} was already used for a different event")]
    EventIdConflict(String),
    /// The store failed.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// A bug in the host, or unreadable records.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What [`Engine::ingest`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The event's sequence number in the stream (absent for a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Whether the id was seen before with the same event (nothing new recorded).
    pub duplicate: bool,
}

/// A workflow as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowSummary {
    /// Its name.
    pub name: String,
    /// Its title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Whether it starts runs.
    pub enabled: bool,
    /// Its revision.
    pub revision: u64,
    /// Its trigger: `event`, `cron` or `manual`.
    pub trigger: &'static str,
    /// When it was last changed (Unix ms).
    pub updated_ms: i64,
    /// For a cron trigger: the next fire (Unix ms), if enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_fire_ms: Option<i64>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs older than this run id (the next page).
    pub before: Option<String>,
    /// At most this many (1 to 200; 50 when 0).
    pub limit: usize,
}

struct Installed {
    record: WorkflowRecord,
    compiled: Arc<CompiledWorkflow>,
}

#[derive(Default)]
struct Community {
    /// Serialises dispatching, wait registration and timer firing in the community.
    lock: tokio::sync::Mutex<()>,
    /// Serialises event ids (dedupe).
    ingest: tokio::sync::Mutex<()>,
    workflows: RwLock<BTreeMap<String, Arc<Installed>>>,
    /// Waiting runs, by run id: (event kind, step).
    waits: Mutex<HashMap<String, String>>,
    dirty: AtomicBool,
}

struct Inner {
    runtime: Runtime,
    store: Arc<dyn Store>,
    tenancy: Arc<Tenancy>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    communities: RwLock<HashMap<String, Arc<Community>>>,
    /// Deadlines: (due ms, community, run id).
    timers: Mutex<BTreeSet<(i64, String, String)>>,
    wake: tokio::sync::Notify,
    /// Runs being driven, with a flag "drive again" set by whoever found it busy.
    active: Mutex<HashMap<(String, String), bool>>,
    compiled: Mutex<HashMap<(String, String, u64), Arc<CompiledWorkflow>>>,
    /// Runs started per chain of events: (community, first event's seq) → runs.
    chains: Mutex<HashMap<(String, u64), u32>>,
    next_id: AtomicU64,
    /// Random per process, for run ids.
    id_salt: u32,
}

/// The workflow engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// The runtime's plugins, for the static checks.
struct RuntimeCatalog<'a>(&'a Runtime);

impl Catalog for RuntimeCatalog<'_> {
    fn has_plugin(&self, plugin: &str) -> bool {
        self.0.manifest(plugin).is_some()
    }
    fn has_operation(&self, plugin: &str, operation: &str) -> bool {
        self.0
            .manifest(plugin)
            .is_some_and(|m| m.has_operation(operation))
    }
    fn plugin_names(&self) -> Vec<String> {
        self.0.plugins()
    }
}

fn ns(community: &str) -> Namespace {
    Namespace::new(community, NAMESPACE)
}

fn internal(e: impl std::fmt::Display) -> WorkflowError {
    WorkflowError::Internal(e.to_string())
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, WorkflowError> {
    serde_json::to_vec(value).map_err(internal)
}

fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WorkflowError> {
    serde_json::from_slice(bytes).map_err(internal)
}

/// A batch of writes in one community's `$workflows` namespace (and its stream).
struct Writes {
    community: String,
    batch: Batch,
}

impl Writes {
    fn new(community: &str) -> Self {
        Self {
            community: community.to_owned(),
            batch: Batch::default(),
        }
    }

    fn put<T: Serialize>(&mut self, key: String, value: &T) -> Result<(), WorkflowError> {
        let bytes = to_bytes(value)?;
        self.batch
            .writes
            .entry(ns(&self.community))
            .or_default()
            .insert(key, Some(bytes));
        Ok(())
    }

    /// Adds the audit entry of a change of workflow `name`, done by `by`, to this batch.
    fn audit(
        &mut self,
        tenancy: &Tenancy,
        by: &Actor,
        action: &str,
        name: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) {
        let batch = tenancy.audit_batch(
            by,
            CommunityId::new(self.community.as_str()).ok().as_ref(),
            action,
            format!("{}/{name}", self.community),
            before,
            after,
        );
        for (ns, writes) in batch.writes {
            self.batch.writes.entry(ns).or_default().extend(writes);
        }
    }

    fn delete(&mut self, key: String) {
        self.batch
            .writes
            .entry(ns(&self.community))
            .or_default()
            .insert(key, None);
    }

    fn run(&mut self, run: &RunRecord) -> Result<(), WorkflowError> {
        self.put(format!("run/{}", run.id), run)?;
        if run.status.is_finished() {
            // A run is written finished once: this counts it.
            metrics::counter!(
                "courtyard_workflow_runs_finished_total",
                "community" => self.community.clone(),
                "workflow" => run.workflow.clone(),
                "status" => if run.status == RunStatus::Succeeded { "succeeded" } else { "failed" }
            )
            .increment(1);
            self.delete(format!("open/{}", run.id));
        } else {
            self.put(format!("open/{}", run.id), &())?;
        }
        Ok(())
    }

    fn emit(&mut self, event: &EmittedEvent) -> Result<(), WorkflowError> {
        self.batch
            .appends
            .push((QueueName::events(&self.community), to_bytes(event)?));
        Ok(())
    }
}

/// What driving one step led to.
enum Next {
    /// Drive the next step.
    Continue,
    /// The run waits or is over.
    Stop,
}

impl Engine {
    /// Opens the engine over the runtime's store: loads every community's workflows
    /// and rebuilds waits and timers from the open runs. Call [`Engine::start`] (in a
    /// tokio runtime) to run the background loop and resume the open runs.
    pub fn open(
        runtime: Runtime,
        store: Arc<dyn Store>,
        tenancy: Arc<Tenancy>,
        config: EngineConfig,
    ) -> Result<Self, WorkflowError> {
        let communities = RwLock::new(
            tenancy
                .community_ids()
                .into_iter()
                .map(|id| (id, Arc::new(Community::default())))
                .collect(),
        );
        let clock = runtime.clock();
        let engine = Self {
            inner: Arc::new(Inner {
                runtime,
                store,
                tenancy,
                clock,
                config,
                communities,
                timers: Mutex::default(),
                wake: tokio::sync::Notify::new(),
                active: Mutex::default(),
                compiled: Mutex::default(),
                chains: Mutex::default(),
                next_id: AtomicU64::new(0),
                id_salt: random_u32(),
            }),
        };
        for (id, community) in &engine.inner.community_list() {
            engine.inner.load_workflows(id, community)?;
        }
        Ok(engine)
    }

    /// Starts the background loop (timers, schedules, dispatching) and resumes every
    /// unfinished run. Returns at once.
    pub fn start(&self) -> Result<tokio::task::JoinHandle<()>, WorkflowError> {
        self.resume()?;
        let inner = self.inner.clone();
        Ok(tokio::spawn(async move { inner.background().await }))
    }

    /// Resumes the unfinished runs: running ones are driven, waiting ones get their
    /// timers and waits back. [`Engine::start`] does this; tests that drive time by
    /// hand call it instead.
    pub fn resume(&self) -> Result<usize, WorkflowError> {
        let mut resumed = 0;
        for (id, community) in &self.inner.community_list() {
            let open = self.inner.store.scan(&ns(id), "open/", None, usize::MAX)?;
            for (key, _) in open {
                let run_id = &key["open/".len()..];
                let Some(run) = self.inner.load_run(id, run_id)? else {
                    continue;
                };
                resumed += 1;
                match run.status {
                    RunStatus::Running => self.inner.clone().spawn_drive(id, &run.id),
                    RunStatus::Waiting => self.inner.register_wait(id, community, &run),
                    RunStatus::Succeeded | RunStatus::Failed => {}
                }
            }
            community.dirty.store(true, Ordering::Relaxed);
        }
        self.inner.wake.notify_one();
        Ok(resumed)
    }

    fn community(&self, community: &str) -> Result<Arc<Community>, WorkflowError> {
        self.inner
            .community_of(community)
            .ok_or_else(|| WorkflowError::CommunityNotFound(community.to_owned()))
    }

    /// Checks a document against the host without applying it.
    pub fn check(&self, name: &WorkflowName, document: Workflow) -> Result<(), WorkflowError> {
        compile::compile(
            name.clone(),
            document,
            &RuntimeCatalog(&self.inner.runtime),
            self.inner.tenancy.time_zone(),
        )
        .map(drop)
        .map_err(WorkflowError::Invalid)
    }

    /// Applies (creates or replaces) a workflow. A new workflow is enabled; a
    /// replaced one keeps its on/off state. Runs already started keep following the
    /// revision they started with.
    pub async fn apply(
        &self,
        community: &str,
        name: &WorkflowName,
        document: Workflow,
    ) -> Result<WorkflowRecord, WorkflowError> {
        self.apply_as(None, community, name, document).await
    }

    /// [`Engine::apply`], recorded in the audit log as done by `by`, in the same batch
    /// as the change.
    pub async fn apply_as(
        &self,
        by: Option<&Actor>,
        community: &str,
        name: &WorkflowName,
        document: Workflow,
    ) -> Result<WorkflowRecord, WorkflowError> {
        let c = self.community(community)?;
        let compiled = compile::compile(
            name.clone(),
            document.clone(),
            &RuntimeCatalog(&self.inner.runtime),
            self.inner.tenancy.time_zone(),
        )
        .map_err(WorkflowError::Invalid)?;
        let _guard = c.lock.lock().await;
        let now = self.inner.clock.now_ms();
        let previous = c
            .workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name.as_str())
            .map(|i| i.record.clone());
        let record = WorkflowRecord {
            name: name.to_string(),
            // Revisions only grow, even across a removal: runs of an old revision keep
            // following its document.
            revision: previous
                .as_ref()
                .map_or(0, |p| p.revision)
                .max(self.inner.last_revision(community, name.as_str())?)
                + 1,
            enabled: previous.as_ref().is_none_or(|p| p.enabled),
            document,
            created_ms: previous.as_ref().map_or(now, |p| p.created_ms),
            updated_ms: now,
        };
        let mut w = Writes::new(community);
        w.put(format!("wf/{name}"), &record)?;
        w.put(
            format!("rev/{name}/{:010}", record.revision),
            &record.document,
        )?;
        let schedule_changed = match (&previous, &compiled.trigger) {
            (Some(p), CompiledTrigger::Cron(_)) => p.document.trigger != record.document.trigger,
            (None, CompiledTrigger::Cron(_)) => true,
            _ => false,
        };
        if schedule_changed {
            // A new schedule counts from now: no fires before it was applied.
            w.put(format!("cron/{name}"), &now)?;
        }
        if let Some(by) = by {
            w.audit(
                &self.inner.tenancy,
                by,
                "workflow.apply",
                name.as_str(),
                previous.as_ref().map(to_value),
                Some(to_value(&record)),
            );
        }
        self.inner.commit_durably(w).await?;
        let compiled = Arc::new(compiled);
        self.inner
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (community.to_owned(), name.to_string(), record.revision),
                compiled.clone(),
            );
        c.workflows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name.to_string(),
                Arc::new(Installed {
                    record: record.clone(),
                    compiled,
                }),
            );
        self.inner.wake.notify_one();
        Ok(record)
    }

    /// Switches a workflow on or off. Switching on does not start runs for events or
    /// fires of the time it was off; switching off lets started runs finish.
    pub async fn set_enabled(
        &self,
        community: &str,
        name: &str,
        enabled: bool,
    ) -> Result<WorkflowRecord, WorkflowError> {
        self.set_enabled_as(None, community, name, enabled).await
    }

    /// [`Engine::set_enabled`], recorded in the audit log as done by `by` (when it
    /// changes anything), in the same batch as the change.
    pub async fn set_enabled_as(
        &self,
        by: Option<&Actor>,
        community: &str,
        name: &str,
        enabled: bool,
    ) -> Result<WorkflowRecord, WorkflowError> {
        let c = self.community(community)?;
        let _guard = c.lock.lock().await;
        let installed = self.installed(community, name)?;
        let now = self.inner.clock.now_ms();
        let mut record = installed.record.clone();
        if record.enabled == enabled {
            return Ok(record);
        }
        record.enabled = enabled;
        record.updated_ms = now;
        let mut w = Writes::new(community);
        w.put(format!("wf/{name}"), &record)?;
        if enabled && matches!(installed.compiled.trigger, CompiledTrigger::Cron(_)) {
            w.put(format!("cron/{name}"), &now)?;
        }
        if let Some(by) = by {
            let action = if enabled {
                "workflow.enable"
            } else {
                "workflow.disable"
            };
            w.audit(
                &self.inner.tenancy,
                by,
                action,
                name,
                Some(json!({ "enabled": !enabled })),
                Some(json!({ "enabled": enabled })),
            );
        }
        self.inner.commit_durably(w).await?;
        c.workflows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name.to_owned(),
                Arc::new(Installed {
                    record: record.clone(),
                    compiled: installed.compiled.clone(),
                }),
            );
        Ok(record)
    }

    /// Removes a workflow. Its started runs finish; its run history stays.
    pub async fn remove(&self, community: &str, name: &str) -> Result<(), WorkflowError> {
        self.remove_as(None, community, name).await
    }

    /// [`Engine::remove`], recorded in the audit log as done by `by`, in the same batch
    /// as the change.
    pub async fn remove_as(
        &self,
        by: Option<&Actor>,
        community: &str,
        name: &str,
    ) -> Result<(), WorkflowError> {
        let c = self.community(community)?;
        let _guard = c.lock.lock().await;
        let installed = self.installed(community, name)?;
        let mut w = Writes::new(community);
        w.delete(format!("wf/{name}"));
        w.delete(format!("cron/{name}"));
        if let Some(by) = by {
            w.audit(
                &self.inner.tenancy,
                by,
                "workflow.remove",
                name,
                Some(to_value(&installed.record)),
                None,
            );
        }
        self.inner.commit_durably(w).await?;
        c.workflows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        Ok(())
    }

    fn installed(&self, community: &str, name: &str) -> Result<Arc<Installed>, WorkflowError> {
        self.community(community)?
            .workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| WorkflowError::WorkflowNotFound {
                community: community.to_owned(),
                workflow: name.to_owned(),
            })
    }

    /// A workflow's record.
    pub fn workflow(&self, community: &str, name: &str) -> Result<WorkflowRecord, WorkflowError> {
        Ok(self.installed(community, name)?.record.clone())
    }

    /// The community's workflows.
    pub fn workflows(&self, community: &str) -> Result<Vec<WorkflowSummary>, WorkflowError> {
        let c = self.community(community)?;
        let list: Vec<Arc<Installed>> = c
            .workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        list.iter()
            .map(|i| {
                let (trigger, next_fire_ms) = match &i.compiled.trigger {
                    CompiledTrigger::Event { .. } => ("event", None),
                    CompiledTrigger::Manual => ("manual", None),
                    CompiledTrigger::Cron(s) => {
                        let next = if i.record.enabled {
                            let last = self.inner.last_fire(community, &i.record.name)?;
                            last.and_then(|l| s.next_after(l))
                        } else {
                            None
                        };
                        ("cron", next)
                    }
                };
                Ok(WorkflowSummary {
                    name: i.record.name.clone(),
                    title: i.record.document.title.clone(),
                    enabled: i.record.enabled,
                    revision: i.record.revision,
                    trigger,
                    updated_ms: i.record.updated_ms,
                    next_fire_ms,
                })
            })
            .collect()
    }

    /// Starts a run by hand with `input` (readable as `trigger.input`). Refused when
    /// the workflow is disabled.
    pub async fn start_run(
        &self,
        community: &str,
        name: &str,
        input: Value,
    ) -> Result<RunRecord, WorkflowError> {
        let installed = self.installed(community, name)?;
        if !installed.record.enabled {
            return Err(WorkflowError::Disabled(name.to_owned()));
        }
        let since = self.inner.stream_tail(community)?;
        let run = self.inner.new_run(
            community,
            &installed,
            RunTrigger::Manual { input },
            0,
            since,
            None,
        );
        let mut w = Writes::new(community);
        w.run(&run)?;
        self.inner.commit_durably(w).await?;
        self.inner.clone().spawn_drive(community, &run.id);
        Ok(run)
    }

    /// Records an event in the community's stream: from a device or an admin over
    /// HTTP. Returns once it is durable. With an `id`, a repeat of the same event is
    /// accepted once; the same id with another event is a conflict.
    pub async fn ingest(
        &self,
        community: &str,
        kind: &courtyard_registry::EventKind,
        payload: Value,
        id: Option<String>,
    ) -> Result<Accepted, WorkflowError> {
        let c = self.community(community)?;
        if let Some(plugin) =
            compile::reserved_by(kind.as_str(), &RuntimeCatalog(&self.inner.runtime))
        {
            return Err(WorkflowError::ReservedKind {
                kind: kind.to_string(),
                plugin,
            });
        }
        if !payload.is_object() {
            return Err(WorkflowError::InvalidEvent(
                "the payload must be a JSON object".into(),
            ));
        }
        let size = serde_json::to_vec(&payload).map_err(internal)?.len();
        if size > MAX_EVENT_BYTES {
            return Err(WorkflowError::InvalidEvent(format!(
                "the payload has {size} bytes; the limit is {MAX_EVENT_BYTES}"
            )));
        }
        let event = EmittedEvent {
            kind: kind.to_string(),
            payload,
            source: "http".into(),
            at_ms: self.inner.clock.now_ms(),
            request_id: String::new(),
            depth: 0,
            id: id.clone(),
            chain: None,
        };
        let mut w = Writes::new(community);
        w.emit(&event)?;
        let seqs = match &id {
            None => self.inner.commit(w)?,
            Some(id) => {
                // The id check and the append are one step per community; the flush
                // below is shared with concurrent callers, outside the lock.
                let guard = c.ingest.lock().await;
                let fingerprint = {
                    use sha2::Digest as _;
                    let text = json!({"kind": event.kind, "payload": event.payload}).to_string();
                    hex::encode(sha2::Sha256::digest(text.as_bytes()))
                };
                let key = format!("evid/{id}");
                if let Some(seen) = self.inner.store.get(&ns(community), &key)? {
                    let seen: String = from_bytes(&seen)?;
                    if seen != fingerprint {
                        return Err(WorkflowError::EventIdConflict(id.clone()));
                    }
                    drop(guard);
                    // The first copy may not be on disk yet: answer once it is.
                    self.inner.sync().await?;
                    return Ok(Accepted {
                        seq: None,
                        duplicate: true,
                    });
                }
                w.put(key, &fingerprint)?;
                let seqs = self.inner.commit(w)?;
                drop(guard);
                seqs
            }
        };
        self.inner.sync().await?;
        metrics::counter!("courtyard_events_accepted_total", "community" => community.to_owned())
            .increment(1);
        self.notify_events(community);
        Ok(Accepted {
            seq: seqs.first().copied(),
            duplicate: false,
        })
    }

    /// Tells the engine that `community`'s stream has new events (a plugin call over
    /// the API emitted some), so that they are dispatched now rather than at the next
    /// poll.
    pub fn notify_events(&self, community: &str) {
        if let Some(c) = self.inner.community_of(community) {
            c.dirty.store(true, Ordering::Relaxed);
            self.inner.wake.notify_one();
        }
    }

    /// One run.
    pub fn run(&self, community: &str, run: &str) -> Result<RunRecord, WorkflowError> {
        self.community(community)?;
        self.inner
            .load_run(community, run)?
            .ok_or_else(|| WorkflowError::RunNotFound {
                community: community.to_owned(),
                run: run.to_owned(),
            })
    }

    /// Runs, newest first.
    pub fn runs(&self, community: &str, query: &RunQuery) -> Result<Vec<RunRecord>, WorkflowError> {
        self.community(community)?;
        let limit = match query.limit {
            0 => 50,
            n => n.min(200),
        };
        let mut out = Vec::new();
        let mut before = query.before.as_ref().map(|b| format!("run/{b}"));
        loop {
            let page =
                self.inner
                    .store
                    .scan_back(&ns(community), "run/", before.as_deref(), 256)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            before = Some(last.clone());
            for (_, bytes) in &page {
                let run: RunRecord = from_bytes(bytes)?;
                if query.workflow.as_ref().is_some_and(|w| *w != run.workflow)
                    || query.status.is_some_and(|s| s != run.status)
                {
                    continue;
                }
                out.push(run);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Fires every timer and schedule due at the clock's "now". The background loop
    /// calls it; tests with an injected clock call it after moving the clock.
    pub async fn tick(&self) -> Result<(), WorkflowError> {
        self.inner.clone().tick().await
    }

    /// Dispatches every community's new events now.
    pub async fn dispatch_all(&self) -> Result<(), WorkflowError> {
        for (id, _) in self.inner.community_list() {
            self.inner.clone().dispatch(&id).await?;
        }
        Ok(())
    }

    /// Waits until no run is being driven and no event awaits dispatch (tests).
    pub async fn settle(&self) {
        loop {
            self.dispatch_all().await.ok();
            let busy = !self
                .inner
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty();
            if !busy {
                // One more dispatch round: a run that just finished may have emitted.
                let pending = self
                    .inner
                    .community_list()
                    .iter()
                    .any(|(id, _)| self.inner.undispatched(id).unwrap_or(false));
                if !pending {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Inner {
    /// The engine's part of a community, made when the tenancy has a community the
    /// engine has not seen yet (one created over the API).
    fn community_of(&self, id: &str) -> Option<Arc<Community>> {
        if let Some(c) = self
            .communities
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Some(c.clone());
        }
        if !self.tenancy.has_community(id) {
            return None;
        }
        Some(
            self.communities
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id.to_owned())
                .or_default()
                .clone(),
        )
    }

    /// Every community, the ones created since the last look included.
    fn community_list(&self) -> Vec<(String, Arc<Community>)> {
        let known = self
            .communities
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if known != self.tenancy.community_count() {
            for id in self.tenancy.community_ids() {
                self.community_of(&id);
            }
        }
        let mut list: Vec<_> = self
            .communities
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    fn load_workflows(&self, community: &str, c: &Community) -> Result<(), WorkflowError> {
        let records = self.store.scan(&ns(community), "wf/", None, usize::MAX)?;
        let mut map = BTreeMap::new();
        for (_, bytes) in records {
            let record: WorkflowRecord = from_bytes(&bytes)?;
            let name = WorkflowName::new(record.name.clone()).map_err(internal)?;
            match compile::compile(
                name,
                record.document.clone(),
                &RuntimeCatalog(&self.runtime),
                self.tenancy.time_zone(),
            ) {
                Ok(compiled) => {
                    map.insert(
                        record.name.clone(),
                        Arc::new(Installed {
                            record,
                            compiled: Arc::new(compiled),
                        }),
                    );
                }
                Err(problems) => {
                    // A plugin it calls is gone: the workflow stays stored but inactive
                    // until it is applied again.
                    tracing::error!(community, workflow = %record.name, problems = ?problems.iter().map(ToString::to_string).collect::<Vec<_>>(), "stored workflow no longer passes its checks; it is inactive");
                }
            }
        }
        *c.workflows.write().unwrap_or_else(PoisonError::into_inner) = map;
        Ok(())
    }

    async fn commit_durably(&self, w: Writes) -> Result<Vec<u64>, WorkflowError> {
        let seqs = self.store.commit(w.batch)?;
        self.sync().await?;
        Ok(seqs)
    }

    /// Returns once everything committed so far is durable (a shared flush).
    async fn sync(&self) -> Result<(), WorkflowError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.sync())
            .await
            .map_err(internal)??;
        Ok(())
    }

    fn commit(&self, w: Writes) -> Result<Vec<u64>, WorkflowError> {
        Ok(self.store.commit(w.batch)?)
    }

    /// The last event dispatched; none before the first.
    fn cursor(&self, community: &str) -> Result<Option<u64>, WorkflowError> {
        self.store
            .get(&ns(community), "cursor")?
            .map(|bytes| from_bytes(&bytes))
            .transpose()
    }

    /// Counts a run against its chain's budget; false when the budget is spent.
    fn chain_allows(&self, community: &str, chain: u64) -> bool {
        let mut chains = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
        if chains.len() > 100_000 {
            // Old chains are long over; forget them all rather than grow.
            chains.clear();
        }
        let started = chains.entry((community.to_owned(), chain)).or_default();
        if *started >= self.config.max_runs_per_chain {
            return false;
        }
        *started += 1;
        true
    }

    /// The highest revision of `name` ever stored in the community.
    fn last_revision(&self, community: &str, name: &str) -> Result<u64, WorkflowError> {
        let prefix = format!("rev/{name}/");
        Ok(self
            .store
            .scan_back(&ns(community), &prefix, None, 1)?
            .first()
            .and_then(|(key, _)| key[prefix.len()..].parse().ok())
            .unwrap_or(0))
    }

    /// The last event in the community's stream: a run started now waits only for
    /// events after it.
    fn stream_tail(&self, community: &str) -> Result<Option<u64>, WorkflowError> {
        Ok(self.store.queue_last(&QueueName::events(community))?)
    }

    /// Whether the stream has events not dispatched yet.
    fn undispatched(&self, community: &str) -> Result<bool, WorkflowError> {
        let cursor = self.cursor(community)?;
        Ok(!self
            .store
            .read_queue(&QueueName::events(community), cursor, 1)?
            .is_empty())
    }

    fn last_fire(&self, community: &str, name: &str) -> Result<Option<i64>, WorkflowError> {
        self.store
            .get(&ns(community), &format!("cron/{name}"))?
            .map(|b| from_bytes(&b))
            .transpose()
    }

    fn load_run(&self, community: &str, id: &str) -> Result<Option<RunRecord>, WorkflowError> {
        if id.is_empty() || id.contains('/') {
            return Ok(None);
        }
        self.store
            .get(&ns(community), &format!("run/{id}"))?
            .map(|b| from_bytes(&b))
            .transpose()
    }

    fn compiled(
        &self,
        community: &str,
        name: &str,
        revision: u64,
    ) -> Result<Arc<CompiledWorkflow>, WorkflowError> {
        let key = (community.to_owned(), name.to_owned(), revision);
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(c.clone());
        }
        let bytes = self
            .store
            .get(&ns(community), &format!("rev/{name}/{revision:010}"))?
            .ok_or_else(|| internal(format!("revision {revision} of {name} is missing")))?;
        let document: Workflow = from_bytes(&bytes)?;
        let compiled = compile::compile(
            WorkflowName::new(name).map_err(internal)?,
            document,
            &RuntimeCatalog(&self.runtime),
            self.tenancy.time_zone(),
        )
        .map_err(|p| {
            internal(format!(
                "revision {revision} of {name} no longer passes its checks: {}",
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let compiled = Arc::new(compiled);
        self.compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, compiled.clone());
        Ok(compiled)
    }

    fn new_run(
        &self,
        community: &str,
        installed: &Installed,
        trigger: RunTrigger,
        depth: u32,
        since_seq: Option<u64>,
        chain: Option<u64>,
    ) -> RunRecord {
        let now = self.clock.now_ms();
        metrics::counter!(
            "courtyard_workflow_runs_started_total",
            "community" => community.to_owned(),
            "workflow" => installed.record.name.clone(),
            "trigger" => match &trigger {
                RunTrigger::Event { .. } => "event",
                RunTrigger::Cron { .. } => "cron",
                RunTrigger::Manual { .. } => "manual",
            }
        )
        .increment(1);
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) & 0xffff;
        RunRecord {
            // Time first (ids sort by creation), then a per-process random part and a
            // counter: unique even if the clock steps back across a restart.
            id: format!("{:011x}{:08x}{n:04x}", now.max(0), self.id_salt),
            workflow: installed.record.name.clone(),
            revision: installed.record.revision,
            status: RunStatus::Running,
            trigger,
            depth,
            chain,
            since_seq,
            current: Some(0),
            steps: Vec::new(),
            wait: None,
            error: None,
            created_ms: now,
            updated_ms: now,
            finished_ms: None,
        }
    }

    fn community_json(&self, community: &str) -> Value {
        let name = self
            .tenancy
            .community(community)
            .map(|c| c.name)
            .unwrap_or_default();
        json!({"id": community, "name": name, "time_zone": self.tenancy.time_zone()})
    }

    fn base_vars(&self, community: &str, wf: &CompiledWorkflow) -> Vars {
        let mut vars = Vars::new();
        vars.set(
            "vars",
            serde_json::to_value(&wf.document.vars).unwrap_or(Value::Null),
        );
        vars.set("community", self.community_json(community));
        let config: serde_json::Map<String, Value> = wf
            .plugins()
            .into_iter()
            .filter_map(|p| {
                let config = self.runtime.manifest(&p)?.default_config().clone();
                Some((p, config))
            })
            .collect();
        vars.set("config", Value::Object(config));
        vars
    }

    fn run_vars(&self, community: &str, wf: &CompiledWorkflow, run: &RunRecord) -> Vars {
        let mut vars = self.base_vars(community, wf);
        vars.set(
            "trigger",
            serde_json::to_value(&run.trigger).unwrap_or(Value::Null),
        );
        let mut steps = serde_json::Map::new();
        for s in &run.steps {
            steps.insert(
                s.id.clone(),
                json!({
                    "status": s.status,
                    "input": s.input,
                    "output": s.output,
                    "error": s.error,
                    "attempts": s.attempts,
                }),
            );
        }
        vars.set("steps", Value::Object(steps));
        vars.set(
            "run",
            json!({"id": run.id, "workflow": run.workflow, "created_ms": run.created_ms, "now_ms": self.clock.now_ms()}),
        );
        vars
    }

    fn spawn_drive(self: Arc<Self>, community: &str, run: &str) {
        let key = (community.to_owned(), run.to_owned());
        {
            let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(again) = active.get_mut(&key) {
                *again = true;
                return;
            }
            active.insert(key.clone(), false);
        }
        tokio::spawn(async move {
            loop {
                loop {
                    match self.clone().step(&key.0, &key.1).await {
                        Ok(Next::Continue) => {}
                        Ok(Next::Stop) => break,
                        Err(e) => {
                            tracing::error!(community = %key.0, run = %key.1, error = %e, "cannot drive the run; it resumes at the next start");
                            break;
                        }
                    }
                }
                let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
                match active.get_mut(&key) {
                    Some(again) if *again => *again = false,
                    _ => {
                        active.remove(&key);
                        break;
                    }
                }
            }
        });
    }

    /// Runs the run's current step.
    async fn step(self: Arc<Self>, community: &str, run_id: &str) -> Result<Next, WorkflowError> {
        let Some(mut run) = self.load_run(community, run_id)? else {
            return Ok(Next::Stop);
        };
        if run.status != RunStatus::Running {
            return Ok(Next::Stop);
        }
        let wf = match self.compiled(community, &run.workflow, run.revision) {
            Ok(wf) => wf,
            Err(e) => {
                self.fail_run(community, &mut run, e.to_string())?;
                return Ok(Next::Stop);
            }
        };
        let Some(index) = run.current.filter(|i| *i < wf.steps.len()) else {
            self.finish(&mut run, RunStatus::Succeeded, None);
            let mut w = Writes::new(community);
            w.run(&run)?;
            self.commit(w)?;
            return Ok(Next::Stop);
        };
        let step = &wf.steps[index];
        let now = self.clock.now_ms();
        let vars = self.run_vars(community, &wf, &run);
        // A call step that had started before a crash (or is between retries) goes on
        // with the input it was given; its condition is not asked again.
        let resumed = run
            .steps
            .last()
            .filter(|s| s.id == step.id.as_str() && s.status == StepStatus::Running)
            .cloned();
        if let Some(when) = step.when.as_ref().filter(|_| resumed.is_none()) {
            match when.test(&vars) {
                Ok(true) => {}
                Ok(false) => {
                    run.steps.push(StepRecord {
                        finished_ms: Some(now),
                        ..StepRecord::begun(step.id.as_str(), StepStatus::Skipped, now)
                    });
                    // A skipped step goes on to the next one in order.
                    let next = if index + 1 < wf.steps.len() {
                        Target::Step(index + 1)
                    } else {
                        Target::End
                    };
                    self.advance(&mut run, next);
                    let mut w = Writes::new(community);
                    w.run(&run)?;
                    self.commit(w)?;
                    return Ok(Next::Continue);
                }
                Err(e) => {
                    self.step_failed(
                        community,
                        &mut run,
                        step,
                        now,
                        "expression",
                        format!("when: {e}"),
                        0,
                        None,
                    )?;
                    return Ok(Next::Stop);
                }
            }
        }
        match &step.action {
            Action::Call {
                plugin,
                operation,
                input,
                retry,
                timeout,
            } => {
                let (input, mut attempts, now) = match &resumed {
                    Some(r) => (
                        r.input.clone().unwrap_or(Value::Null),
                        r.attempts,
                        r.started_ms,
                    ),
                    None => {
                        let input = match input.render(&vars) {
                            Ok(v) => v,
                            Err(e) => {
                                self.step_failed(
                                    community,
                                    &mut run,
                                    step,
                                    now,
                                    "expression",
                                    format!("input: {e}"),
                                    0,
                                    None,
                                )?;
                                return Ok(Next::Continue);
                            }
                        };
                        // The input is recorded before the first attempt, so that a call
                        // repeated after a crash sends exactly the same input with the
                        // same idempotency key (batches are durable in order: if the
                        // call's effect survived, so did this record).
                        run.steps.push(StepRecord {
                            input: Some(input.clone()),
                            ..StepRecord::begun(step.id.as_str(), StepStatus::Running, now)
                        });
                        run.updated_ms = now;
                        let mut w = Writes::new(community);
                        w.run(&run)?;
                        self.commit(w)?;
                        (input, 0, now)
                    }
                };
                loop {
                    attempts += 1;
                    let invocation = Invocation {
                        community: community.to_owned(),
                        plugin: plugin.clone(),
                        operation: operation.clone(),
                        input: input.clone(),
                        idempotency_key: Some(format!("{STEP_KEY_PREFIX}{}:{}", run.id, step.id)),
                        request_id: format!("{}/{}/{attempts}", run.id, step.id),
                        config: None,
                        depth: run.depth,
                        chain: run.chain,
                    };
                    // Not waiting for the plugin's batch to be durable: the step's
                    // record is committed after it, and batches become durable in
                    // order; if the record is lost in a crash, the call is repeated
                    // with the same idempotency key.
                    let call = self.runtime.invoke_deferred(invocation);
                    let result = match timeout {
                        Some(limit) => match tokio::time::timeout(*limit, call).await {
                            Ok(r) => r.map_err(|e| classify(&e)),
                            Err(_) => Err(Failure {
                                kind: "timeout".into(),
                                message: format!(
                                    "the call took longer than the step's timeout of {} ms",
                                    limit.as_millis()
                                ),
                                transient: true,
                            }),
                        },
                        None => call.await.map_err(|e| classify(&e)),
                    };
                    let finished = self.clock.now_ms();
                    match result {
                        Ok(outcome) => {
                            if !outcome.events.is_empty() {
                                if let Some(c) = self.community_of(community) {
                                    c.dirty.store(true, Ordering::Relaxed);
                                }
                                self.wake.notify_one();
                            }
                            pop_running(&mut run, step);
                            run.steps.push(StepRecord {
                                id: step.id.to_string(),
                                status: StepStatus::Succeeded,
                                attempts,
                                input: Some(input),
                                output: Some(outcome.output),
                                error: None,
                                started_ms: now,
                                finished_ms: Some(finished),
                            });
                            self.advance(&mut run, step.next);
                            self.prepare_call(community, &wf, &mut run);
                            let mut w = Writes::new(community);
                            w.run(&run)?;
                            self.commit(w)?;
                            return Ok(Next::Continue);
                        }
                        Err(failure) if failure.transient && attempts < retry.max_attempts => {
                            pop_running(&mut run, step);
                            run.steps.push(StepRecord {
                                id: step.id.to_string(),
                                status: StepStatus::Running,
                                attempts,
                                input: Some(input.clone()),
                                output: None,
                                error: Some(StepError {
                                    kind: failure.kind.clone(),
                                    message: failure.message.clone(),
                                }),
                                started_ms: now,
                                finished_ms: None,
                            });
                            run.updated_ms = finished;
                            let mut w = Writes::new(community);
                            w.run(&run)?;
                            self.commit(w)?;
                            let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
                            let wait = retry
                                .backoff
                                .duration()
                                .saturating_mul(factor)
                                .min(retry.max_backoff.duration());
                            tracing::info!(community, run = %run.id, step = %step.id, attempts, error = %failure.message, "transient step failure; retrying");
                            tokio::time::sleep(wait).await;
                        }
                        Err(failure) => {
                            pop_running(&mut run, step);
                            self.step_failed(
                                community,
                                &mut run,
                                step,
                                now,
                                &failure.kind,
                                failure.message,
                                attempts,
                                Some(input),
                            )?;
                            return Ok(Next::Continue);
                        }
                    }
                }
            }
            Action::Emit { kind, payload } => {
                let payload = match payload.render(&vars) {
                    Ok(v) if v.is_object() && v.to_string().len() > MAX_EVENT_BYTES => {
                        self.step_failed(
                            community,
                            &mut run,
                            step,
                            now,
                            "expression",
                            format!("payload: larger than {MAX_EVENT_BYTES} bytes"),
                            0,
                            None,
                        )?;
                        return Ok(Next::Continue);
                    }
                    Ok(v) if v.is_object() => v,
                    Ok(_) => {
                        self.step_failed(
                            community,
                            &mut run,
                            step,
                            now,
                            "expression",
                            "payload: an event payload must be a map".into(),
                            0,
                            None,
                        )?;
                        return Ok(Next::Continue);
                    }
                    Err(e) => {
                        self.step_failed(
                            community,
                            &mut run,
                            step,
                            now,
                            "expression",
                            format!("payload: {e}"),
                            0,
                            None,
                        )?;
                        return Ok(Next::Continue);
                    }
                };
                let event = EmittedEvent {
                    kind: kind.to_string(),
                    payload: payload.clone(),
                    source: format!("workflow:{}", run.workflow),
                    at_ms: now,
                    request_id: format!("{}/{}", run.id, step.id),
                    depth: run.depth.saturating_add(1),
                    id: None,
                    chain: run.chain,
                };
                run.steps.push(StepRecord {
                    id: step.id.to_string(),
                    status: StepStatus::Succeeded,
                    attempts: 1,
                    input: Some(payload),
                    output: None,
                    error: None,
                    started_ms: now,
                    finished_ms: Some(now),
                });
                self.advance(&mut run, step.next);
                let mut w = Writes::new(community);
                w.emit(&event)?;
                w.run(&run)?;
                self.commit(w)?;
                if let Some(c) = self.community_of(community) {
                    c.dirty.store(true, Ordering::Relaxed);
                }
                self.wake.notify_one();
                Ok(Next::Continue)
            }
            Action::Delay(span) => {
                let until = now.saturating_add(span.as_millis());
                run.status = RunStatus::Waiting;
                run.wait = Some(WaitState {
                    step: index,
                    event: None,
                    until_ms: until,
                });
                run.steps.push(StepRecord::begun(
                    step.id.as_str(),
                    StepStatus::Waiting,
                    now,
                ));
                run.updated_ms = now;
                let mut w = Writes::new(community);
                w.run(&run)?;
                self.commit(w)?;
                self.add_timer(until, community, &run.id);
                Ok(Next::Stop)
            }
            Action::Wait {
                kind,
                matches,
                timeout,
            } => {
                let Some(c) = self.community_of(community) else {
                    return Ok(Next::Stop);
                };
                let _guard = c.lock.lock().await;
                // Events the dispatcher has already passed (since the run started) are
                // looked at here; later ones by the dispatcher.
                let cursor = self.cursor(community)?;
                let mut after = run.since_seq;
                let mut found = None;
                'scan: while let Some(cursor) = cursor {
                    if after.is_some_and(|a| a >= cursor) {
                        break;
                    }
                    let entries = self.store.read_queue(
                        &QueueName::events(community),
                        after,
                        DISPATCH_BATCH,
                    )?;
                    if entries.is_empty() {
                        break;
                    }
                    for entry in entries {
                        after = Some(entry.seq);
                        if entry.seq > cursor {
                            break 'scan;
                        }
                        let Ok(event) = serde_json::from_slice::<EmittedEvent>(&entry.value) else {
                            continue;
                        };
                        if event.kind == kind.as_str()
                            && event.depth <= self.config.max_event_depth
                            && wait_matches(matches.as_ref(), &vars, entry.seq, &event)
                        {
                            found = Some((entry.seq, event));
                            break 'scan;
                        }
                    }
                }
                run.steps.push(StepRecord::begun(
                    step.id.as_str(),
                    StepStatus::Waiting,
                    now,
                ));
                let until = now.saturating_add(timeout.as_millis());
                run.status = RunStatus::Waiting;
                run.wait = Some(WaitState {
                    step: index,
                    event: Some(kind.to_string()),
                    until_ms: until,
                });
                if let Some((seq, event)) = found {
                    self.resolve_wait(&mut run, &wf, seq, &event);
                    let mut w = Writes::new(community);
                    w.run(&run)?;
                    self.commit(w)?;
                    return Ok(Next::Continue);
                }
                run.updated_ms = now;
                let mut w = Writes::new(community);
                w.run(&run)?;
                self.commit(w)?;
                c.waits
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(run.id.clone(), kind.to_string());
                self.add_timer(until, community, &run.id);
                Ok(Next::Stop)
            }
        }
    }

    /// If the run's next step is a call whose condition holds, records its rendered
    /// input now, in the batch about to be written: the same record the step would
    /// commit before its first attempt, one commit fewer per call step. Anything
    /// else (a false or failing condition, an input that does not render) is left
    /// to the step itself.
    fn prepare_call(&self, community: &str, wf: &CompiledWorkflow, run: &mut RunRecord) {
        if run.status != RunStatus::Running {
            return;
        }
        let Some(step) = run.current.and_then(|i| wf.steps.get(i)) else {
            return;
        };
        let Action::Call { input, .. } = &step.action else {
            return;
        };
        let vars = self.run_vars(community, wf, run);
        if let Some(when) = &step.when
            && !matches!(when.test(&vars), Ok(true))
        {
            return;
        }
        let Ok(input) = input.render(&vars) else {
            return;
        };
        let now = self.clock.now_ms();
        run.steps.push(StepRecord {
            input: Some(input),
            ..StepRecord::begun(step.id.as_str(), StepStatus::Running, now)
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn step_failed(
        &self,
        community: &str,
        run: &mut RunRecord,
        step: &CompiledStep,
        started: i64,
        kind: &str,
        message: String,
        attempts: u32,
        input: Option<Value>,
    ) -> Result<(), WorkflowError> {
        let now = self.clock.now_ms();
        run.steps.push(StepRecord {
            id: step.id.to_string(),
            status: StepStatus::Failed,
            attempts,
            input,
            output: None,
            error: Some(StepError {
                kind: kind.to_owned(),
                message: message.clone(),
            }),
            started_ms: started,
            finished_ms: Some(now),
        });
        match step.on_error {
            Some(target) if kind != "expression" => self.advance(run, target),
            _ => self.finish(
                run,
                RunStatus::Failed,
                Some(format!("step {} failed: {message}", step.id)),
            ),
        }
        tracing::warn!(community, run = %run.id, step = %step.id, kind, error = %message, "workflow step failed");
        let mut w = Writes::new(community);
        w.run(run)?;
        self.commit(w)?;
        Ok(())
    }

    fn fail_run(
        &self,
        community: &str,
        run: &mut RunRecord,
        error: String,
    ) -> Result<(), WorkflowError> {
        self.finish(run, RunStatus::Failed, Some(error));
        let mut w = Writes::new(community);
        w.run(run)?;
        self.commit(w)?;
        Ok(())
    }

    fn advance(&self, run: &mut RunRecord, target: Target) {
        let now = self.clock.now_ms();
        run.updated_ms = now;
        run.wait = None;
        match target {
            Target::Step(i) => {
                run.status = RunStatus::Running;
                run.current = Some(i);
            }
            Target::End => self.finish(run, RunStatus::Succeeded, None),
        }
    }

    fn finish(&self, run: &mut RunRecord, status: RunStatus, error: Option<String>) {
        let now = self.clock.now_ms();
        run.status = status;
        run.current = None;
        run.wait = None;
        run.error = error;
        run.updated_ms = now;
        run.finished_ms = Some(now);
    }

    /// Completes a waiting run's wait with `event`.
    fn resolve_wait(
        &self,
        run: &mut RunRecord,
        wf: &CompiledWorkflow,
        seq: u64,
        event: &EmittedEvent,
    ) {
        let now = self.clock.now_ms();
        let Some(index) = run.wait.as_ref().map(|w| w.step) else {
            return;
        };
        if let Some(last) = run.steps.last_mut() {
            last.status = StepStatus::Succeeded;
            last.output = Some(event_json(seq, event));
            last.finished_ms = Some(now);
        }
        // A later wait of the run sees only events after this one.
        run.since_seq = Some(seq);
        let next = wf.steps.get(index).map_or(Target::End, |s| s.next);
        self.advance(run, next);
    }

    fn register_wait(&self, community: &str, c: &Community, run: &RunRecord) {
        let Some(wait) = &run.wait else {
            return;
        };
        if let Some(kind) = &wait.event {
            c.waits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(run.id.clone(), kind.clone());
        }
        self.add_timer(wait.until_ms, community, &run.id);
    }

    fn add_timer(&self, due: i64, community: &str, run: &str) {
        self.timers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((due, community.to_owned(), run.to_owned()));
        self.wake.notify_one();
    }

    /// Dispatches the community's new events: starts runs, wakes waits, moves the
    /// cursor, in one batch per page of events.
    async fn dispatch(self: Arc<Self>, community: &str) -> Result<(), WorkflowError> {
        let Some(c) = self.community_of(community) else {
            return Ok(());
        };
        let _guard = c.lock.lock().await;
        c.dirty.store(false, Ordering::Relaxed);
        let mut pages = 0;
        loop {
            let cursor = self.cursor(community)?;
            let entries =
                self.store
                    .read_queue(&QueueName::events(community), cursor, DISPATCH_BATCH)?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                metrics::gauge!("courtyard_event_queue_depth", "community" => community.to_owned())
                    .set(0.0);
                return Ok(());
            };
            // Events awaiting dispatch, as far as this page sees (at most a page).
            metrics::gauge!("courtyard_event_queue_depth", "community" => community.to_owned())
                .set(entries.len() as f64);
            metrics::counter!("courtyard_events_dispatched_total", "community" => community.to_owned())
                .increment(entries.len() as u64);
            let workflows: Vec<Arc<Installed>> = c
                .workflows
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .filter(|i| i.record.enabled)
                .cloned()
                .collect();
            let mut w = Writes::new(community);
            let mut touched: HashMap<String, RunRecord> = HashMap::new();
            let mut to_drive = Vec::new();
            for entry in entries {
                let event: EmittedEvent = match serde_json::from_slice(&entry.value) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(community, seq = entry.seq, error = %e, "unreadable event skipped");
                        continue;
                    }
                };
                if event.depth > self.config.max_event_depth {
                    tracing::warn!(community, seq = entry.seq, kind = %event.kind, depth = event.depth, "event chain too long: the event starts no run and wakes no wait");
                    continue;
                }
                for installed in &workflows {
                    let CompiledTrigger::Event { kind, when } = &installed.compiled.trigger else {
                        continue;
                    };
                    if kind.as_str() != event.kind {
                        continue;
                    }
                    let trigger = RunTrigger::Event {
                        seq: entry.seq,
                        kind: event.kind.clone(),
                        payload: event.payload.clone(),
                        source: event.source.clone(),
                        at_ms: event.at_ms,
                        id: event.id.clone(),
                    };
                    if let Some(when) = when {
                        let mut vars = self.base_vars(community, &installed.compiled);
                        vars.set(
                            "trigger",
                            serde_json::to_value(&trigger).unwrap_or(Value::Null),
                        );
                        vars.set("steps", json!({}));
                        vars.set("run", json!({}));
                        match when.test(&vars) {
                            Ok(true) => {}
                            Ok(false) => continue,
                            Err(e) => {
                                tracing::warn!(community, workflow = %installed.record.name, seq = entry.seq, error = %e, "trigger condition failed; no run started");
                                continue;
                            }
                        }
                    }
                    let chain = event.chain.unwrap_or(entry.seq);
                    if !self.chain_allows(community, chain) {
                        tracing::warn!(community, workflow = %installed.record.name, seq = entry.seq, chain, "the chain of events has started its budget of runs; this event starts no more");
                        continue;
                    }
                    let run = self.new_run(
                        community,
                        installed,
                        trigger,
                        event.depth,
                        Some(entry.seq),
                        Some(chain),
                    );
                    let mut run = run;
                    self.prepare_call(community, &installed.compiled, &mut run);
                    to_drive.push(run.id.clone());
                    touched.insert(run.id.clone(), run);
                }
                let waiting: Vec<String> = c
                    .waits
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .filter(|(_, kind)| **kind == event.kind)
                    .map(|(id, _)| id.clone())
                    .collect();
                for run_id in waiting {
                    let run = match touched.get(&run_id) {
                        Some(r) => r.clone(),
                        None => match self.load_run(community, &run_id)? {
                            Some(r) => r,
                            None => continue,
                        },
                    };
                    if run.status != RunStatus::Waiting
                        || run.since_seq.is_some_and(|since| entry.seq <= since)
                    {
                        continue;
                    }
                    let Ok(wf) = self.compiled(community, &run.workflow, run.revision) else {
                        continue;
                    };
                    let Some(step) = run.wait.as_ref().and_then(|w| wf.steps.get(w.step)) else {
                        continue;
                    };
                    let Action::Wait { matches, .. } = &step.action else {
                        continue;
                    };
                    let vars = self.run_vars(community, &wf, &run);
                    if wait_matches(matches.as_ref(), &vars, entry.seq, &event) {
                        let mut run = run;
                        self.resolve_wait(&mut run, &wf, entry.seq, &event);
                        to_drive.push(run_id.clone());
                        touched.insert(run_id, run);
                    }
                }
            }
            for run in touched.values() {
                w.run(run)?;
            }
            w.put("cursor".into(), &last)?;
            self.commit(w)?;
            {
                let mut waits = c.waits.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, run) in &touched {
                    if run.status != RunStatus::Waiting {
                        waits.remove(id);
                    }
                }
            }
            for id in to_drive {
                self.clone().spawn_drive(community, &id);
            }
            pages += 1;
            if pages == DISPATCH_PAGES {
                // Let the community's timers and waits in; the loop comes back at once.
                c.dirty.store(true, Ordering::Relaxed);
                self.wake.notify_one();
                return Ok(());
            }
        }
    }

    async fn tick(self: Arc<Self>) -> Result<(), WorkflowError> {
        let now = self.clock.now_ms();
        let due: Vec<(i64, String, String)> = {
            let mut timers = self.timers.lock().unwrap_or_else(PoisonError::into_inner);
            let mut due = Vec::new();
            while let Some(first) = timers.first() {
                if first.0 > now {
                    break;
                }
                if let Some(t) = timers.pop_first() {
                    due.push(t);
                }
            }
            due
        };
        let mut first_error = None;
        for (at, community, run_id) in due {
            if let Err(e) = self.clone().fire_timer(at, &community, &run_id).await {
                // Tried again in a second; the run waits meanwhile.
                tracing::error!(%community, run = %run_id, error = %e, "cannot fire a timer; retrying");
                self.timers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((now + 1000, community.clone(), run_id.clone()));
                first_error.get_or_insert(e);
            }
        }
        for (community, _) in self.community_list() {
            if let Err(e) = self.clone().fire_schedules(&community, now).await {
                tracing::error!(%community, error = %e, "cannot fire the schedules");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn fire_timer(
        self: Arc<Self>,
        at: i64,
        community: &str,
        run_id: &str,
    ) -> Result<(), WorkflowError> {
        let Some(c) = self.community_of(community) else {
            return Ok(());
        };
        let _guard = c.lock.lock().await;
        let Some(mut run) = self.load_run(community, run_id)? else {
            return Ok(());
        };
        let Some(wait) = run.wait.clone() else {
            return Ok(());
        };
        if run.status != RunStatus::Waiting || wait.until_ms != at {
            return Ok(());
        }
        let wf = match self.compiled(community, &run.workflow, run.revision) {
            Ok(wf) => wf,
            Err(e) => return self.fail_run(community, &mut run, e.to_string()),
        };
        let now = self.clock.now_ms();
        let step = wf.steps.get(wait.step);
        match (&wait.event, step) {
            (None, Some(step)) => {
                if let Some(last) = run.steps.last_mut() {
                    last.status = StepStatus::Succeeded;
                    last.finished_ms = Some(now);
                }
                self.advance(&mut run, step.next);
            }
            (Some(kind), Some(step)) => {
                if let Some(last) = run.steps.last_mut() {
                    last.status = StepStatus::TimedOut;
                    last.finished_ms = Some(now);
                    last.error = Some(StepError {
                        kind: "timed-out".into(),
                        message: format!("no {kind} event came in time"),
                    });
                }
                match step.on_timeout {
                    Some(target) => self.advance(&mut run, target),
                    None => self.finish(
                        &mut run,
                        RunStatus::Failed,
                        Some(format!("step {} timed out waiting for {kind}", step.id)),
                    ),
                }
            }
            (_, None) => self.finish(
                &mut run,
                RunStatus::Failed,
                Some("the waiting step is gone".into()),
            ),
        }
        let mut w = Writes::new(community);
        w.run(&run)?;
        self.commit(w)?;
        c.waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id);
        drop(_guard);
        self.spawn_drive(community, run_id);
        Ok(())
    }

    async fn fire_schedules(
        self: Arc<Self>,
        community: &str,
        now: i64,
    ) -> Result<(), WorkflowError> {
        let Some(c) = self.community_of(community) else {
            return Ok(());
        };
        let has_crons = c
            .workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|i| i.record.enabled && matches!(i.compiled.trigger, CompiledTrigger::Cron(_)));
        if !has_crons {
            return Ok(());
        }
        let _guard = c.lock.lock().await;
        // Read under the lock, so that a workflow disabled meanwhile starts nothing.
        let crons: Vec<Arc<Installed>> = c
            .workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|i| i.record.enabled && matches!(i.compiled.trigger, CompiledTrigger::Cron(_)))
            .cloned()
            .collect();
        for installed in crons {
            let CompiledTrigger::Cron(schedule) = &installed.compiled.trigger else {
                continue;
            };
            let name = &installed.record.name;
            let Some(last) = self.last_fire(community, name)? else {
                // No record of a last fire: the schedule counts from now.
                let mut w = Writes::new(community);
                w.put(format!("cron/{name}"), &now)?;
                self.commit(w)?;
                continue;
            };
            // The fires in (last, now]: is there one, which is the latest, and is there
            // more than one? Computed, not counted: a schedule of every second after a
            // month down is no more work than a nightly one.
            let Some(first) = schedule.next_after(last).filter(|f| *f <= now) else {
                continue;
            };
            let latest = schedule
                .last_at_or_before(now)
                .filter(|l| *l >= first)
                .unwrap_or(first);
            // A fire is late when the host was not up (or not free) to fire it on time.
            let late = now - latest > LATE_FIRE_MS;
            let catch_up = first < latest || late;
            let mut w = Writes::new(community);
            w.put(format!("cron/{name}"), &latest)?;
            let mut started = None;
            if !(catch_up && schedule.missed == MissedFires::Skip) {
                let since = self.stream_tail(community)?;
                let run = self.new_run(
                    community,
                    &installed,
                    RunTrigger::Cron {
                        scheduled_ms: latest,
                        catch_up,
                    },
                    0,
                    since,
                    None,
                );
                w.run(&run)?;
                started = Some(run.id);
            } else {
                tracing::info!(community, workflow = %name, "missed schedule fires skipped");
            }
            self.commit(w)?;
            if let Some(id) = started {
                self.clone().spawn_drive(community, &id);
            }
        }
        Ok(())
    }

    /// Drives every open run that should be running but that no task drives (its
    /// driver stopped on an error): a safety net, run every [`SWEEP_EVERY`].
    fn sweep_stuck(self: &Arc<Self>) {
        for (id, _) in self.community_list() {
            let id = &id;
            let open = match self.store.scan(&ns(id), "open/", None, usize::MAX) {
                Ok(open) => open,
                Err(e) => {
                    tracing::error!(community = %id, error = %e, "cannot list open runs");
                    continue;
                }
            };
            for (key, _) in open {
                let run_id = &key["open/".len()..];
                let idle = !self
                    .active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains_key(&(id.clone(), run_id.to_owned()));
                if idle
                    && let Ok(Some(run)) = self.load_run(id, run_id)
                    && run.status == RunStatus::Running
                {
                    self.clone().spawn_drive(id, run_id);
                }
            }
        }
    }

    fn next_due(&self) -> Option<i64> {
        self.timers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .map(|t| t.0)
    }

    async fn background(self: Arc<Self>) {
        let poll = self.config.poll_interval;
        let mut last_poll = std::time::Instant::now();
        let mut last_stuck_sweep = std::time::Instant::now();
        loop {
            let now = self.clock.now_ms();
            let sleep = match self.next_due() {
                Some(due) => Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(poll),
                None => poll,
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake.notified() => {}
            }
            // A failed store refuses everything until the host restarts (it says so
            // once); nothing here could succeed, and each community would log it.
            if self.store.health().is_err() {
                continue;
            }
            if let Err(e) = self.clone().tick().await {
                tracing::error!(error = %e, "workflow timers failed");
            }
            let sweep = last_poll.elapsed() >= poll;
            if sweep {
                last_poll = std::time::Instant::now();
            }
            if last_stuck_sweep.elapsed() >= SWEEP_EVERY {
                last_stuck_sweep = std::time::Instant::now();
                self.sweep_stuck();
            }
            for (id, c) in &self.community_list() {
                if sweep || c.dirty.load(Ordering::Relaxed) {
                    let inner = self.clone();
                    let id = id.clone();
                    tokio::spawn(async move {
                        if let Err(e) = inner.dispatch(&id).await {
                            tracing::error!(community = %id, error = %e, "event dispatch failed");
                        }
                    });
                }
            }
        }
    }
}

/// 32 random bits from the standard library's per-process hash keys.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() as u32
}

/// Removes the record of a call attempt that is being retried or has just ended.
fn pop_running(run: &mut RunRecord, step: &CompiledStep) {
    if run
        .steps
        .last()
        .is_some_and(|s| s.id == step.id.as_str() && s.status == StepStatus::Running)
    {
        run.steps.pop();
    }
}

fn event_json(seq: u64, event: &EmittedEvent) -> Value {
    json!({
        "seq": seq,
        "kind": event.kind,
        "payload": event.payload,
        "source": event.source,
        "at_ms": event.at_ms,
        "id": event.id,
    })
}

fn wait_matches(
    matches: Option<&crate::expr::Cel>,
    vars: &Vars,
    seq: u64,
    event: &EmittedEvent,
) -> bool {
    let Some(cel) = matches else {
        return true;
    };
    let mut vars = vars.clone();
    vars.set("event", event_json(seq, event));
    match cel.test(&vars) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, seq, kind = %event.kind, "a wait condition failed on an event (a missing field?); counted as no match");
            false
        }
    }
}

/// Why a call attempt failed, and whether to retry it.
struct Failure {
    kind: String,
    message: String,
    transient: bool,
}

fn classify(e: &InvokeError) -> Failure {
    let (kind, transient): (&str, bool) = match e {
        InvokeError::Plugin { kind, .. } => match kind {
            PluginErrorKind::InvalidInput => ("invalid-input", false),
            PluginErrorKind::NotFound => ("not-found", false),
            PluginErrorKind::Conflict => ("conflict", false),
            PluginErrorKind::Unavailable => ("unavailable", true),
            PluginErrorKind::Internal => ("internal", false),
        },
        InvokeError::Timeout { .. } => ("timeout", true),
        // The call never ran: its community's calls were queued past the wait limit.
        InvokeError::Busy { .. } => ("unavailable", true),
        InvokeError::Store(_) => {
            // The store's own words are for the host log, not for the run record.
            tracing::error!(error = %e, "a workflow step's call hit a storage error");
            return Failure {
                kind: "unavailable".into(),
                message: "the host's store failed; see the host log".into(),
                transient: true,
            };
        }
        InvokeError::MemoryLimit { .. } | InvokeError::StackOverflow { .. } => ("limit", false),
        InvokeError::InvalidInput { .. } => ("invalid-input", false),
        InvokeError::UnknownPlugin { .. } | InvokeError::UnknownOperation { .. } => {
            ("not-found", false)
        }
        InvokeError::NotEnabled { .. } => ("not-enabled", false),
        InvokeError::VersionUnavailable { .. } => ("version-unavailable", false),
        InvokeError::CapabilityDenied { .. } => ("capability-denied", false),
        InvokeError::Trap { .. } | InvokeError::BadOutput { .. } | InvokeError::Internal(_) => {
            ("plugin-failed", false)
        }
    };
    Failure {
        kind: kind.into(),
        message: e.to_string(),
        transient,
    }
}

/// A record as JSON, for the audit log.
fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
