//! Canaries: tasks whose answer the relay already knows, handed to a worker as one more replica.
//! On the wire a canary is any task: the body and deadline of a task that independent workers
//! already agreed on, under a task id of its own (a fresh job id, the task's own index), given to
//! a worker independent of all of them. A fresh id each time, so that workers comparing the ids
//! they were sent cannot tell a task seen before, and so that no job status or result names it
//! (a job is read by its payer alone, and nobody pays for a canary's). Its receipt names that id.
//! Only the relay knows the answer, so a worker that lies on a canary is caught on its own, with
//! no honest replica needing to be outvoted, and a pair colluding on the same wrong answer is
//! caught too. What stays the same is the task's content: workers that remember every input
//! they were given could still notice one seen before.
//!
//! Known answers come from tasks the relay checked itself (Freivalds), or accepted by at least two
//! agreeing, independent workers, with their outputs in the relay's hands (not kept on workers
//! for a next shard) and small.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::sync::Arc;

use hyphae_proto::frame::DeviceLimits;
use hyphae_proto::tensor::Bytes;
use hyphae_proto::{Address, JobId, LeaseId, TaskId};
use rand::Rng;

use super::placement;
use super::state::{JobShared, Owner};
use crate::store::records::TaskRecord;

/// Known answers kept (the newest).
const KEPT: usize = 64;
/// Largest answer kept, in bytes: canaries are for catching liars, not for storing results.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A task and the answer independent workers agreed on.
#[derive(Debug)]
pub struct Known {
    pub task: TaskId,
    pub job: Arc<JobShared>,
    pub spec: Arc<TaskRecord>,
    pub outputs: Vec<Bytes>,
    /// Who agreed on it: a canary never goes to them, nor to anyone not independent of them.
    pub vouched: Vec<Owner>,
}

#[derive(Debug)]
struct Kept {
    known: Arc<Known>,
    /// Workers it went to as a canary: none gets the same one twice.
    given: Vec<Address>,
}

/// A canary out with a worker.
#[derive(Debug, Clone)]
pub struct Lent {
    pub known: Arc<Known>,
    /// The task id the worker was given.
    pub alias: TaskId,
}

#[derive(Debug, Default)]
pub struct Canaries {
    known: VecDeque<Kept>,
    /// Canaries out with workers, by lease.
    out: HashMap<LeaseId, Lent>,
}

impl Canaries {
    /// Keeps an accepted result as a known answer, if it qualifies.
    pub fn learn(
        &mut self,
        task: TaskId,
        job: &Arc<JobShared>,
        spec: &Arc<TaskRecord>,
        outputs: &[Bytes],
        vouched: Vec<Owner>,
    ) {
        let size: usize = outputs.iter().map(|o| o.0.len()).sum();
        let checked = job.check.is_some();
        if job.hand_off || (vouched.len() < 2 && !checked) || size > MAX_ANSWER_BYTES {
            return;
        }
        if self.known.len() == KEPT {
            self.known.pop_front();
        }
        let known = Known { task, job: job.clone(), spec: spec.clone(), outputs: outputs.to_vec(), vouched };
        self.known.push_back(Kept { known: Arc::new(known), given: Vec::new() });
    }

    /// Lends `worker` a known answer to be tested with, if one suits it: not given to it before,
    /// independent of everyone who vouched for it, and within its device limits.
    pub fn lend(
        &mut self,
        lease: impl FnOnce(&Known) -> LeaseId,
        worker: Address,
        owner: &Owner,
        limits: &DeviceLimits,
        rng: &mut impl Rng,
    ) -> Option<(LeaseId, Lent)> {
        let suitable: Vec<usize> = (0..self.known.len())
            .filter(|&i| {
                let Kept { known, given } = &self.known[i];
                let needs = placement::requirements(&known.job.work, &known.spec);
                !given.contains(&worker)
                    && known.vouched.iter().all(|v| v.independent_of(owner))
                    && placement::fits(known.job.entry.as_ref(), &needs, limits)
            })
            .collect();
        if suitable.is_empty() {
            return None;
        }
        let kept = &mut self.known[suitable[rng.gen_range(0..suitable.len())]];
        kept.given.push(worker);
        let known = kept.known.clone();
        let lease = lease(&known);
        let lent = Lent { alias: TaskId { job: JobId(rng.r#gen()), index: known.task.index }, known };
        self.out.insert(lease, lent.clone());
        Some((lease, lent))
    }

    /// The canary behind `lease`, if it is one; it is then no longer out.
    pub fn returned(&mut self, lease: LeaseId) -> Option<Lent> {
        self.out.remove(&lease)
    }

    /// The task a canary lease carries.
    pub fn spec_of(&self, lease: LeaseId) -> Option<&Arc<TaskRecord>> {
        self.out.get(&lease).map(|lent| &lent.known.spec)
    }

    pub fn is_canary(&self, lease: LeaseId) -> bool {
        self.out.contains_key(&lease)
    }
}
