//! Per-call resource limits: the memory cap, enforced through wasmtime's
//! `ResourceLimiter`, which also records that the cap was hit so the failure can be
//! reported as "memory limit" rather than as a generic trap.

/// The error a call fails with when it tries to grow memory past its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (asked for {desired} bytes)")]
pub(crate) struct MemoryLimitExceeded {
    pub(crate) limit: usize,
    pub(crate) desired: usize,
}

/// The limiter of one call.
#[derive(Debug)]
pub(crate) struct CallLimiter {
    pub(crate) max_memory_bytes: usize,
    pub(crate) max_table_elements: usize,
    pub(crate) memory_exceeded: bool,
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_exceeded = true;
            // An error (not `Ok(false)`) traps at once, so the call fails
            // deterministically instead of however the guest copes with a failed grow.
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.max_memory_bytes,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}
