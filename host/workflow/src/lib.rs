//! Workflows: declarative documents that chain plugin operations, and the engine
//! that runs them durably.
//!
//! - [`document`]: the document types (the published JSON Schema is generated from
//!   them);
//! - [`compile`](mod@compile): parsing (YAML or JSON) and the static checks an admin gets
//!   when applying a workflow;
//! - [`expr`]: CEL expressions and JSON templates;
//! - [`engine`]: triggers (events, cron, by hand), durable runs, waits and timers.
//!
//! Architecture invariant: the engine reaches plugins only through
//! `courtyard_runtime::Runtime::invoke`, and the store only through the `Store` trait;
//! every state change of a run is one atomic batch.

pub mod compile;
pub mod document;
pub mod engine;
pub mod expr;

pub use compile::{Catalog, Format, Problem};
pub use document::{Workflow, WorkflowName, workflow_schema};
pub use engine::{Engine, EngineConfig, WorkflowError};
