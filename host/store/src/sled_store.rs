//! The sled backend.

use crate::{Batch, Namespace, QueueEntry, QueueName, Store, StoreError};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError, RwLock};

/// The embedded store: a sled database in a directory. One tree per namespace and per
/// queue; batches touching several trees run as one sled transaction.
///
/// Durability: sled's own flush writes its log and calls `sync_file_range`, which
/// neither persists the metadata of a growing file nor touches the blob files sled
/// writes for large values; a power loss could take both. [`Store::sync`] therefore
/// adds an `fdatasync` of the log file and an `fsync` of every new blob file and of
/// their directory, shared by every caller of one group flush.
pub struct SledStore {
    db: sled::Db,
    files: DurableFiles,
    trees: RwLock<HashMap<String, sled::Tree>>,
    group: GroupSync,
    /// Held from taking queue sequence numbers until the batch is applied, so that
    /// entries become visible in sequence order (a cursor never skips one).
    appends: Mutex<()>,
    /// The first failure of a write or a flush: from then on every operation is refused.
    failed: OnceLock<String>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

/// The writes to one sled tree: key and `Some(value)` to set, `None` to remove.
type TreeOps = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: dir.display().to_string(),
            reason,
        };
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| open_error(e.to_string()))?;
        let files = DurableFiles::open(dir).map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            db,
            files,
            trees: RwLock::default(),
            group: GroupSync::default(),
            appends: Mutex::default(),
            failed: OnceLock::new(),
        })
    }

    /// Refuses the operation if the store has failed.
    fn serving(&self) -> Result<(), StoreError> {
        match self.failed.get() {
            None => Ok(()),
            Some(reason) => Err(StoreError::Failed {
                reason: reason.clone(),
            }),
        }
    }

    /// Records a failure of the backend: the store refuses everything from now on.
    fn fail(&self, e: impl std::fmt::Display) -> StoreError {
        let reason = e.to_string();
        if self.failed.set(reason.clone()).is_ok() {
            tracing::error!(
                error = %reason,
                "the store failed: it refuses every operation until the host restarts"
            );
        }
        StoreError::Backend(reason)
    }

    /// sled's flush, then what sled leaves out for a power loss (see the type's doc).
    fn flush_durably(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.fail(e))?;
        self.files.sync().map_err(|e| self.fail(e))
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        if let Some(tree) = self
            .trees
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(tree.clone());
        }
        let tree = self.db.open_tree(name).map_err(|e| self.fail(e))?;
        self.trees
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), tree.clone());
        Ok(tree)
    }

    fn kv_tree(&self, ns: &Namespace) -> Result<sled::Tree, StoreError> {
        self.tree(&format!("kv/{}/{}", ns.community(), ns.plugin()))
    }

    fn queue_tree(&self, queue: &QueueName) -> Result<sled::Tree, StoreError> {
        self.tree(&format!("q/{}", queue.as_str()))
    }
}

impl Store for SledStore {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.serving()?;
        Ok(self
            .kv_tree(ns)?
            .get(key.as_bytes())
            .map_err(|e| self.fail(e))?
            .map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.serving()?;
        let tree = self.kv_tree(ns)?;
        let mut out = Vec::new();
        let iter = match start_after {
            // Keys strictly greater than `start_after`: the range from its successor.
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                let mut from = after.as_bytes().to_vec();
                from.push(0);
                tree.range(from..)
            }
            _ => tree.range(prefix.as_bytes().to_vec()..),
        };
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| self.fail(e))?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8(k.to_vec()).map_err(backend)?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    fn scan_back(
        &self,
        ns: &Namespace,
        prefix: &str,
        start_before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.serving()?;
        let tree = self.kv_tree(ns)?;
        let iter = match start_before {
            Some(before) => tree.range(prefix.as_bytes().to_vec()..before.as_bytes().to_vec()),
            None => tree.scan_prefix(prefix.as_bytes()),
        };
        let mut out = Vec::new();
        for item in iter.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| self.fail(e))?;
            if !k.starts_with(prefix.as_bytes()) {
                continue;
            }
            let key = String::from_utf8(k.to_vec()).map_err(backend)?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, batch: Batch) -> Result<Vec<u64>, StoreError> {
        self.serving()?;
        let seqs = if batch.appends.is_empty() {
            self.apply(batch)?
        } else {
            let _ordered = self.appends.lock().unwrap_or_else(PoisonError::into_inner);
            self.apply(batch)?
        };
        self.group.committed();
        Ok(seqs)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.serving()?;
        self.group.sync(|| self.flush_durably())
    }

    fn health(&self) -> Result<(), StoreError> {
        self.serving()
    }

    fn queue_last(&self, queue: &QueueName) -> Result<Option<u64>, StoreError> {
        self.serving()?;
        match self.queue_tree(queue)?.last().map_err(|e| self.fail(e))? {
            Some((k, _)) => Ok(Some(u64::from_be_bytes(
                k.as_ref().try_into().map_err(backend)?,
            ))),
            None => Ok(None),
        }
    }

    fn read_queue(
        &self,
        queue: &QueueName,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        self.serving()?;
        let tree = self.queue_tree(queue)?;
        let from = after.map_or(0, |a| a.saturating_add(1));
        tree.range(from.to_be_bytes()..)
            .take(limit)
            .map(|item| {
                let (k, v) = item.map_err(|e| self.fail(e))?;
                let seq = u64::from_be_bytes(k.as_ref().try_into().map_err(backend)?);
                Ok(QueueEntry {
                    seq,
                    value: v.to_vec(),
                })
            })
            .collect()
    }
}

impl SledStore {
    /// Applies a batch atomically: one sled batch for one tree, a transaction for more.
    fn apply(&self, batch: Batch) -> Result<Vec<u64>, StoreError> {
        let mut trees = Vec::new();
        let mut ops: Vec<TreeOps> = Vec::new();
        for (ns, writes) in &batch.writes {
            if writes.is_empty() {
                continue;
            }
            trees.push(self.kv_tree(ns)?);
            ops.push(
                writes
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                    .collect(),
            );
        }
        let mut queues: Vec<(String, TreeOps)> = Vec::new();
        let mut seqs = Vec::with_capacity(batch.appends.len());
        for (queue, value) in &batch.appends {
            // Monotonic across restarts (sled persists the id generator).
            let seq = self.db.generate_id().map_err(|e| self.fail(e))?;
            seqs.push(seq);
            let entry = (seq.to_be_bytes().to_vec(), Some(value.clone()));
            match queues.iter_mut().find(|(name, _)| name == queue.as_str()) {
                Some((_, entries)) => entries.push(entry),
                None => queues.push((queue.as_str().to_owned(), vec![entry])),
            }
        }
        for (name, entries) in queues {
            trees.push(self.queue_tree(&QueueName(name))?);
            ops.push(entries);
        }
        match trees.len() {
            0 => Ok(seqs),
            1 => {
                let mut b = sled::Batch::default();
                for (k, v) in &ops[0] {
                    match v {
                        Some(v) => b.insert(k.as_slice(), v.as_slice()),
                        None => b.remove(k.as_slice()),
                    }
                }
                trees[0].apply_batch(b).map_err(|e| self.fail(e))?;
                Ok(seqs)
            }
            _ => {
                let result: Result<(), TransactionError<()>> =
                    trees.as_slice().transaction(|txs| {
                        for (tx, tree_ops) in txs.iter().zip(&ops) {
                            for (k, v) in tree_ops {
                                match v {
                                    Some(v) => {
                                        tx.insert(k.as_slice(), v.as_slice())?;
                                    }
                                    None => {
                                        tx.remove(k.as_slice())?;
                                    }
                                }
                            }
                        }
                        Ok::<(), ConflictableTransactionError<()>>(())
                    });
                result.map_err(|e| match e {
                    TransactionError::Storage(e) => self.fail(e),
                    TransactionError::Abort(()) => backend("transaction aborted"),
                })?;
                Ok(seqs)
            }
        }
    }
}

/// The files sled leaves to the page cache: its log file (whose size and extents
/// `sync_file_range` does not persist) and the blob files of large values (written
/// without any sync), with the directories that name them.
struct DurableFiles {
    log: File,
    dir: PathBuf,
    blobs: PathBuf,
    /// The highest blob id made durable; sled numbers blobs by log position, upwards.
    synced_blob: Mutex<u64>,
}

impl DurableFiles {
    /// Opens the log file and makes the files sled created on opening durable.
    fn open(dir: &Path) -> std::io::Result<Self> {
        let files = Self {
            log: File::open(dir.join("db"))?,
            dir: dir.to_owned(),
            blobs: dir.join("blobs"),
            synced_blob: Mutex::new(0),
        };
        File::open(dir.join("conf"))?.sync_all()?;
        files.sync()?;
        File::open(&files.dir)?.sync_all()?;
        Ok(files)
    }

    /// `fdatasync` of the log; `fsync` of each blob newer than the last sync, and of
    /// the blob directory if there was one.
    fn sync(&self) -> std::io::Result<()> {
        self.log.sync_data()?;
        let mut synced = self
            .synced_blob
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut newest = *synced;
        for entry in std::fs::read_dir(&self.blobs)? {
            let entry = entry?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if id > *synced {
                File::open(entry.path())?.sync_all()?;
                newest = newest.max(id);
            }
        }
        if newest > *synced {
            File::open(&self.blobs)?.sync_all()?;
            *synced = newest;
        }
        Ok(())
    }
}

/// Group commit: callers of [`GroupSync::sync`] share flushes. Every commit takes the
/// next generation number ([`GroupSync::committed`]); `sync` returns once a flush that
/// *started* after the caller's latest commit generation has finished, so every commit
/// made before `sync` was called is covered. When nothing was committed since the last
/// flush (a read-only call), `sync` returns at once.
#[derive(Debug, Default)]
struct GroupSync {
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// The generation of the latest commit.
    committed: u64,
    /// Every commit up to this generation is durable.
    durable: u64,
    flushing: bool,
}

impl GroupSync {
    /// Notes a commit (call it after the commit is applied).
    fn committed(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .committed += 1;
    }

    fn sync(&self, flush: impl Fn() -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let needed = state.committed;
        loop {
            if state.durable >= needed {
                return Ok(());
            }
            if !state.flushing {
                state.flushing = true;
                let target = state.committed;
                drop(state);
                let result = flush();
                state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.flushing = false;
                if result.is_ok() {
                    state.durable = state.durable.max(target);
                }
                self.done.notify_all();
                result?;
                continue;
            }
            state = self
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn group_sync_shares_flushes_and_covers_every_caller() {
        let group = Arc::new(GroupSync::default());
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let group = group.clone();
                let flushes = flushes.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        group.committed();
                        group
                            .sync(|| {
                                flushes.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                Ok(())
                            })
                            .expect("sync");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let state = group.state.lock().expect("lock");
        assert_eq!(state.durable, 400, "every commit is durable");
        assert!(flushes.load(Ordering::SeqCst) <= 400);
    }

    #[test]
    fn a_failed_flush_is_reported_and_retried_by_the_next_caller() {
        let group = GroupSync::default();
        group.committed();
        assert!(
            group
                .sync(|| Err(StoreError::Backend("disk full".into())))
                .is_err()
        );
        let flushed = std::cell::Cell::new(false);
        let result = group.sync(|| {
            flushed.set(true);
            Ok(())
        });
        assert!(result.is_ok());
        assert!(
            flushed.get(),
            "the commit was still not durable: flush again"
        );
    }

    #[test]
    fn nothing_committed_means_nothing_to_flush() {
        let group = GroupSync::default();
        assert!(group.sync(|| panic!("no flush needed")).is_ok());
        group.committed();
        group.sync(|| Ok(())).expect("flush");
        assert!(group.sync(|| panic!("already durable")).is_ok());
    }
}
