//! What the engine keeps in the store: workflow records and run records. These are
//! also what the API shows.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow as applied to a community.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    /// Its name.
    pub name: String,
    /// Increases with every apply.
    pub revision: u64,
    /// Whether it starts runs.
    pub enabled: bool,
    /// The document, as applied.
    pub document: crate::Workflow,
    /// When it was first applied (Unix ms).
    pub created_ms: i64,
    /// When it was last applied, enabled or disabled (Unix ms).
    pub updated_ms: i64,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A step is due or running.
    Running,
    /// Waiting for an event or a delay.
    Waiting,
    /// Every step is done.
    Succeeded,
    /// A step failed with no error branch, or a wait timed out with no timeout branch.
    Failed,
}

impl RunStatus {
    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunTrigger {
    /// An event of the community's stream.
    Event {
        /// The event's sequence number in the stream.
        seq: u64,
        /// Its kind.
        kind: String,
        /// Its payload.
        payload: Value,
        /// Who emitted it: a plugin, `http` (a device or an admin), or `workflow:<name>`.
        source: String,
        /// When (Unix ms).
        at_ms: i64,
        /// The device's idempotency id, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// A schedule.
    Cron {
        /// The fire's instant (Unix ms).
        scheduled_ms: i64,
        /// Whether this run stands for fires missed while the host was down.
        #[serde(default)]
        catch_up: bool,
    },
    /// By hand.
    Manual {
        /// The input given.
        input: Value,
    },
}

/// An error a step ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// What kind: a plugin error (`invalid-input`, `not-found`, `conflict`,
    /// `unavailable`, `internal`), `timeout`, `limit`, `plugin-failed`,
    /// `expression` or `timed-out` (a wait).
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Running, or waiting to retry.
    Running,
    /// Waiting for an event or a delay.
    Waiting,
    /// Done.
    Succeeded,
    /// Failed (after its retries).
    Failed,
    /// Its condition was false.
    Skipped,
    /// Its wait timed out.
    TimedOut,
}

/// One step of a run, as it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's id.
    pub id: String,
    /// Where it is.
    pub status: StepStatus,
    /// Attempts made (calls).
    pub attempts: u32,
    /// The input it was given (calls), or the payload (emits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// What it gave: a call's output, the event a wait received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// When it started (Unix ms).
    pub started_ms: i64,
    /// When it ended (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
}

impl StepRecord {
    /// A step that began at `now` with `status`: no attempt, input, output or error yet.
    pub(crate) fn begun(id: &str, status: StepStatus, now: i64) -> Self {
        Self {
            id: id.to_owned(),
            status,
            attempts: 0,
            input: None,
            output: None,
            error: None,
            started_ms: now,
            finished_ms: None,
        }
    }
}

/// What a waiting run waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitState {
    /// The step waiting.
    pub step: usize,
    /// The event kind waited for; none for a delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// When the wait ends (Unix ms): the delay is over, or the wait times out.
    pub until_ms: i64,
}

/// One run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id (sorts by creation time).
    pub id: String,
    /// The workflow.
    pub workflow: String,
    /// The workflow's revision the run follows (later applies do not change it).
    pub revision: u64,
    /// Where it is.
    pub status: RunStatus,
    /// What started it.
    pub trigger: RunTrigger,
    /// How many events led to it (bounds chains of events).
    pub depth: u32,
    /// The chain of events it belongs to: the sequence number of the event that
    /// started the chain (none for runs by hand or by schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<u64>,
    /// The event stream's position when it started (none: its beginning): a wait
    /// sees the events after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_seq: Option<u64>,
    /// The index of the step due (or waiting); none once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<usize>,
    /// The steps run so far, in order.
    pub steps: Vec<StepRecord>,
    /// What it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitState>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was created (Unix ms).
    pub created_ms: i64,
    /// When it last changed (Unix ms).
    pub updated_ms: i64,
    /// When it finished (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
}
