//! Fair sharing: how a call gets its turn to run.
//!
//! A call needs three things, taken in this order, each waited for asynchronously (no
//! thread is blocked while a call waits) and all within one queue deadline:
//!
//! 1. its namespace's turn: calls of one plugin in one community run one at a time, so
//!    a read-modify-write never loses an update (a FIFO async mutex per namespace);
//! 2. a share of its community's slots: one community holds at most
//!    `max_concurrency_per_community` running calls, so one busy or hostile community
//!    cannot take every slot;
//! 3. one of the host's `max_concurrency` slots (each running call holds an instance of
//!    the pooling allocator).
//!
//! The namespace comes first, so that calls queued behind a slow call of their own
//! namespace hold no slot and no share while they wait. A call that does not get all
//! three before its deadline gives up ([`Busy`]) without having run; a caller that stops
//! waiting (a client that hangs up, a step timeout) leaves the queue at once. Once a call
//! has its [`Turn`], the turn belongs to the call, not to the caller: it is released
//! when the call ends, so a caller that stops waiting never lets more calls run than
//! the limits allow.

use courtyard_store::Namespace;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The right to run one call: held until the call ends.
#[derive(Debug)]
pub(crate) struct Turn {
    _namespace: OwnedMutexGuard<()>,
    _community: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

/// The call's turn did not come before its queue deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy {
    /// How long the call waited.
    pub(crate) waited: Duration,
}

/// The host's slots, each community's share of them, and each namespace's turn.
#[derive(Debug)]
pub(crate) struct Slots {
    slots: Arc<Semaphore>,
    per_community: usize,
    communities: Mutex<HashMap<String, Arc<Semaphore>>>,
    namespaces: Mutex<HashMap<Namespace, Arc<tokio::sync::Mutex<()>>>>,
}

impl Slots {
    /// `total` slots for the host, at most `per_community` of them for one community.
    pub(crate) fn new(total: u32, per_community: u32) -> Self {
        let total = total.max(1) as usize;
        Self {
            slots: Arc::new(Semaphore::new(total)),
            per_community: (per_community as usize).clamp(1, total),
            communities: Mutex::default(),
            namespaces: Mutex::default(),
        }
    }

    /// Waits for the call's turn in `namespace`, giving up after `max_wait`.
    pub(crate) async fn turn(
        &self,
        namespace: &Namespace,
        max_wait: Duration,
    ) -> Result<Turn, Busy> {
        let started = Instant::now();
        let deadline = started + max_wait;
        let busy = || Busy {
            waited: started.elapsed(),
        };
        let lock = self.namespace(namespace);
        let ns = tokio::time::timeout_at(deadline, lock.lock_owned())
            .await
            .map_err(|_| busy())?;
        let share = self.community(namespace.community());
        let community = tokio::time::timeout_at(deadline, share.acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        Ok(Turn {
            _namespace: ns,
            _community: community,
            _slot: slot,
        })
    }

    /// How many of the host's slots are free now.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.slots.available_permits()
    }

    fn namespace(&self, namespace: &Namespace) -> Arc<tokio::sync::Mutex<()>> {
        self.namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(namespace.clone())
            .or_default()
            .clone()
    }

    fn community(&self, community: &str) -> Arc<Semaphore> {
        let mut shares = self
            .communities
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(share) = shares.get(community) {
            return share.clone();
        }
        let share = Arc::new(Semaphore::new(self.per_community));
        shares.insert(community.to_owned(), share.clone());
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_namespace_runs_one_call_at_a_time_and_a_queued_call_gives_up_at_its_deadline() {
        let slots = Slots::new(8, 8);
        let ns = Namespace::new("a", "p");
        let first = slots.turn(&ns, LONG).await.expect("free");
        let waited = slots
            .turn(&ns, Duration::from_millis(300))
            .await
            .expect_err("the namespace is taken");
        assert_eq!(waited.waited, Duration::from_millis(300));
        // The queued call held no slot while it waited.
        assert_eq!(slots.free(), 7);
        drop(first);
        assert!(slots.turn(&ns, Duration::ZERO).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn one_community_cannot_take_more_than_its_share() {
        let slots = Slots::new(8, 2);
        let a1 = slots
            .turn(&Namespace::new("a", "p1"), LONG)
            .await
            .expect("1st");
        let _a2 = slots
            .turn(&Namespace::new("a", "p2"), LONG)
            .await
            .expect("2nd");
        slots
            .turn(&Namespace::new("a", "p3"), Duration::from_millis(10))
            .await
            .expect_err("a's share is used up");
        // Another community still gets a slot at once.
        let _b = slots
            .turn(&Namespace::new("b", "p1"), Duration::ZERO)
            .await
            .expect("b has its own share");
        drop(a1);
        assert!(
            slots
                .turn(&Namespace::new("a", "p3"), Duration::ZERO)
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_host_slots_bound_every_community_together() {
        let slots = Slots::new(2, 2);
        let _a = slots
            .turn(&Namespace::new("a", "p"), LONG)
            .await
            .expect("a");
        let _b = slots
            .turn(&Namespace::new("b", "p"), LONG)
            .await
            .expect("b");
        slots
            .turn(&Namespace::new("c", "p"), Duration::from_millis(10))
            .await
            .expect_err("no slot is free");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_stops_waiting_leaves_the_queue() {
        let slots = Arc::new(Slots::new(4, 4));
        let ns = Namespace::new("a", "p");
        let first = slots.turn(&ns, LONG).await.expect("free");
        let queued = {
            let slots = slots.clone();
            let ns = ns.clone();
            tokio::spawn(async move { slots.turn(&ns, LONG).await.map(drop) })
        };
        tokio::task::yield_now().await;
        queued.abort();
        let _ = queued.await;
        drop(first);
        // Had the aborted waiter kept its place, this would wait behind it forever.
        assert!(slots.turn(&ns, Duration::ZERO).await.is_ok());
    }
}
