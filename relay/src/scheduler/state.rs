//! The scheduler's in-memory state and its synchronous transitions. Everything here runs under
//! one mutex and never awaits: slow work (comparing big outputs, signing, disk) happens outside,
//! in `mod.rs`, between transitions.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyphae_proto::api::{JobStatus, TaskCounts, Tolerance, TransportStats};
use hyphae_proto::frame::{
    AdapterInfo, FailureKind, KernelWork, Platform, ShardWork, Source, TaskAssignment, TaskFailure, ToWorker, Work,
};
use hyphae_proto::tensor::Bytes;
use hyphae_proto::{Address, BlobId, Credits, JobId, LeaseId, ReceiptId, Sha256, TaskId};
use hyphae_shaders::EntryPointInfo;
use hyphae_shaders::executor::Requirements;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::canary::{Canaries, Known, Lent};
use super::history::History;
use super::lease::{Lease, Leases};
use super::pairs::{PAIRING_LIFETIME, Pairs};
use super::placement;
use super::queue::{Fit, Queue};
use crate::job::SelfCheck;
use crate::store::records::{JobRecord, JobWork, TaskBody, TaskRecord};
use crate::trust::{Trust, TrustConfig};

/// The parts of a job every task needs, shared by reference.
#[derive(Debug)]
pub struct JobShared {
    pub id: JobId,
    pub work: JobWork,
    /// Kernel jobs: the entry point's workgroup, for placement.
    pub entry: Option<EntryPointInfo>,
    pub tolerance: Tolerance,
    pub redundancy: u32,
    pub credits_per_task: Credits,
    /// See [`crate::job::ValidatedJob::hand_off`].
    pub hand_off: bool,
    /// Results the relay checks itself: one worker's result is enough when it passes.
    pub check: Option<SelfCheck>,
}

impl JobShared {
    /// Whether one trusted worker may run this job's tasks alone, `adaptive` replication being
    /// on. Kernel jobs only: a model shard's output stays on its workers for the next shard and
    /// cannot be checked again should one of them be caught later, so shards run once only
    /// under the relay's own spot check.
    pub fn replicates_adaptively(&self, adaptive: bool) -> bool {
        adaptive && self.check.is_none() && matches!(self.work, JobWork::Kernel { .. })
    }
}

/// What a worker's writer task sends down the socket.
#[derive(Debug)]
pub enum Outbound {
    Frame(ToWorker),
    Task(Dispatch),
}

impl Outbound {
    /// Whether the frame can wait a little to go out with the next one: a receipt is a record
    /// for the worker's beneficiary, not something the worker acts on.
    pub fn can_wait(&self) -> bool {
        matches!(self, Outbound::Frame(ToWorker::Receipt(_)))
    }

    /// The frame's bytes (a task's frame is built here, off the scheduler's lock).
    pub fn encode(self) -> Vec<u8> {
        match self {
            Outbound::Frame(frame) => frame.encode(),
            Outbound::Task(dispatch) => dispatch.to_frame().encode(),
        }
    }
}

/// A lease, ready to become a `ToWorker::Task` frame (built by the connection's writer, off the
/// scheduler's lock).
#[derive(Debug)]
pub struct Dispatch {
    pub lease: LeaseId,
    /// The task id the worker is given: the task's own, or a canary's alias.
    pub task: TaskId,
    pub job: Arc<JobShared>,
    pub spec: Arc<TaskRecord>,
    pub deadline_ms: u64,
    /// Shard tasks: other workers that were given the same weights.
    pub weight_peers: Vec<Address>,
}

impl Dispatch {
    pub fn to_frame(&self) -> ToWorker {
        let work = match (&self.job.work, &self.spec.body) {
            (JobWork::Kernel { shader, entry_point, .. }, TaskBody::Kernel { workgroups, bindings }) => {
                Work::Kernel(KernelWork {
                    shader: shader.clone(),
                    entry_point: entry_point.clone(),
                    workgroups: *workgroups,
                    bindings: bindings.clone(),
                })
            }
            (
                JobWork::Shard { model, config, shard, weights, weights_size, .. },
                TaskBody::Shard { batch, seq, mask, input, input_size, output_size },
            ) => Work::Shard(Box::new(ShardWork {
                model: model.clone(),
                config: config.clone(),
                shard: *shard,
                weights: *weights,
                weights_size: *weights_size,
                batch: *batch,
                seq: *seq,
                mask: mask.clone(),
                input: input.clone(),
                input_size: *input_size,
                output_size: *output_size,
                hand_off: self.job.hand_off,
                weight_peers: self.weight_peers.clone(),
            })),
            _ => unreachable!("a job's tasks are of the job's kind (checked when the job is made)"),
        };
        ToWorker::Task(Box::new(TaskAssignment {
            lease: self.lease,
            task: self.task,
            work,
            deadline_ms: self.deadline_ms,
        }))
    }
}

pub struct ActiveJob {
    pub shared: Arc<JobShared>,
    pub record: JobRecord,
    /// Tasks that have had at least one replica handed out and are not settled.
    pub started: u32,
    /// Tasks decided and being written; counted as running until durable.
    pub settling: u32,
}

impl ActiveJob {
    pub fn counts(&self) -> TaskCounts {
        let r = &self.record;
        let running = self.started;
        TaskCounts {
            total: r.task_count,
            queued: r.task_count - r.completed - r.failed - running,
            running,
            completed: r.completed,
            failed: r.failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Replicas are queued or out with workers.
    Open,
    /// All replicas answered; the verifier is comparing them off the lock.
    Evaluating,
    /// Decided; the outcome is being committed.
    Settling,
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub worker: Address,
    pub beneficiary: Address,
    pub answer: Answer,
    /// The result accepted before, now checked again: its worker was paid for it already, with
    /// this receipt.
    pub paid: Option<ReceiptId>,
}

/// What a replica answered.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The outputs, in binding order, shaped as the task says.
    Outputs(Vec<Bytes>),
    /// Only the digest of an output the worker keeps for its peers (right size, checked).
    Digest(Sha256),
    /// Something that can never match: the wrong shape, or a digest the worker could not back
    /// with bytes when asked.
    Malformed,
}

pub struct TaskState {
    pub job: Arc<JobShared>,
    pub spec: Arc<TaskRecord>,
    pub needs: Requirements,
    /// Results wanted in all; grows by one per inconclusive round.
    pub target: u32,
    pub in_flight: u32,
    /// Agreeing results needed: the job's redundancy, or 1 when the task's first worker is
    /// trusted and the task was not drawn for a check (decided at its first dispatch).
    pub required: u32,
    pub results: Vec<Replica>,
    /// Every worker that held this task, whatever came of it: none gets it twice.
    pub tried: Vec<Address>,
    /// Who those workers are, so that replicas go to independent ones (see [`Owner`]).
    pub owners: Vec<Owner>,
    pub failures: Vec<String>,
    pub phase: Phase,
    pub started: bool,
    /// Extra replicas given to idle workers because the task's first ones were slow.
    pub hedged: u32,
    /// How long the first replica to come back took: what a straggler is measured against.
    pub first_answer: Option<Duration>,
    /// A settled task run again because the worker that alone vouched for it was caught: it
    /// counts nothing towards its job, and its verdict replaces the stored result.
    pub recheck: bool,
}

/// A task ready to be queued, made before taking the scheduler's lock: a job of thousands of
/// tasks is then added a chunk at a time, without holding every worker's dispatch up meanwhile.
pub struct NewTask {
    id: TaskId,
    state: TaskState,
}

impl NewTask {
    /// `adaptive`: whether the relay replicates adaptively ([`TrustConfig::adaptive`]).
    pub fn of(job: &Arc<JobShared>, spec: Arc<TaskRecord>, adaptive: bool) -> NewTask {
        let id = TaskId { job: job.id, index: spec.index };
        let needs = placement::requirements(&job.work, &spec);
        // With adaptive replication the first replica goes out alone; who takes it decides
        // how many more follow (`dispatch_one`).
        let first = if job.check.is_some() || job.replicates_adaptively(adaptive) { 1 } else { job.redundancy };
        let state = TaskState {
            job: job.clone(),
            spec,
            needs,
            target: first,
            in_flight: 0,
            required: if job.check.is_some() { 1 } else { job.redundancy },
            results: Vec::new(),
            tried: Vec::new(),
            owners: Vec::new(),
            failures: Vec::new(),
            phase: Phase::Open,
            started: false,
            hedged: 0,
            first_answer: None,
            recheck: false,
        };
        NewTask { id, state }
    }
}

/// What makes two workers independent enough to check each other: not the same beneficiary
/// (keys are free, beneficiaries are who gets paid), not the same known address, and for float
/// work, preferably the same numeric class so that honest results agree closely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub beneficiary: Address,
    pub ip: Option<IpAddr>,
    /// Backend and vendor: GPUs of one class round alike.
    pub class: (String, u32),
}

impl Owner {
    pub(super) fn independent_of(&self, other: &Owner) -> bool {
        self.beneficiary != other.beneficiary && (self.ip.is_none() || self.ip != other.ip)
    }
}

pub struct Worker {
    pub conn: u64,
    pub tx: mpsc::Sender<Outbound>,
    /// Signals and peer frames for this worker (see `peering`).
    pub peer_tx: mpsc::Sender<ToWorker>,
    pub in_flight: u32,
    pub max_in_flight: u32,
    pub beneficiary: Address,
    /// The address it connected from, when known and not loopback.
    pub ip: Option<IpAddr>,
    pub platform: Platform,
    pub adapter: AdapterInfo,
    pub agent: String,
    /// Unix milliseconds.
    pub connected_at: u64,
    /// Shard weights this worker has been given, so it already holds them (preferred
    /// placement), least recently used first; at most `max_shards` of them, as the worker
    /// evicts the same way.
    pub warm: Vec<BlobId>,
    /// See [`hyphae_proto::frame::Hello::max_shards`]; 0: no limit.
    pub max_shards: u32,
    /// The model shards it has run: (model, index, count), for the dashboard.
    pub shards: BTreeSet<(String, u32, u32)>,
}

impl Worker {
    pub(super) fn owner(&self) -> Owner {
        Owner { beneficiary: self.beneficiary, ip: self.ip, class: (self.adapter.backend.clone(), self.adapter.vendor) }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    pub dispatched: u64,
    pub results_accepted: u64,
    pub results_rejected: u64,
    pub tasks_verified: u64,
    pub tasks_failed: u64,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub credits_issued: Credits,
    pub canaries_sent: u64,
    pub canaries_passed: u64,
    pub canaries_failed: u64,
    /// Canaries given to workers caught lying in place of real work.
    pub canaries_in_quarantine: u64,
    /// Verified and rejected per second: the dashboard's chart and rate.
    pub history: History,
}

/// What follows a verdict that did not accept a result.
pub enum Next {
    /// Replicas are still out (or were just asked for): wait for them.
    Wait,
    /// Results arrived meanwhile: judge again.
    Evaluate(ToEvaluate),
    /// Nothing is out and the cap is reached: the task fails.
    Fail(String),
}

/// What a worker's answer calls for.
pub enum Returned {
    /// Nothing yet (replicas still out), or the lease was not live.
    Nothing,
    Evaluate(ToEvaluate),
    /// The answer to a canary, to compare with the known one.
    Canary(CanaryCheck),
}

impl Returned {
    /// Whether judging it may wait on workers: for outputs they kept (hand-off jobs) or for the
    /// relay's own check of a shard.
    pub fn asks_workers(&self) -> bool {
        match self {
            Returned::Evaluate(evaluate) => {
                evaluate.job.hand_off || matches!(evaluate.job.check, Some(SelfCheck::Shard { .. }))
            }
            Returned::Nothing | Returned::Canary(_) => false,
        }
    }

    /// The task to evaluate, if that is what the answer called for.
    #[cfg(test)]
    pub fn into_evaluate(self) -> Option<ToEvaluate> {
        match self {
            Returned::Evaluate(evaluate) => Some(evaluate),
            Returned::Nothing | Returned::Canary(_) => None,
        }
    }
}

pub struct CanaryCheck {
    pub worker: Address,
    pub beneficiary: Address,
    pub known: Arc<Known>,
    /// The task id the worker was given for it.
    pub alias: TaskId,
    pub answer: Answer,
}

/// A task with enough results to be judged.
pub struct ToEvaluate {
    pub task: TaskId,
    pub job: Arc<JobShared>,
    pub spec: Arc<TaskRecord>,
    /// Agreeing results needed (see [`TaskState::required`]).
    pub required: u32,
    pub results: Vec<Replica>,
}

/// A job the dashboard lists among the latest.
#[derive(Debug, Clone)]
pub struct RecentJob {
    pub id: JobId,
    pub created_at: u64,
    pub tasks: u32,
    /// Status and counts as last known; live counts come from the active job while it runs.
    pub status: JobStatus,
    pub completed: u32,
    pub failed: u32,
}

/// What a beneficiary has earned, for the dashboard's leaderboard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Earning {
    pub earned: Credits,
    pub verified_tasks: u64,
}

const RECENT_JOBS: usize = 20;

/// How long a shard task waits for a worker with room before one whose shard slots are all
/// taken is given it anyway.
const SPILL_AFTER: Duration = Duration::from_secs(2);

/// How long a float replica waits for a worker of the same numeric class as its task's first
/// replica before any class will do.
const CLASS_WAIT: Duration = Duration::from_secs(2);

pub struct State {
    pub jobs: HashMap<JobId, ActiveJob>,
    pub tasks: HashMap<TaskId, TaskState>,
    pub queue: Queue,
    pub workers: HashMap<Address, Worker>,
    pub leases: Leases,
    pub trust: Trust,
    /// Draws which trusted workers' tasks are checked anyway, and when a canary goes out.
    rng: StdRng,
    pub canaries: Canaries,
    pub counters: Counters,
    pub lease_timeout: Duration,
    /// Workers whose channel refused a message; dropped after the current transition.
    broken: Vec<Address>,
    /// Queue wait of each dispatch, for the metrics (drained by the caller).
    pub waits: Vec<Duration>,
    pub recent: Vec<RecentJob>,
    pub earnings: HashMap<Address, Earning>,
    /// Who waits for a job to finish (the embeddings service, for each shard's job).
    pub watchers: HashMap<JobId, Vec<tokio::sync::oneshot::Sender<JobRecord>>>,
    /// Workers introduced to each other, and what the data plane moved.
    pub pairs: Pairs,
    pub traffic: TransportStats,
}

impl State {
    pub fn new(lease_timeout: Duration, trust: TrustConfig) -> State {
        State {
            jobs: HashMap::new(),
            tasks: HashMap::new(),
            queue: Queue::default(),
            workers: HashMap::new(),
            leases: Leases::default(),
            trust: Trust::new(trust),
            rng: StdRng::from_entropy(),
            canaries: Canaries::default(),
            counters: Counters::default(),
            lease_timeout,
            broken: Vec::new(),
            waits: Vec::new(),
            recent: Vec::new(),
            earnings: HashMap::new(),
            watchers: HashMap::new(),
            pairs: Pairs::default(),
            traffic: TransportStats::default(),
        }
    }

    /// Records a job's latest known state for the dashboard, keeping the newest few.
    pub fn remember(&mut self, record: &JobRecord) {
        let summary = RecentJob {
            id: record.id,
            created_at: record.created_at,
            tasks: record.task_count,
            status: record.status,
            completed: record.completed,
            failed: record.failed,
        };
        match self.recent.iter_mut().find(|r| r.id == record.id) {
            Some(known) => *known = summary,
            None => {
                self.recent.push(summary);
                self.recent.sort_by_key(|r| std::cmp::Reverse(r.created_at));
                self.recent.truncate(RECENT_JOBS);
            }
        }
    }

    pub fn credit(&mut self, beneficiary: Address, amount: Credits, tasks: u64) {
        let e = self.earnings.entry(beneficiary).or_default();
        e.earned += amount;
        e.verified_tasks += tasks;
    }

    /// Makes a job's unsettled tasks schedulable.
    /// Registers a job; its tasks follow with [`State::add_tasks`].
    pub fn add_job(&mut self, job: ActiveJob) {
        self.remember(&job.record);
        self.jobs.insert(job.shared.id, job);
    }

    /// Queues tasks made by [`NewTask::of`] and hands them out.
    pub fn add_tasks(&mut self, tasks: Vec<NewTask>, now: Instant) {
        self.tasks.reserve(tasks.len());
        // A job that failed while its tasks came in takes no more.
        for NewTask { id, state } in tasks.into_iter().filter(|t| self.jobs.contains_key(&t.id.job)) {
            for _ in 0..state.target {
                self.queue.push_back(id, now);
            }
            self.tasks.insert(id, state);
        }
        self.fill_all(now);
    }

    /// Opens a settled task again: its stored result stays as the replica of the caught worker
    /// (now a suspect, so without a vote), and the job's full redundancy of workers independent of
    /// every one of its `vouchers` decide. False when the task is live already.
    pub fn recheck(
        &mut self,
        job: Arc<JobShared>,
        spec: Arc<TaskRecord>,
        stored: Replica,
        vouchers: &[Address],
        now: Instant,
    ) -> bool {
        let id = TaskId { job: job.id, index: spec.index };
        if self.tasks.contains_key(&id) {
            return false;
        }
        let mut owners: Vec<Owner> = vouchers.iter().filter_map(|v| self.workers.get(v).map(Worker::owner)).collect();
        if !vouchers.iter().any(|v| self.workers.contains_key(v) && *v == stored.worker) {
            owners.push(Owner { beneficiary: stored.beneficiary, ip: None, class: Default::default() });
        }
        let needs = placement::requirements(&job.work, &spec);
        let redundancy = job.redundancy.max(2);
        for _ in 0..redundancy {
            self.queue.push_back(id, now);
        }
        self.tasks.insert(
            id,
            TaskState {
                job,
                spec,
                needs,
                target: redundancy + 1,
                in_flight: 0,
                required: redundancy,
                tried: vouchers.to_vec(),
                owners,
                results: vec![stored],
                failures: Vec::new(),
                phase: Phase::Open,
                started: true,
                hedged: 0,
                first_answer: None,
                recheck: true,
            },
        );
        self.fill_all(now);
        true
    }

    pub fn add_worker(&mut self, address: Address, worker: Worker, now: Instant) {
        if let Some(old) = self.workers.remove(&address) {
            tracing::info!(worker = %address, old_conn = old.conn, "worker reconnected; dropping its old connection");
            self.release_leases_of(address, now);
        }
        self.workers.insert(address, worker);
        self.fill(address, now);
        self.drop_broken(now);
    }

    /// Removes a worker if `conn` is still its connection, putting its leases back in the queue.
    pub fn remove_worker(&mut self, address: Address, conn: u64, now: Instant) {
        if self.workers.get(&address).is_some_and(|w| w.conn == conn) {
            self.workers.remove(&address);
            self.release_leases_of(address, now);
            self.fill_all(now);
            self.drop_broken(now);
        }
    }

    fn release_leases_of(&mut self, address: Address, now: Instant) {
        for (id, lease) in self.leases.take_where(|l| l.worker == address) {
            if self.canaries.returned(id).is_none() {
                self.requeue(lease.task, now);
            }
        }
    }

    /// Puts one replica of `task` back at the head of the queue after a lease ended without a
    /// result. The worker stays in `tried`.
    fn requeue(&mut self, task: TaskId, now: Instant) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.in_flight -= 1;
            self.queue.push_front(task, now);
        }
    }

    /// Hands `address` as many tasks as it has room for and may take.
    pub fn fill(&mut self, address: Address, now: Instant) {
        while self.dispatch_one(address, now) {}
    }

    /// Offers queued work to every worker with room, one task per worker per round, so a small
    /// job spreads over the grid instead of piling on the first worker.
    pub fn fill_all(&mut self, now: Instant) {
        let mut hungry: Vec<Address> = self.workers.keys().filter(|a| self.has_room(a)).copied().collect();
        while !hungry.is_empty() && !self.queue.is_empty() {
            hungry.retain(|a| self.dispatch_one(*a, now) && self.has_room(a));
        }
        self.drop_broken(now);
    }

    /// Whether `address` may take one more lease: fewer than it asked for and than its standing
    /// allows (see [`Trust::quota`]).
    fn has_room(&self, address: &Address) -> bool {
        self.workers.get(address).is_some_and(|w| w.in_flight < self.trust.quota(address, w.max_in_flight))
    }

    /// Gives `address` one task; false when it has no room or nothing it may take.
    fn dispatch_one(&mut self, address: Address, now: Instant) -> bool {
        if !self.has_room(&address) {
            return false;
        }
        let Some(worker) = self.workers.get(&address) else { return false };
        let limits = worker.adapter.limits;
        let warm = &worker.warm;
        let full = worker.max_shards > 0 && warm.len() >= worker.max_shards as usize;
        let owner = worker.owner();
        // A worker caught lying works its way back on canaries alone, while there are any to
        // give it: its wrong answers then cost honest workers no replicas, and passing canaries
        // is how it earns trust again.
        let quarantined = self.trust.suspect(&address, &owner.beneficiary);
        let rate = if quarantined { 1.0 } else { self.trust.config.canary_rate };
        if rate > 0.0 && !self.queue.is_empty() && self.rng.gen_bool(rate.min(1.0)) {
            let deadline = now + self.lease_timeout;
            let leases = &mut self.leases;
            let issue = |known: &Known| {
                leases.issue(Lease { task: known.task, worker: address, issued: now, deadline, canary: true })
            };
            if let Some((lease, lent)) = self.canaries.lend(issue, address, &owner, &limits, &mut self.rng) {
                if quarantined {
                    self.counters.canaries_in_quarantine += 1;
                }
                return self.send_canary(address, lease, lent);
            }
        }
        let tasks = &self.tasks;
        let entry = self.queue.take_best(|entry| {
            let task = tasks.get(&entry.task)?;
            let waited = now.saturating_duration_since(entry.since);
            let fits = task.phase == Phase::Open
                && !task.tried.contains(&address)
                && task.owners.iter().all(|o| o.independent_of(&owner))
                && placement::fits(task.job.entry.as_ref(), &task.needs, &limits);
            // Float replicas wait a moment for a worker that rounds like the first one did.
            let other_class = task.owners.first().is_some_and(|first| first.class != owner.class)
                && waited < CLASS_WAIT
                && task.spec.has_float_output();
            if other_class {
                return Some(Fit::No);
            }
            Some(match (fits, &task.job.work) {
                (false, _) => Fit::No,
                (true, JobWork::Shard { weights, .. }) if warm.contains(weights) => Fit::Preferred,
                // A worker whose memory is spoken for leaves other shards to workers with room,
                // unless none took the task for a while: then it evicts one.
                (true, JobWork::Shard { .. }) if full && waited < SPILL_AFTER => Fit::No,
                (true, _) => Fit::Yes,
            })
        });
        let Some(entry) = entry else { return false };
        let task = self.tasks.get_mut(&entry.task).expect("eligible entries have tasks");
        task.tried.push(address);
        task.owners.push(owner);
        task.in_flight += 1;
        let first_start = !task.started;
        task.started = true;
        if first_start && task.job.replicates_adaptively(self.trust.config.adaptive) {
            // Who runs a task first decides how many replicas it needs; the others go out now.
            let beneficiary = task.owners.last().expect("pushed above").beneficiary;
            let required = self.trust.replicas_for(&address, &beneficiary, task.job.redundancy, &mut self.rng);
            task.required = required;
            task.target = required;
            for _ in 1..required {
                self.queue.push_front(entry.task, now);
            }
        }
        let (job, spec) = (task.job.clone(), task.spec.clone());
        // A worker that must first download a shard's weights gets the time to, at 1 MiB/s.
        let download = match &job.work {
            JobWork::Shard { weights, weights_size, .. } if !self.workers[&address].warm.contains(weights) => {
                Duration::from_secs(weights_size >> 20)
            }
            _ => Duration::ZERO,
        };
        let lease_time = self.lease_timeout + download;
        let deadline = now + lease_time;
        let lease =
            self.leases.issue(Lease { task: entry.task, worker: address, issued: now, deadline, canary: false });
        if first_start && let Some(active) = self.jobs.get_mut(&entry.task.job) {
            active.started += 1;
            if active.record.started_at.is_none() {
                active.record.started_at = Some(crate::unix_ms());
                active.record.status = JobStatus::Running;
            }
        }
        self.waits.push(now.saturating_duration_since(entry.since));
        self.counters.dispatched += 1;
        let weight_peers = self.introduce(address, &job, &spec, now);
        let worker = self.workers.get_mut(&address).expect("checked above");
        worker.in_flight += 1;
        if let JobWork::Shard { model, shard, weights, .. } = &job.work {
            worker.warm.retain(|w| w != weights);
            worker.warm.push(*weights);
            if worker.max_shards > 0 && worker.warm.len() > worker.max_shards as usize {
                worker.warm.remove(0);
            }
            worker.shards.insert((model.clone(), shard.index, shard.count));
        }
        let task = entry.task;
        let dispatch = Dispatch { lease, task, job, spec, deadline_ms: lease_time.as_millis() as u64, weight_peers };
        if worker.tx.try_send(Outbound::Task(dispatch)).is_err() {
            self.broken.push(address);
            return false;
        }
        true
    }

    /// Sends `address` a canary: to it, one more replica of a task like any other.
    fn send_canary(&mut self, address: Address, lease: LeaseId, lent: Lent) -> bool {
        self.counters.canaries_sent += 1;
        let worker = self.workers.get_mut(&address).expect("checked by the caller");
        worker.in_flight += 1;
        let dispatch = Dispatch {
            lease,
            task: lent.alias,
            job: lent.known.job.clone(),
            spec: lent.known.spec.clone(),
            deadline_ms: self.lease_timeout.as_millis() as u64,
            weight_peers: Vec::new(),
        };
        if worker.tx.try_send(Outbound::Task(dispatch)).is_err() {
            self.broken.push(address);
            return false;
        }
        true
    }

    /// Pairs a shard task's worker with the holders of its input and with a few workers that
    /// were given its weights (returned: they may serve them), and counts activations the
    /// relay carries itself.
    fn introduce(&mut self, address: Address, job: &JobShared, spec: &TaskRecord, now: Instant) -> Vec<Address> {
        const WEIGHT_PEERS: usize = 3;
        let (JobWork::Shard { weights, shard, .. }, TaskBody::Shard { input, input_size, .. }) =
            (&job.work, &spec.body)
        else {
            return Vec::new();
        };
        let until = now + PAIRING_LIFETIME;
        match input {
            Source::Peer(source) => {
                for holder in &source.holders {
                    self.pairs.pair(address, *holder, until);
                }
            }
            Source::Inline(_) | Source::Blob(_) if !shard.embeddings => self.traffic.activation_bytes += input_size,
            _ => {}
        }
        let mut peers: Vec<Address> = self
            .workers
            .iter()
            .filter(|(a, w)| **a != address && w.warm.contains(weights))
            .map(|(a, _)| *a)
            .take(WEIGHT_PEERS)
            .collect();
        peers.sort();
        for peer in &peers {
            self.pairs.pair(address, *peer, until);
        }
        peers
    }

    fn drop_broken(&mut self, now: Instant) {
        while let Some(address) = self.broken.pop() {
            if self.workers.remove(&address).is_some() {
                tracing::warn!(worker = %address, "worker's outbound queue is full or closed; dropping it");
                self.release_leases_of(address, now);
                self.fill_all(now);
            }
        }
    }

    /// Sends a frame to a worker if it is connected; a full queue drops the worker.
    pub fn send(&mut self, address: Address, frame: ToWorker, now: Instant) {
        if let Some(worker) = self.workers.get(&address)
            && worker.tx.try_send(Outbound::Frame(frame)).is_err()
        {
            self.broken.push(address);
            self.drop_broken(now);
        }
    }

    /// Ends a lease of `address`, returning its task if the lease was live and really theirs.
    /// Ends a lease its worker answered; returns the task and when the lease was issued.
    fn end_lease(&mut self, address: Address, lease: LeaseId) -> Option<(TaskId, Instant)> {
        if self.leases.get(lease)?.worker != address {
            tracing::warn!(worker = %address, %lease, "worker answered a lease it does not hold; ignored");
            return None;
        }
        let l = self.leases.take(lease)?;
        if let Some(w) = self.workers.get_mut(&address) {
            w.in_flight = w.in_flight.saturating_sub(1);
        }
        Some((l.task, l.issued))
    }

    /// Records a result. Returns the task to evaluate when a quorum may be there, or the canary
    /// to check.
    pub fn on_result(&mut self, address: Address, lease: LeaseId, answer: Answer, now: Instant) -> Returned {
        if self.canaries.is_canary(lease) {
            let returned = self.end_lease(address, lease).and_then(|_| {
                let Lent { known, alias } = self.canaries.returned(lease)?;
                let beneficiary = self.workers.get(&address)?.beneficiary;
                Some(Returned::Canary(CanaryCheck { worker: address, beneficiary, known, alias, answer }))
            });
            self.fill(address, now);
            self.drop_broken(now);
            return returned.unwrap_or(Returned::Nothing);
        }
        let ended = self.end_lease(address, lease);
        let evaluate = ended.and_then(|(id, issued)| {
            let beneficiary = self.workers.get(&address).map(|w| w.beneficiary)?;
            let task = self.tasks.get_mut(&id)?;
            task.in_flight -= 1;
            task.first_answer.get_or_insert(now.saturating_duration_since(issued));
            task.results.push(Replica { worker: address, beneficiary, answer, paid: None });
            // Judged as soon as a quorum is possible, even with replicas still out: a slow
            // worker does not hold up a result its faster peers already agree on.
            if task.phase == Phase::Open && task.results.len() as u32 >= task.required {
                task.phase = Phase::Evaluating;
                Some(ToEvaluate {
                    task: id,
                    job: task.job.clone(),
                    spec: task.spec.clone(),
                    required: task.required,
                    results: std::mem::take(&mut task.results),
                })
            } else {
                None
            }
        });
        self.fill(address, now);
        self.drop_broken(now);
        evaluate.map_or(Returned::Nothing, Returned::Evaluate)
    }

    /// Records a worker's refusal or failure to run a lease. Returns the task and a reason when
    /// too many workers have failed it and it must fail.
    pub fn on_failure(
        &mut self,
        address: Address,
        lease: LeaseId,
        failure: &TaskFailure,
        max_failures: usize,
        now: Instant,
    ) -> Option<(TaskId, String)> {
        let is_canary = self.canaries.is_canary(lease);
        let (id, _) = self.end_lease(address, lease)?;
        if is_canary {
            // Not a verdict: honest workers fail to run tasks too. Nothing to re-queue.
            self.canaries.returned(lease);
            self.fill(address, now);
            return None;
        }
        let workers = &self.workers;
        let task = self.tasks.get_mut(&id)?;
        task.failures.push(format!("{address}: {:?}: {}", failure.kind, failure.message));
        // An input only the workers that computed it held is gone with them: nobody else can
        // run the task, and the pipeline must compute that input again.
        let input_lost = failure.kind == FailureKind::MissingBlob
            && matches!(&task.spec.body, TaskBody::Shard { input: Source::Peer(source), .. }
                if !source.holders.iter().any(|h| workers.contains_key(h)));
        if input_lost {
            task.in_flight -= 1;
            return Some((id, format!("the workers holding its input left: {}", task.failures.join("; "))));
        }
        if task.failures.len() >= max_failures {
            task.in_flight -= 1;
            let reason = format!("{} workers could not run it: {}", task.failures.len(), task.failures.join("; "));
            return Some((id, reason));
        }
        self.requeue(id, now);
        self.fill_all(now);
        None
    }

    /// Takes back the results of a verdict that accepted nothing. Results that arrived while they
    /// were judged are added and judged again; otherwise the task waits for replicas still out,
    /// or asks one more worker, or, with nothing out and `fail` set (the cap), fails.
    pub fn reconsider(&mut self, task: TaskId, mut results: Vec<Replica>, fail: Option<String>, now: Instant) -> Next {
        let Some(t) = self.tasks.get_mut(&task) else { return Next::Wait };
        let arrived = std::mem::take(&mut t.results);
        if !arrived.is_empty() {
            results.extend(arrived);
            return Next::Evaluate(ToEvaluate {
                task,
                job: t.job.clone(),
                spec: t.spec.clone(),
                required: t.required,
                results,
            });
        }
        t.phase = Phase::Open;
        // Replicas wanted but not back yet: out with workers, or queued.
        let outstanding = t.target - results.len() as u32;
        t.results = results;
        if outstanding > 0 {
            return Next::Wait;
        }
        if let Some(reason) = fail {
            return Next::Fail(reason);
        }
        t.target += 1;
        self.queue.push_front(task, now);
        self.fill_all(now);
        Next::Wait
    }

    /// Replicas that came back but whose workers left before the relay could fetch their kept
    /// outputs: no longer counted as coming, so judging the task asks for others instead.
    pub fn lost_replicas(&mut self, task: TaskId, lost: u32) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.target = t.target.saturating_sub(lost);
        }
    }

    /// Gives idle workers an extra replica of a task held up by a straggler, so a slow worker (a
    /// phone, a busy laptop) does not hold up results others could give. A lease straggles when
    /// it is older than `after` and than twice the time the task's first answer took; while no
    /// replica has answered, the task's work may simply be long, so only once a quarter of the
    /// lease timeout has passed. Only workers with nothing else to do get hedges.
    pub fn hedge(&mut self, now: Instant, after: Duration, max_replicas: impl Fn(u32) -> u32) -> usize {
        let blind = after.max(self.lease_timeout / 4);
        let mut hedged = 0;
        let idle: Vec<Address> = self.workers.keys().filter(|a| self.has_room(a)).copied().collect();
        for address in idle {
            if self.dispatch_one(address, now) {
                continue;
            }
            let Some((limits, owner)) = self.workers.get(&address).map(|w| (w.adapter.limits, w.owner())) else {
                continue;
            };
            let tasks = &self.tasks;
            let candidate = self.leases.oldest_where(|l| {
                if l.canary {
                    return false;
                }
                let age = now.saturating_duration_since(l.issued);
                tasks.get(&l.task).is_some_and(|t| {
                    let straggling = match t.first_answer {
                        Some(first) => age >= after.max(first * 2),
                        None => age >= blind,
                    };
                    straggling
                        && t.phase == Phase::Open
                        && t.hedged == 0
                        && t.target < max_replicas(t.job.redundancy)
                        && !t.tried.contains(&address)
                        && t.owners.iter().all(|o| o.independent_of(&owner))
                        && placement::fits(t.job.entry.as_ref(), &t.needs, &limits)
                })
            });
            let Some(task) = candidate.map(|l| l.task) else { continue };
            let t = self.tasks.get_mut(&task).expect("checked above");
            t.hedged += 1;
            t.target += 1;
            self.queue.push_front(task, now);
            tracing::debug!(%task, worker = %address, "hedging a slow replica");
            self.dispatch_one(address, now);
            hedged += 1;
        }
        self.drop_broken(now);
        hedged
    }

    /// Re-arms a task whose settlement could not be committed: every replica is run again.
    pub fn retry(&mut self, task: TaskId, now: Instant) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.results.clear();
            t.tried.clear();
            t.owners.clear();
            t.required = if t.job.check.is_some() { 1 } else { t.job.redundancy };
            t.target = t.required;
            t.phase = Phase::Open;
            for _ in 0..t.target {
                self.queue.push_front(task, now);
            }
            if !t.recheck
                && let Some(job) = self.jobs.get_mut(&task.job)
            {
                job.settling -= 1;
            }
            self.fill_all(now);
        }
    }

    /// Marks a task decided; it leaves the schedulable set once its outcome is durable. Replicas
    /// still out (hedges, stragglers) are cancelled: their answers are no longer needed.
    pub fn begin_settling(&mut self, task: TaskId, now: Instant) {
        let Some(t) = self.tasks.get_mut(&task) else { return };
        t.phase = Phase::Settling;
        let outstanding = t.in_flight > 0;
        t.in_flight = 0;
        if !t.recheck
            && let Some(job) = self.jobs.get_mut(&task.job)
        {
            job.settling += 1;
        }
        if outstanding {
            for (lease, l) in self.leases.take_where(|l| l.task == task && !l.canary) {
                if let Some(w) = self.workers.get_mut(&l.worker) {
                    w.in_flight = w.in_flight.saturating_sub(1);
                }
                self.send(l.worker, ToWorker::Cancel { lease }, now);
                self.fill(l.worker, now);
            }
        }
    }

    /// Updates the standing of the workers behind a verdict on `task`: `accepted` and `rejected`
    /// as (worker, beneficiary). Returns the tasks whose accepted result a worker now caught had
    /// returned, with that worker, to be checked again.
    pub fn record_verdicts(
        &mut self,
        task: TaskId,
        accepted: &[(Address, Address)],
        rejected: &[(Address, Address)],
        elapsed_s: u64,
    ) -> Vec<(TaskId, Address)> {
        self.counters.history.rejected(elapsed_s, rejected.len() as u32);
        for &(worker, beneficiary) in accepted {
            self.trust.valid(worker, beneficiary);
            self.trust.vouched(worker, task);
        }
        let mut recheck = Vec::new();
        for &(worker, beneficiary) in rejected {
            recheck.extend(self.trust.invalid(worker, beneficiary).into_iter().map(|task| (task, worker)));
        }
        self.counters.results_accepted += accepted.len() as u64;
        self.counters.results_rejected += rejected.len() as u64;
        recheck
    }

    /// A task's outcome is durable: drop it and advance its job. Returns the job's record when
    /// this finished the job, for the caller to commit.
    pub fn settled(&mut self, task: TaskId, completed: bool, elapsed_s: u64) -> Option<JobRecord> {
        let t = self.tasks.remove(&task)?;
        if t.recheck {
            return None;
        }
        let job = self.jobs.get_mut(&task.job)?;
        job.settling -= 1;
        if t.started {
            job.started -= 1;
        }
        if completed {
            job.record.completed += 1;
            self.counters.tasks_verified += 1;
            self.counters.history.verified(elapsed_s);
        } else {
            job.record.failed += 1;
            self.counters.tasks_failed += 1;
        }
        let r = &job.record;
        if r.completed + r.failed == r.task_count {
            let mut record = self.jobs.remove(&task.job).expect("present").record;
            record.status = if record.failed == 0 { JobStatus::Completed } else { JobStatus::Failed };
            match record.status {
                JobStatus::Completed => self.counters.jobs_completed += 1,
                _ => self.counters.jobs_failed += 1,
            }
            record.finished_at = Some(crate::unix_ms());
            self.remember(&record);
            return Some(record);
        }
        None
    }

    /// Gives up checking a settled task again (no quorum could be had): its stored result stands.
    /// False when `task` is not such a check.
    pub fn drop_recheck(&mut self, task: TaskId, now: Instant) -> bool {
        if !self.tasks.get(&task).is_some_and(|t| t.recheck) {
            return false;
        }
        self.tasks.remove(&task);
        self.queue.retain(|id| *id != task);
        for (lease, l) in self.leases.take_where(|l| l.task == task && !l.canary) {
            if let Some(w) = self.workers.get_mut(&l.worker) {
                w.in_flight = w.in_flight.saturating_sub(1);
            }
            self.send(l.worker, ToWorker::Cancel { lease }, now);
        }
        self.fill_all(now);
        true
    }

    /// Fails a whole job because one of its tasks failed: nothing more of it is run, but for the
    /// checks of its settled results (a caught worker's word must not stand because its job
    /// failed later). Returns the job's final record.
    pub fn fail_job(&mut self, job: JobId, reason: String, now: Instant) -> Option<JobRecord> {
        let mut active = self.jobs.remove(&job)?;
        self.tasks.retain(|id, t| id.job != job || t.recheck);
        let tasks = &self.tasks;
        self.queue.retain(|id| id.job != job || tasks.contains_key(id));
        let dropped = |l: &Lease| l.task.job == job && !l.canary && !tasks.contains_key(&l.task);
        for (lease, l) in self.leases.take_where(dropped) {
            if let Some(w) = self.workers.get_mut(&l.worker) {
                w.in_flight = w.in_flight.saturating_sub(1);
            }
            self.send(l.worker, ToWorker::Cancel { lease }, now);
        }
        self.counters.tasks_failed += 1;
        self.counters.jobs_failed += 1;
        active.record.failed += 1;
        active.record.status = JobStatus::Failed;
        active.record.error = Some(reason);
        active.record.finished_at = Some(crate::unix_ms());
        self.remember(&active.record);
        self.fill_all(now);
        Some(active.record)
    }

    /// Puts back every replica whose lease passed its deadline, telling its worker to stop.
    pub fn expire(&mut self, now: Instant) -> usize {
        let expired = self.leases.take_expired(now);
        let n = expired.len();
        for (lease, l) in expired {
            if let Some(w) = self.workers.get_mut(&l.worker) {
                w.in_flight = w.in_flight.saturating_sub(1);
            }
            tracing::info!(worker = %l.worker, task = %l.task, %lease, "lease expired; re-queuing");
            self.send(l.worker, ToWorker::Cancel { lease }, now);
            if self.canaries.returned(lease).is_none() {
                self.requeue(l.task, now);
            }
        }
        if n > 0 {
            self.fill_all(now);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use hyphae_proto::api::Tolerance;
    use hyphae_proto::frame::{Access, DeviceLimits, TaskBinding};
    use hyphae_proto::{Dtype, SecretKey};

    use super::*;

    const LIMITS: DeviceLimits = DeviceLimits {
        max_buffer_size: 1 << 20,
        max_storage_buffer_binding_size: 1 << 20,
        max_storage_buffers_per_shader_stage: 8,
        max_compute_workgroups_per_dimension: 65535,
        max_compute_invocations_per_workgroup: 256,
        max_compute_workgroup_storage_size: 16384,
    };

    fn job(tasks: u32, redundancy: u32, output_bytes: u64) -> (ActiveJob, Vec<Arc<TaskRecord>>) {
        let id = JobId([tasks as u8; 12]);
        let record = JobRecord::for_test(id, tasks, redundancy);
        let shared = Arc::new(JobShared {
            id,
            work: record.work.clone(),
            entry: Some(EntryPointInfo {
                name: "main".into(),
                stage: "compute".into(),
                workgroup_size: [64, 1, 1],
                workgroup_storage: 0,
            }),
            tolerance: Tolerance::default(),
            redundancy,
            credits_per_task: Credits::whole(1),
            hand_off: false,
            check: None,
        });
        let specs = (0..tasks)
            .map(|index| {
                Arc::new(TaskRecord {
                    index,
                    body: TaskBody::Kernel {
                        workgroups: [1, 1, 1],
                        bindings: vec![TaskBinding {
                            binding: 0,
                            dtype: Dtype::U32,
                            access: Access::ReadWrite,
                            source: None,
                            size: output_bytes,
                        }],
                    },
                })
            })
            .collect();
        (ActiveJob { shared, record, started: 0, settling: 0 }, specs)
    }

    /// Every task fully replicated and no quota below what a worker asks: what these tests pin.
    fn add_job(state: &mut State, active: ActiveJob, tasks: Vec<Arc<TaskRecord>>, now: Instant) {
        let shared = active.shared.clone();
        state.add_job(active);
        let adaptive = state.trust.config.adaptive;
        state.add_tasks(tasks.into_iter().map(|spec| NewTask::of(&shared, spec, adaptive)).collect(), now);
    }

    fn untrusting() -> TrustConfig {
        TrustConfig { adaptive: false, quota_floor: 64, ..TrustConfig::default() }
    }

    fn worker(state: &mut State, max_in_flight: u32, now: Instant) -> (Address, mpsc::Receiver<Outbound>) {
        worker_of(state, max_in_flight, None, None, now)
    }

    /// A worker paying `beneficiary` (its own address when `None`) from `ip`.
    fn worker_of(
        state: &mut State,
        max_in_flight: u32,
        beneficiary: Option<Address>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> (Address, mpsc::Receiver<Outbound>) {
        let address = SecretKey::random(&mut rand::thread_rng()).address();
        keyed_worker(state, address, max_in_flight, beneficiary, ip, now)
    }

    fn keyed_worker(
        state: &mut State,
        address: Address,
        max_in_flight: u32,
        beneficiary: Option<Address>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> (Address, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(64);
        let w = Worker {
            conn: 0,
            tx,
            peer_tx: mpsc::channel(1).0,
            in_flight: 0,
            max_in_flight,
            beneficiary: beneficiary.unwrap_or(address),
            ip,
            platform: Platform::Native,
            adapter: AdapterInfo { limits: LIMITS, ..AdapterInfo::default() },
            agent: "test".into(),
            connected_at: 0,
            warm: Vec::new(),
            max_shards: 0,
            shards: BTreeSet::new(),
        };
        state.add_worker(address, w, now);
        (address, rx)
    }

    /// A one-task job whose answer (`[7; 4]`) `a` and `b` agreed on: a known answer for canaries.
    fn known_answer(state: &mut State, a: Address, b: Address) -> TaskId {
        let (known_job, known_tasks) = job(1, 2, 4);
        let task = TaskId { job: known_job.shared.id, index: 0 };
        let vouched = vec![state.workers[&a].owner(), state.workers[&b].owner()];
        state.canaries.learn(task, &known_job.shared, &known_tasks[0], &[Bytes(vec![7; 4])], vouched);
        task
    }

    /// Leases sent to a worker, with the task each is for (a canary's known task, not its alias).
    fn leases(rx: &mut mpsc::Receiver<Outbound>) -> Vec<(LeaseId, TaskId)> {
        dispatches(rx).iter().map(|d| (d.lease, TaskId { job: d.job.id, index: d.spec.index })).collect()
    }

    fn dispatches(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Dispatch> {
        let mut out = Vec::new();
        while let Ok(message) = rx.try_recv() {
            if let Outbound::Task(d) = message {
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn a_task_is_never_leased_twice_to_one_worker() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (_, mut rx) = worker(&mut state, 8, now);
        let (active, tasks) = job(1, 2, 4);
        add_job(&mut state, active, tasks, now);
        assert_eq!(leases(&mut rx).len(), 1, "both replicas went to one worker");
        let (_, mut second) = worker(&mut state, 8, now);
        assert_eq!(leases(&mut second).len(), 1, "the second replica did not go to the second worker");
    }

    #[test]
    fn replicas_go_to_workers_of_distinct_beneficiaries_and_addresses() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let owner = SecretKey::random(&mut rand::thread_rng()).address();
        let home: Option<IpAddr> = Some("203.0.113.7".parse().unwrap());
        let (_, mut first) = worker_of(&mut state, 8, Some(owner), None, now);
        add_job(&mut state, job(1, 2, 4).0, job(1, 2, 4).1, now);
        assert_eq!(leases(&mut first).len(), 1);
        // Another key of the same beneficiary is no independent check.
        let (_, mut sibling) = worker_of(&mut state, 8, Some(owner), None, now);
        assert!(leases(&mut sibling).is_empty(), "a sibling key got the second replica");
        // Neither is a worker behind the same known address... once the first is from there.
        let (_, mut second) = worker_of(&mut state, 8, None, home, now);
        assert_eq!(leases(&mut second).len(), 1, "an independent worker did not get the replica");

        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (_, mut first) = worker_of(&mut state, 8, None, home, now);
        add_job(&mut state, job(1, 2, 4).0, job(1, 2, 4).1, now);
        assert_eq!(leases(&mut first).len(), 1);
        let (_, mut same_house) = worker_of(&mut state, 8, None, home, now);
        assert!(leases(&mut same_house).is_empty(), "a worker at the same address got the second replica");
        let (_, mut unknown) = worker_of(&mut state, 8, None, None, now);
        assert_eq!(leases(&mut unknown).len(), 1);
    }

    #[test]
    fn a_trusted_workers_task_goes_out_alone_unless_drawn_for_a_check() {
        let now = Instant::now();
        let config = TrustConfig { adaptive: true, trusted_after: 10, min_check: 0.0, quota_floor: 64, ..untrusting() };
        let mut state = State::new(Duration::from_secs(60), config);
        let (trusted, mut rx) = worker(&mut state, 64, now);
        for _ in 0..1_000 {
            state.trust.valid(trusted, trusted);
        }
        // The trusted worker runs every task first; each is checked with probability 10/1000.
        let (active, tasks) = job(40, 2, 4);
        let shared = active.shared.clone();
        add_job(&mut state, active, tasks, now);
        assert_eq!(leases(&mut rx).len(), 40);
        let required: Vec<u32> = (0..40).map(|i| state.tasks[&TaskId { job: shared.id, index: i }].required).collect();
        let checked = required.iter().filter(|&&r| r == 2).count();
        assert!(checked < 5, "{checked} of 40 tasks of a trusted worker were checked");
        // A newcomer gets exactly the checks, and its own first tasks are always replicated.
        let (_, mut other) = worker(&mut state, 64, now);
        assert_eq!(leases(&mut other).len(), checked);
        let (active, tasks) = job(8, 2, 4);
        let second = active.shared.id;
        add_job(&mut state, active, tasks, now);
        let firsts = leases(&mut other).len();
        for i in 0..8 {
            let t = &state.tasks[&TaskId { job: second, index: i }];
            if t.tried.first() != Some(&trusted) {
                assert_eq!(t.required, 2, "an untrusted worker's task went out alone");
            }
        }
        assert!(firsts > 0);
    }

    #[test]
    fn model_shards_run_once_only_under_the_relays_own_check() {
        let kernel = job(1, 2, 4).0.shared;
        let shard = |check| JobShared {
            id: kernel.id,
            work: JobWork::Shard {
                model: "m".into(),
                config: "{}".into(),
                shard: hyphae_proto::frame::ShardSpec {
                    index: 0,
                    count: 2,
                    layers: [0, 3],
                    embeddings: true,
                    pooling: false,
                },
                weights: hyphae_proto::BlobId(Sha256::of(b"w")),
                weights_size: 4,
                largest_tensor: 4,
            },
            entry: None,
            tolerance: Tolerance::default(),
            redundancy: 2,
            credits_per_task: Credits::whole(1),
            hand_off: true,
            check,
        };
        assert!(kernel.replicates_adaptively(true) && !kernel.replicates_adaptively(false));
        assert!(!shard(None).replicates_adaptively(true), "a trusted worker's shard went out unchecked");
        let spot = shard(Some(SelfCheck::Shard { sequences: 1 }));
        let spec = job(1, 2, 4).1.remove(0);
        let first = |job: JobShared| NewTask::of(&Arc::new(job), spec.clone(), true).state.target;
        assert_eq!((first(shard(None)), first(spot)), (2, 1));
    }

    #[test]
    fn a_canary_goes_once_to_each_independent_worker_and_comes_back_to_be_checked() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), TrustConfig { canary_rate: 1.0, ..untrusting() });
        let (a, mut a_rx) = worker(&mut state, 8, now);
        let (b, mut b_rx) = worker(&mut state, 8, now);
        // What a and b agreed on earlier is a known answer.
        let known_task = known_answer(&mut state, a, b);
        // Real work to mix it into: a and b, who vouched for it, only get real tasks.
        let (active, tasks) = job(20, 2, 4);
        add_job(&mut state, active, tasks, now);
        let to_vouchers: Vec<_> = leases(&mut a_rx).into_iter().chain(leases(&mut b_rx)).collect();
        assert!(to_vouchers.iter().all(|(_, t)| *t != known_task), "a voucher was tested with its own answer");
        // A newcomer gets the canary first, looking like any task, and then real work only.
        let (c, mut c_rx) = worker(&mut state, 8, now);
        let sent = dispatches(&mut c_rx);
        let of = |d: &Dispatch| TaskId { job: d.job.id, index: d.spec.index };
        assert_eq!(sent.iter().filter(|d| of(d) == known_task).count(), 1, "{sent:?}");
        assert!(sent.len() > 1, "the newcomer got no real work after its canary");
        let canary = sent.iter().find(|d| of(d) == known_task).unwrap();
        // Under an id of its own: the same index, a job id nobody has seen.
        assert_eq!(canary.task.index, known_task.index);
        assert!(sent.iter().chain(std::iter::once(canary)).all(|d| d.task.job != known_task.job));
        assert!(sent.iter().filter(|d| d.lease != canary.lease).all(|d| d.task == of(d)), "real tasks keep their ids");
        match state.on_result(c, canary.lease, Answer::Outputs(vec![Bytes(vec![8; 4])]), now) {
            Returned::Canary(check) => {
                assert_eq!((check.worker, check.known.task, check.alias), (c, known_task, canary.task));
                assert_eq!(check.known.outputs, vec![Bytes(vec![7; 4])]);
            }
            _ => panic!("a canary's answer was not returned for checking"),
        }
        // Nothing was re-queued for the canary, and the known task's lease is gone.
        assert!(state.leases.take_where(|l| l.canary).is_empty());
        assert!(!state.tasks.contains_key(&known_task));
    }

    #[test]
    fn a_check_of_a_settled_result_outlives_the_failure_of_its_job() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (a, _a_rx) = worker(&mut state, 8, now);
        let (active, specs) = job(2, 2, 4);
        let shared = active.shared.clone();
        // Task 0 settled on `a`'s word, which is being checked again; task 1 is still running.
        add_job(&mut state, active, specs[1..].to_vec(), now);
        let stored =
            Replica { worker: a, beneficiary: a, answer: Answer::Outputs(vec![Bytes(vec![1; 4])]), paid: None };
        assert!(state.recheck(shared.clone(), specs[0].clone(), stored, &[a], now));
        let (_, mut b_rx) = worker(&mut state, 8, now);
        let to_b = leases(&mut b_rx);
        let check = TaskId { job: shared.id, index: 0 };
        assert!(to_b.iter().any(|(_, t)| *t == check), "{to_b:?}");

        assert!(state.fail_job(shared.id, "task 1 failed".into(), now).is_some());
        assert!(state.tasks.get(&check).is_some_and(|t| t.recheck), "the check was dropped with its job");
        assert!(!state.tasks.contains_key(&TaskId { job: shared.id, index: 1 }));
        let live: Vec<TaskId> = state.leases.take_where(|_| true).into_iter().map(|(_, l)| l.task).collect();
        assert!(live.contains(&check), "the check's lease was cancelled: {live:?}");
        assert!(live.iter().all(|t| *t == check), "{live:?}");
    }

    #[test]
    fn a_caught_worker_gets_canaries_in_place_of_real_work_while_any_suit_it() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), TrustConfig { canary_rate: 0.0, ..untrusting() });
        let (a, _a_rx) = worker(&mut state, 8, now);
        let (b, _b_rx) = worker(&mut state, 8, now);
        let known = [known_answer(&mut state, a, b), known_answer(&mut state, a, b)];
        let (active, tasks) = job(20, 2, 4);
        add_job(&mut state, active, tasks, now);
        let liar = SecretKey::random(&mut rand::thread_rng()).address();
        state.trust.invalid(liar, liar);
        let (_, mut liar_rx) = keyed_worker(&mut state, liar, 3, None, None, now);
        let got: Vec<TaskId> = leases(&mut liar_rx).into_iter().map(|(_, t)| t).collect();
        // Canaries are off (rate 0) for everyone else; the suspect gets both known answers, and
        // real work only once none is left to give it.
        assert_eq!(got.len(), 3);
        assert!(known.iter().all(|k| got[..2].contains(k)), "{got:?}");
        assert!(!known.contains(&got[2]));
        assert_eq!(state.counters.canaries_in_quarantine, 2);
    }

    #[test]
    fn a_result_the_relay_checked_itself_is_a_known_answer_on_one_workers_word() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), TrustConfig { canary_rate: 1.0, ..untrusting() });
        let (a, _a_rx) = worker(&mut state, 8, now);
        let (plain, specs) = job(1, 2, 4);
        let p = &plain.shared;
        let check = hyphae_proto::api::MatmulCheck { a: 0, b: 0, c: 0, dims: None, m: Some(1), k: Some(1), n: Some(1) };
        let checked = Arc::new(JobShared {
            id: JobId([9; 12]),
            work: p.work.clone(),
            entry: p.entry.clone(),
            tolerance: p.tolerance,
            redundancy: p.redundancy,
            credits_per_task: p.credits_per_task,
            hand_off: false,
            check: Some(SelfCheck::Matmul(check)),
        });
        let answer = [Bytes(vec![7; 4])];
        let owner = vec![state.workers[&a].owner()];
        state.canaries.learn(TaskId { job: p.id, index: 0 }, p, &specs[0], &answer, owner.clone());
        state.canaries.learn(TaskId { job: checked.id, index: 0 }, &checked, &specs[0], &answer, owner);
        add_job(&mut state, job(20, 2, 4).0, job(20, 2, 4).1, now);
        let (_, mut rx) = worker(&mut state, 8, now);
        let canaries: Vec<TaskId> =
            leases(&mut rx).into_iter().map(|(_, t)| t).filter(|t| t.job == p.id || t.job == checked.id).collect();
        assert_eq!(canaries, vec![TaskId { job: checked.id, index: 0 }], "one worker's unchecked word is no canary");
    }

    #[test]
    fn a_canary_lost_with_its_worker_puts_nothing_back_in_the_queue() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), TrustConfig { canary_rate: 1.0, ..untrusting() });
        let (a, _a_rx) = worker(&mut state, 1, now);
        let (b, _b_rx) = worker(&mut state, 1, now);
        let known_task = known_answer(&mut state, a, b);
        let (active, tasks) = job(3, 1, 4);
        add_job(&mut state, active, tasks, now);
        let (c, mut c_rx) = worker(&mut state, 1, now);
        assert_eq!(leases(&mut c_rx).iter().map(|(_, t)| *t).collect::<Vec<_>>(), vec![known_task]);
        state.remove_worker(c, 0, now);
        assert!(!state.tasks.contains_key(&known_task), "the canary's task came back as real work");
        assert!(state.leases.take_where(|_| true).iter().all(|(_, l)| !l.canary));
    }

    #[test]
    fn a_worker_never_holds_more_than_its_max_in_flight() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (a, mut rx) = worker(&mut state, 3, now);
        let (active, tasks) = job(10, 1, 4);
        add_job(&mut state, active, tasks, now);
        let got = leases(&mut rx);
        assert_eq!(got.len(), 3);
        assert_eq!(state.workers[&a].in_flight, 3);
        // Answering one frees one slot, which is filled at once.
        let evaluate = state.on_result(a, got[0].0, Answer::Outputs(vec![Bytes(vec![0; 4])]), now).into_evaluate();
        assert!(evaluate.is_some(), "redundancy 1: one result completes the task");
        assert_eq!(leases(&mut rx).len(), 1);
        assert_eq!(state.workers[&a].in_flight, 3);
    }

    #[test]
    fn an_expired_lease_goes_to_another_worker_and_the_late_answer_is_ignored() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(5), untrusting());
        let (slow, mut slow_rx) = worker(&mut state, 1, now);
        let (active, tasks) = job(1, 1, 4);
        add_job(&mut state, active, tasks, now);
        let [(lease, task)] = leases(&mut slow_rx)[..] else { panic!("expected one lease") };
        let (_, mut other_rx) = worker(&mut state, 1, now);
        assert!(leases(&mut other_rx).is_empty());

        assert_eq!(state.expire(now + Duration::from_secs(6)), 1);
        let cancelled = slow_rx.try_recv().expect("the slow worker is told");
        assert!(matches!(cancelled, Outbound::Frame(ToWorker::Cancel { lease: l }) if l == lease));
        assert_eq!(leases(&mut other_rx).iter().map(|(_, t)| *t).collect::<Vec<_>>(), vec![task]);
        assert!(leases(&mut slow_rx).is_empty(), "the task went back to the worker that let it expire");
        assert!(state.on_result(slow, lease, Answer::Outputs(vec![Bytes(vec![0; 4])]), now).into_evaluate().is_none());
        assert!(state.tasks[&task].results.is_empty(), "a late answer to an expired lease counted");
    }

    #[test]
    fn a_disconnected_worker_returns_its_leases_to_the_queue() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (gone, mut gone_rx) = worker(&mut state, 4, now);
        let (active, tasks) = job(3, 1, 4);
        add_job(&mut state, active, tasks, now);
        assert_eq!(leases(&mut gone_rx).len(), 3);
        state.remove_worker(gone, 0, now);
        let (_, mut next) = worker(&mut state, 4, now);
        assert_eq!(leases(&mut next).len(), 3);
    }

    #[test]
    fn a_reconnecting_key_replaces_its_old_connection_and_does_not_get_its_tasks_back() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (address, mut old_rx) = worker(&mut state, 4, now);
        let (active, tasks) = job(2, 1, 4);
        add_job(&mut state, active, tasks, now);
        assert_eq!(leases(&mut old_rx).len(), 2);
        let (tx, mut new_rx) = mpsc::channel(64);
        let replacement = Worker {
            ip: None,
            conn: 1,
            tx,
            peer_tx: mpsc::channel(1).0,
            in_flight: 0,
            max_in_flight: 4,
            beneficiary: address,
            platform: Platform::Native,
            adapter: AdapterInfo { limits: LIMITS, ..AdapterInfo::default() },
            agent: "test".into(),
            connected_at: 0,
            warm: Vec::new(),
            max_shards: 0,
            shards: BTreeSet::new(),
        };
        state.add_worker(address, replacement, now);
        assert!(leases(&mut new_rx).is_empty(), "the same key got the same tasks again");
        // The old connection's late goodbye does not remove the new one.
        state.remove_worker(address, 0, now);
        assert!(state.workers.contains_key(&address));
    }

    #[test]
    fn tasks_beyond_a_workers_limits_are_not_placed_on_it() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (_, mut rx) = worker(&mut state, 4, now);
        let (active, tasks) = job(1, 1, 2 << 20);
        add_job(&mut state, active, tasks, now);
        assert!(leases(&mut rx).is_empty());
    }

    #[test]
    fn a_replica_twice_as_slow_as_the_first_answer_is_hedged_and_cancelled_once_settled() {
        let now = Instant::now();
        let at = |ms: u64| now + Duration::from_millis(ms);
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (active, tasks) = job(1, 2, 4);
        add_job(&mut state, active, tasks, now);
        let (fast, mut fast_rx) = worker(&mut state, 1, now);
        let (slow, mut slow_rx) = worker(&mut state, 1, now);
        let [(fast_lease, task)] = leases(&mut fast_rx)[..] else { panic!("expected one lease") };
        let [(slow_lease, _)] = leases(&mut slow_rx)[..] else { panic!("expected one lease") };
        let (idle, mut idle_rx) = worker(&mut state, 1, now);
        assert!(
            state
                .on_result(fast, fast_lease, Answer::Outputs(vec![Bytes(vec![0; 4])]), at(1500))
                .into_evaluate()
                .is_none()
        );

        // Slower than the first answer, but not twice as slow: nothing happens.
        state.hedge(at(2900), Duration::from_secs(2), |r| 2 * r + 1);
        assert!(leases(&mut idle_rx).is_empty());
        state.hedge(at(3100), Duration::from_secs(2), |r| 2 * r + 1);
        let [(idle_lease, hedged)] = leases(&mut idle_rx)[..] else { panic!("the idle worker got no hedge") };
        assert_eq!(hedged, task);

        // The hedge's answer completes the quorum at once; the straggler is told to stop.
        let evaluate =
            state.on_result(idle, idle_lease, Answer::Outputs(vec![Bytes(vec![0; 4])]), at(3500)).into_evaluate();
        assert!(evaluate.is_some(), "a quorum waited for the straggler");
        state.begin_settling(task, at(3500));
        let cancelled = slow_rx.try_recv().expect("the straggler is told");
        assert!(matches!(cancelled, Outbound::Frame(ToWorker::Cancel { lease }) if lease == slow_lease));
        assert_eq!(state.workers[&slow].in_flight, 0);
        // A task is hedged once at most.
        state.hedge(at(9000), Duration::from_secs(2), |r| 2 * r + 1);
        assert_eq!(state.tasks[&task].hedged, 1);
    }

    #[test]
    fn long_work_nobody_has_answered_is_hedged_only_after_a_quarter_of_the_lease_timeout() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (_slow, mut slow_rx) = worker(&mut state, 1, now);
        let (active, tasks) = job(1, 1, 4);
        add_job(&mut state, active, tasks, now);
        let [(_, task)] = leases(&mut slow_rx)[..] else { panic!("expected one lease") };
        let (_idle, mut idle_rx) = worker(&mut state, 1, now);

        // Model shards take seconds on a slow GPU; duplicating them would only slow the grid.
        state.hedge(now + Duration::from_secs(10), Duration::from_secs(2), |r| 2 * r + 1);
        assert!(leases(&mut idle_rx).is_empty());
        state.hedge(now + Duration::from_secs(16), Duration::from_secs(2), |r| 2 * r + 1);
        let [(_, hedged)] = leases(&mut idle_rx)[..] else { panic!("the idle worker got no hedge") };
        assert_eq!(hedged, task);
    }

    #[test]
    fn disagreeing_replicas_with_one_still_out_wait_for_it() {
        let now = Instant::now();
        let mut state = State::new(Duration::from_secs(60), untrusting());
        let (active, tasks) = job(1, 2, 4);
        add_job(&mut state, active, tasks, now);
        let mut workers: Vec<_> = (0..3).map(|_| worker(&mut state, 1, now)).collect();
        let mut out: Vec<(Address, LeaseId)> = Vec::new();
        for (address, rx) in &mut workers {
            out.extend(leases(rx).into_iter().map(|(lease, _)| (*address, lease)));
        }
        assert_eq!(out.len(), 2);
        let task = TaskId { job: JobId([1; 12]), index: 0 };
        // A hedge puts a third replica out.
        state.hedge(now + Duration::from_secs(16), Duration::from_secs(2), |r| 2 * r + 1);
        for (address, rx) in &mut workers {
            out.extend(leases(rx).into_iter().map(|(lease, _)| (*address, lease)));
        }
        assert_eq!(out.len(), 3);
        assert!(
            state
                .on_result(out[0].0, out[0].1, Answer::Outputs(vec![Bytes(vec![1; 4])]), now)
                .into_evaluate()
                .is_none()
        );
        let first_two = state
            .on_result(out[1].0, out[1].1, Answer::Outputs(vec![Bytes(vec![2; 4])]), now)
            .into_evaluate()
            .expect("two results");
        // They disagree; the third replica is still out, so nothing more is asked for.
        assert!(matches!(state.reconsider(task, first_two.results, None, now), Next::Wait));
        assert_eq!(state.tasks[&task].target, 3);
        let all = state
            .on_result(out[2].0, out[2].1, Answer::Outputs(vec![Bytes(vec![2; 4])]), now)
            .into_evaluate()
            .expect("three results");
        assert_eq!(all.results.len(), 3);
    }
}
