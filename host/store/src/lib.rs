//! Courtyard's storage: a small trait for what the host needs from a store, and its
//! embedded backend on [sled].
//!
//! What the host needs is narrow on purpose, so that a multi-node backend can be added
//! later without touching the runtime:
//! - key-value **namespaces**, one per (community, plugin), read by key or by prefix;
//! - **atomic batches**: the writes of one plugin call, and the events it emitted, are
//!   applied all together or not at all ([`Store::commit`]);
//! - **queues**: append-only logs with increasing sequence numbers (a community's
//!   event stream), appended to inside a batch;
//! - **durability on demand**: [`Store::sync`] returns once every batch committed
//!   before the call is on stable storage, the file system's metadata included (an
//!   `fsync`, not only a write-back): what it acknowledged survives a power loss, not
//!   just a killed process. Concurrent callers share flushes (group commit), so
//!   durability costs one disk flush per group of calls, not per call;
//! - **fail-stop on I/O errors**: once a write or a flush has failed, the store refuses
//!   every further operation with [`StoreError::Failed`] ([`Store::health`] says so)
//!   instead of serving a state that may differ from what is on disk. The way back is
//!   to reopen the store from disk, which recovers exactly what was made durable: the
//!   host does that by restarting itself once the disk takes writes again (the lesson
//!   PostgreSQL drew from fsync failures: after one, only recovery from the durable
//!   log is safe).
//!
//! Architecture invariant: nothing above this crate knows sled.

mod sled_store;

pub use sled_store::SledStore;

use std::collections::BTreeMap;
use std::fmt;

/// One (community, plugin) key-value namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    community: String,
    plugin: String,
}

impl Namespace {
    /// The namespace of `plugin` in `community`. Both are slugs (no `/`), as the
    /// tenancy and registry crates guarantee.
    pub fn new(community: impl Into<String>, plugin: impl Into<String>) -> Self {
        Self {
            community: community.into(),
            plugin: plugin.into(),
        }
    }

    /// The community.
    pub fn community(&self) -> &str {
        &self.community
    }

    /// The plugin.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.community, self.plugin)
    }
}

/// The name of a queue, such as a community's event stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// The event stream of `community`.
    pub fn events(community: &str) -> Self {
        Self(format!("events/{community}"))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The changes of one plugin call: applied atomically by [`Store::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Key-value writes per namespace: `Some(value)` sets, `None` deletes.
    pub writes: BTreeMap<Namespace, BTreeMap<String, Option<Vec<u8>>>>,
    /// Entries appended to queues, in order.
    pub appends: Vec<(QueueName, Vec<u8>)>,
}

impl Batch {
    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.values().all(BTreeMap::is_empty) && self.appends.is_empty()
    }
}

/// A queue entry with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Increasing across the store; not dense.
    pub seq: u64,
    /// The entry.
    pub value: Vec<u8>,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The store failed earlier (a write or a flush did not reach the disk) and refuses
    /// every operation until it is reopened; see [`Store::health`].
    #[error("the store failed and refuses operations until the host restarts: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
    /// The store's data directory could not be opened.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What the host needs from a store. See the crate docs.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The value under `key` in `ns`.
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries of `ns` whose keys start with `prefix`, in key order,
    /// strictly after `start_after` when given.
    fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Up to `limit` entries of `ns` whose keys start with `prefix`, in *descending*
    /// key order, strictly before `start_before` when given (newest first, for keys
    /// that sort by time).
    fn scan_back(
        &self,
        ns: &Namespace,
        prefix: &str,
        start_before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Applies `batch` atomically and returns the sequence numbers given to its queue
    /// appends, in order. Readers see it at once; it is durable after the next
    /// [`Store::sync`] returns.
    ///
    /// Batches become durable in commit order: after a crash, if a batch survived, so
    /// did every batch committed before it. (The workflow engine relies on this: a
    /// step's record, committed after the plugin call's batch, is never durable
    /// without it.)
    ///
    /// Queue entries become visible in sequence order: a reader that has seen entry
    /// `n` of a queue will never later see an entry below `n` appear, so a consumer
    /// may keep a cursor.
    fn commit(&self, batch: Batch) -> Result<Vec<u64>, StoreError>;

    /// Returns once every batch committed before this call is durable on disk.
    fn sync(&self) -> Result<(), StoreError>;

    /// The sequence number of the last entry of `queue`, if it has any.
    fn queue_last(&self, queue: &QueueName) -> Result<Option<u64>, StoreError>;

    /// Up to `limit` entries of `queue` with a sequence number above `after`.
    fn read_queue(
        &self,
        queue: &QueueName,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueueEntry>, StoreError>;

    /// `Ok` while the store serves; after a failed write or flush,
    /// [`StoreError::Failed`] with the first failure, until the store is reopened.
    fn health(&self) -> Result<(), StoreError>;
}
