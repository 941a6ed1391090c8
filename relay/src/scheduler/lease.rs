//! Leases: one hand-out of one task to one worker, with a deadline. A lease ends in a result, a
//! failure report, the worker's disconnect, or expiry; in the last three the replica goes back in
//! the queue for another worker.

use foldhash::HashMap;
use std::time::Instant;

use hyphae_proto::{Address, LeaseId, TaskId};

#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub task: TaskId,
    pub worker: Address,
    pub issued: Instant,
    pub deadline: Instant,
    /// A canary (see `canary`): its task may be settled or belong to a job long finished, and
    /// nothing is re-queued when it ends without an answer.
    pub canary: bool,
}

#[derive(Debug, Default)]
pub struct Leases {
    live: HashMap<LeaseId, Lease>,
    next: u64,
}

impl Leases {
    pub fn issue(&mut self, lease: Lease) -> LeaseId {
        self.next += 1;
        let id = LeaseId(self.next);
        self.live.insert(id, lease);
        id
    }

    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.live.get(&id)
    }

    pub fn take(&mut self, id: LeaseId) -> Option<Lease> {
        self.live.remove(&id)
    }

    /// Removes and returns every lease past its deadline.
    pub fn take_expired(&mut self, now: Instant) -> Vec<(LeaseId, Lease)> {
        let expired: Vec<LeaseId> = self.live.iter().filter(|(_, l)| l.deadline <= now).map(|(&id, _)| id).collect();
        expired.into_iter().filter_map(|id| self.live.remove(&id).map(|l| (id, l))).collect()
    }

    /// The oldest live lease matching `pred`.
    pub fn oldest_where(&self, mut pred: impl FnMut(&Lease) -> bool) -> Option<&Lease> {
        self.live.values().filter(|l| pred(l)).min_by_key(|l| l.issued)
    }

    /// Removes and returns every lease matching `pred`.
    pub fn take_where(&mut self, mut pred: impl FnMut(&Lease) -> bool) -> Vec<(LeaseId, Lease)> {
        let matching: Vec<LeaseId> = self.live.iter().filter(|(_, l)| pred(l)).map(|(&id, _)| id).collect();
        matching.into_iter().filter_map(|id| self.live.remove(&id).map(|l| (id, l))).collect()
    }
}
