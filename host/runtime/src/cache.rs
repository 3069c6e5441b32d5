//! The on-disk cache of compiled components, keyed by the component's content hash
//! and by the engine's compatibility hash (wasmtime version, target, settings), so a
//! restart deserialises instead of recompiling, and a changed engine never loads code
//! compiled for another.

use courtyard_registry::Digest;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled now (and written to the cache, if there is one).
    Fresh,
    /// Loaded precompiled from the cache.
    FromCache,
}

fn engine_key(engine: &Engine) -> u64 {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

fn entry(dir: &Path, engine: &Engine, digest: Digest) -> PathBuf {
    dir.join(format!(
        "{}-{:016x}.cwasm",
        digest.hex(),
        engine_key(engine)
    ))
}

/// The component for `bytes`, from the cache in `dir` when possible.
pub(crate) fn component(
    engine: &Engine,
    dir: Option<&Path>,
    digest: Digest,
    bytes: &[u8],
) -> wasmtime::Result<(Component, Compiled)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes)?, Compiled::Fresh));
    };
    let path = entry(dir, engine, digest);
    if path.exists() {
        // SAFETY: the file was written by `serialize` below, by this program, into the
        // host's own data directory, under a name that binds it to the component's
        // hash and to this engine's compatibility hash. Whoever can write the data
        // directory can already change what the host runs.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, Compiled::FromCache)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    let serialized = component.serialize()?;
    std::fs::create_dir_all(dir)?;
    // A temporary name of its own (several loads of one component may race, within
    // one process as well as across processes), then an atomic rename.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, serialized)?;
    std::fs::rename(&tmp, &path)?;
    Ok((component, Compiled::Fresh))
}
