//! Recovery from a failed store: the host restarts itself in place.
//!
//! When a write or a flush fails (a full disk, a file system gone read-only), the store
//! fences itself: every later operation is refused, the API answers 503
//! `store_unavailable` with `Retry-After`, and `/readyz` says so. Nothing in memory can
//! be trusted to match the disk after that (sled keeps its error; a batch may be
//! applied in memory and never written), so the only safe way back is recovery from
//! what was made durable, as after a crash: PostgreSQL, after a failed `fsync`, does
//! the same. [`store_recovered`] watches the store and, once it has failed, probes the
//! store's directory every second with a small durable write of a new file and an
//! `fsync` of the store's log opened for writing; when the disk takes writes again, the host finishes the requests in flight and replaces itself with a fresh
//! copy of its own binary (`exec`, same arguments, same process id), which opens the
//! store from disk and resumes unfinished runs. The listening socket is handed over
//! across the `exec`, so clients that connect meanwhile wait in its backlog instead of
//! being refused.

use anyhow::{Context as _, Result};
use courtyard_store::Store;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The environment variable that hands the listening socket to the restarted host.
const LISTEN_FD: &str = "COURTYARD_LISTEN_FD";

/// How often a failed store's data directory is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The listening socket a restarting host handed over, if this process is one.
pub(crate) fn inherited_listener() -> Result<Option<std::net::TcpListener>> {
    let Ok(fd) = std::env::var(LISTEN_FD) else {
        return Ok(None);
    };
    let fd: RawFd = fd
        .parse()
        .with_context(|| format!("{LISTEN_FD}={fd:?} is not a file descriptor"))?;
    // SAFETY: the previous image of this process set the variable to a listening TCP
    // socket it left open across `exec` for this process, which now owns it alone.
    #[allow(unsafe_code)]
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener
        .local_addr()
        .with_context(|| format!("{LISTEN_FD}={fd} is not a listening socket"))?;
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// A copy of the listening socket's descriptor that survives `exec` (`dup` clears
/// close-on-exec), kept for a restart in place.
pub(crate) struct KeptListener(RawFd);

impl KeptListener {
    /// Keeps a copy of `listener`'s descriptor.
    pub(crate) fn of(listener: &tokio::net::TcpListener) -> Result<Self> {
        // SAFETY: `dup` of a descriptor this process owns; the copy is owned by the
        // returned value.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::dup(listener.as_raw_fd()) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .context("cannot keep the listening socket");
        }
        Ok(Self(fd))
    }
}

/// Resolves once the store has failed and its directory `store_dir` takes durable
/// writes again: the moment to restart in place.
pub(crate) async fn store_recovered(store: Arc<dyn Store>, store_dir: &Path) {
    let dir = store_dir.to_owned();
    let mut reported = false;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Err(failure) = store.health() else {
            continue;
        };
        if !reported {
            tracing::error!(
                error = %failure,
                "the store has failed; requests get 503 until the disk takes writes again, \
                 then the host restarts in place"
            );
            reported = true;
        }
        let dir = dir.clone();
        match tokio::task::spawn_blocking(move || durable_probe(&dir)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::debug!(error = %e, "the data directory still refuses writes"),
            Err(e) => tracing::error!(error = %e, "the probe task failed"),
        }
    }
}

/// Whether the store's directory takes durable writes: a new file written, synced and
/// removed (room on the disk, a writable directory), and the store's log opened for
/// writing and synced (a writable file). The store ignores the probe's file.
fn durable_probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(".writable-probe");
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&[0u8; 64 * 1024])?;
        file.sync_all()?;
        std::fs::remove_file(&path)?;
        std::fs::File::open(dir)?.sync_all()?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("db"))?
            .sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// Replaces this process with a fresh copy of its binary, with the same arguments and
/// the listening socket handed over. Returns only if that fails.
pub(crate) fn restart_in_place(listener: KeptListener) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return anyhow::Error::new(e).context("cannot find the host's own binary"),
    };
    tracing::warn!(exe = %exe.display(), "restarting in place to recover the store from disk");
    let error = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(LISTEN_FD, listener.0.to_string())
        .exec();
    anyhow::Error::new(error).context(format!("cannot restart {}", exe.display()))
}
