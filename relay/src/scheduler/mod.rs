//! The scheduler: turns validated jobs into leases on connected workers, collects replica results,
//! has the verifier judge them, and commits verified outcomes with their receipts and credits.
//!
//! Invariants it keeps:
//! - a task is never given twice to the same worker key (one connection per key; `tried`);
//! - a lease that expires or whose worker disconnects puts its replica back in the queue;
//! - a worker never holds more than its `max_in_flight` leases (backpressure);
//! - credits and receipts exist only for results the verifier accepted, and reach a worker only
//!   after they are durable.

mod canary;
mod checks;
mod history;
mod judges;
mod lease;
mod pairs;
mod peering;
mod placement;
mod queue;
mod state;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyphae_proto::api::{
    Earner, JobInfo, JobStatus, JobSummary, OutputData, Stats, TaskCounts, Tolerance, WorkerCounts, WorkerInfo,
};
use hyphae_proto::frame::{Hello, Platform, TaskDigest, TaskFailure, TaskOutput, ToWorker};
use hyphae_proto::tensor::Bytes;
use hyphae_proto::{Address, Credits, Issued, JobId, ReceiptPayload, TaskId};
use hyphae_shaders::EntryPointInfo;
use tokio::sync::mpsc;

use state::{ActiveJob, Answer, CanaryCheck, JobShared, NewTask, Returned, State, ToEvaluate, Worker};
pub use state::{Dispatch, Outbound};

use crate::job::{SelfCheck, ValidatedJob};
use crate::metrics::Metrics;
use crate::signer::Signer;
use crate::store::blobs::BlobStore;
use crate::store::records::{CheckRecord, JobRecord, JobWork, Outcome, PayerRecord, ResultRecord, TaskRecord};
use crate::store::{Batch, Op, Store, StoreError};
use crate::trust::TrustConfig;
use crate::verify::quorum::{self, Decision};
use crate::verify::tolerance;

/// Answers waiting to be verified at most before the relay stops reading more: a few tenths of a
/// second of a busy relay's verification.
const MAX_JUDGING: usize = 4096;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub lease_timeout: Duration,
    /// The most tasks one worker holds at once, whatever it asks for.
    pub max_in_flight: u32,
    /// Failure reports (not wrong answers) from distinct workers after which a task fails. Two
    /// independent workers that cannot run a task mean the task is at fault, not a worker.
    pub max_failures: usize,
    /// How old a lease gets before an idle worker is given an extra replica of its task.
    pub hedge_after: Duration,
    pub trust: TrustConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            lease_timeout: Duration::from_secs(60),
            max_in_flight: 4,
            max_failures: 2,
            hedge_after: Duration::from_secs(2),
            trust: TrustConfig::default(),
        }
    }
}

pub struct Scheduler {
    state: Mutex<State>,
    store: Arc<dyn Store>,
    /// Inputs of checked jobs given as blobs, and shards' weights (see `checks`).
    blobs: Arc<BlobStore>,
    shard_weights: checks::WeightsCache,
    signer: Arc<Signer>,
    metrics: Arc<Metrics>,
    config: SchedulerConfig,
    started: Instant,
    next_conn: std::sync::atomic::AtomicU64,
    /// The relay's own fetches of kept outputs: request → (asked worker, its frames).
    fetches: Mutex<std::collections::HashMap<u64, (Address, mpsc::UnboundedSender<hyphae_proto::peer::PeerFrame>)>>,
    next_request: std::sync::atomic::AtomicU64,
    /// `traffic.activation_bytes` as last added to the metrics (it grows under the lock).
    exported_activation_bytes: std::sync::atomic::AtomicU64,
    /// Room for answers waiting to be verified (see [`Scheduler::judge_later`]).
    judging: Arc<tokio::sync::Semaphore>,
    judges: judges::Judges,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<BlobStore>,
        signer: Arc<Signer>,
        metrics: Arc<Metrics>,
        config: SchedulerConfig,
    ) -> Scheduler {
        let awaiting = metrics.answers_awaiting_verification.clone();
        Scheduler {
            state: Mutex::new(State::new(config.lease_timeout, config.trust.clone())),
            store,
            blobs,
            shard_weights: Default::default(),
            signer,
            metrics,
            config,
            started: Instant::now(),
            next_conn: 0.into(),
            fetches: Default::default(),
            next_request: 0.into(),
            exported_activation_bytes: 0.into(),
            judging: Arc::new(tokio::sync::Semaphore::new(MAX_JUDGING)),
            judges: judges::Judges::start(awaiting),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock is a bug already reported; keep serving with the state as is.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one transition under the lock, then turns its queue waits into metrics, unlocked.
    fn transition<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, waits, online, activation_bytes) = {
            let mut state = self.lock();
            let result = f(&mut state);
            (result, std::mem::take(&mut state.waits), state.workers.len(), state.traffic.activation_bytes)
        };
        let exported = self.exported_activation_bytes.swap(activation_bytes, std::sync::atomic::Ordering::Relaxed);
        if activation_bytes > exported {
            self.metrics.activation_bytes.inc_by(activation_bytes - exported);
        }
        for wait in waits {
            self.metrics.dispatch_wait.observe(wait.as_secs_f64());
            self.metrics.tasks_dispatched.inc();
        }
        self.metrics.workers_online.set(online as i64);
        result
    }

    pub fn relay_address(&self) -> Address {
        self.signer.address()
    }

    /// Re-queues every unsettled task of every unfinished job after a restart. A job whose tasks
    /// were all settled before the crash (or one of which failed) is finished here instead.
    pub async fn restore(&self) -> Result<usize, StoreError> {
        let mut restored = 0;
        let now = Instant::now();
        for mut record in self.store.jobs()? {
            if !record.status.is_finished() {
                let mut pending = Vec::new();
                let (mut completed, mut failed) = (0, 0);
                for task in self.store.tasks(record.id)? {
                    match self.store.result(TaskId { job: record.id, index: task.index })? {
                        Some(r) if r.outcome == Outcome::Completed => completed += 1,
                        Some(_) => failed += 1,
                        None => pending.push(Arc::new(task)),
                    }
                }
                record.completed = completed;
                record.failed = failed;
                // A shard job belongs to an embeddings request that died with the relay.
                let orphan = matches!(record.work, JobWork::Shard { .. }) && !pending.is_empty();
                if orphan {
                    record.failed += pending.len() as u32;
                    record.error = Some("the relay restarted; the request that made this job is gone".into());
                }
                if failed == 0 && !orphan && !pending.is_empty() {
                    self.transition(|state| state.counters.tasks_verified += u64::from(completed));
                    record.status = JobStatus::Queued;
                    record.started_at = None;
                    restored += pending.len();
                    let check = self.store.check(record.id)?.map(|c| SelfCheck::Matmul(c.matmul));
                    let job = ActiveJob { shared: shared_of(&record, false, check), record, started: 0, settling: 0 };
                    self.add_job(job, pending, now);
                    continue;
                }
                record.status = if record.failed == 0 { JobStatus::Completed } else { JobStatus::Failed };
                record.finished_at = Some(crate::unix_ms());
                let mut batch = Batch::new();
                batch.push(Op::PutJob(Box::new(record.clone())));
                self.store.commit(batch).await?;
            }
            // The dashboard's totals cover the relay's whole history, not just this run.
            self.transition(|state| {
                state.remember(&record);
                let c = &mut state.counters;
                c.tasks_verified += u64::from(record.completed);
                c.tasks_failed += u64::from(record.failed);
                match record.status {
                    JobStatus::Completed => c.jobs_completed += 1,
                    _ => c.jobs_failed += 1,
                }
            });
        }
        let accounts = self.store.accounts()?;
        self.transition(|state| {
            // Accounts that only hold grants earned nothing: no place on the leaderboard.
            for (address, account) in accounts.into_iter().filter(|(_, a)| a.verified_tasks > 0) {
                state.credit(address, account.earned, account.verified_tasks);
                state.counters.credits_issued += account.earned;
                state.counters.results_accepted += account.verified_tasks;
            }
        });
        Ok(restored)
    }

    /// Stores a validated job durably, then schedules it. Returns once the job would survive a
    /// crash: the caller may acknowledge it. `payer`'s balance pays for the job in the same
    /// atomic write ([`StoreError::InsufficientCredits`] when short, and nothing is stored); the
    /// relay's own jobs (a model's shards, paid for per request) have none.
    pub async fn submit(
        &self,
        job: ValidatedJob,
        id: JobId,
        owner: String,
        payer: Option<Address>,
    ) -> Result<JobRecord, StoreError> {
        let (hand_off, check) = (job.hand_off, job.check);
        let record = JobRecord {
            id,
            owner,
            work: job.work,
            redundancy: job.redundancy,
            tolerance: job.tolerance,
            credits_per_task: job.credits_per_task,
            task_count: job.tasks.len() as u32,
            status: JobStatus::Queued,
            created_at: crate::unix_ms(),
            started_at: None,
            finished_at: None,
            completed: 0,
            failed: 0,
            error: None,
        };
        let tasks: Vec<Arc<TaskRecord>> = job.tasks.into_iter().map(Arc::new).collect();
        let mut batch = Batch::new();
        if let Some(account) = payer {
            batch.push(Op::Spend { account, amount: record.cost() });
            batch.push(Op::PutPayer { job: id, payer: PayerRecord { account } });
        }
        batch.push(Op::PutJob(Box::new(record.clone())));
        batch.push(Op::PutTasks { job: id, tasks: tasks.clone() });
        if let Some(SelfCheck::Matmul(matmul)) = check {
            batch.push(Op::PutCheck { job: id, check: CheckRecord { matmul } });
        }
        self.store.commit(batch).await?;
        self.metrics.jobs_submitted.inc();
        let active =
            ActiveJob { shared: shared_of(&record, hand_off, check), record: record.clone(), started: 0, settling: 0 };
        self.add_job(active, tasks, Instant::now());
        Ok(record)
    }

    /// Queues a job's tasks a chunk at a time: each chunk holds the lock for well under a
    /// millisecond, so dispatch goes on while a job of many thousand tasks comes in.
    fn add_job(&self, job: ActiveJob, tasks: Vec<Arc<TaskRecord>>, now: Instant) {
        const CHUNK: usize = 256;
        let shared = job.shared.clone();
        let adaptive = self.config.trust.adaptive;
        self.transition(|state| state.add_job(job));
        let mut tasks = tasks.into_iter().peekable();
        while tasks.peek().is_some() {
            let chunk: Vec<NewTask> =
                tasks.by_ref().take(CHUNK).map(|spec| NewTask::of(&shared, spec, adaptive)).collect();
            self.transition(|state| state.add_tasks(chunk, now));
        }
    }

    /// Registers a logged-in worker. Returns its connection id, the tasks it may hold at once,
    /// and the receiving ends of its outbound queue and of its peer frames.
    /// `remote` is the address it connected from, when known: replicas of one task go to workers
    /// of distinct addresses (loopback excepted: that is one machine's tests, or a local proxy).
    pub fn connect(
        &self,
        hello: &Hello,
        remote: Option<IpAddr>,
    ) -> (u64, u32, mpsc::Receiver<Outbound>, mpsc::Receiver<ToWorker>) {
        let conn = self.next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let max_in_flight = hello.max_in_flight.clamp(1, self.config.max_in_flight);
        // Room for every lease plus receipts, cancels and pings in between.
        let (tx, rx) = mpsc::channel(max_in_flight as usize * 4 + 64);
        let (peer_tx, peer_rx) = mpsc::channel(64);
        let worker = Worker {
            conn,
            tx,
            peer_tx,
            in_flight: 0,
            max_in_flight,
            beneficiary: hello.beneficiary,
            ip: remote.filter(|ip| !ip.is_loopback()),
            platform: hello.platform,
            adapter: hello.adapter.clone(),
            agent: hello.agent.clone(),
            connected_at: crate::unix_ms(),
            warm: Default::default(),
            max_shards: hello.max_shards,
            shards: Default::default(),
        };
        self.transition(|state| state.add_worker(hello.worker, worker, Instant::now()));
        (conn, max_in_flight, rx, peer_rx)
    }

    /// Resolves with the job's final record once it finishes. Call before submitting the job.
    pub fn watch(&self, job: JobId) -> tokio::sync::oneshot::Receiver<JobRecord> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.transition(|state| state.watchers.entry(job).or_default().push(tx));
        rx
    }

    fn notify(&self, record: &JobRecord) {
        let watchers = self.transition(|state| state.watchers.remove(&record.id));
        for tx in watchers.into_iter().flatten() {
            let _ = tx.send(record.clone());
        }
    }

    pub fn disconnect(&self, worker: Address, conn: u64) {
        self.transition(|state| state.remove_worker(worker, conn, Instant::now()));
    }

    /// Sends a frame to a connected worker (pings, mostly).
    pub fn send(&self, worker: Address, frame: ToWorker) {
        self.transition(|state| state.send(worker, frame, Instant::now()));
    }

    /// Takes a worker's result: ends its lease and gives the worker its next task at once, under
    /// the lock and without awaiting anything, so dispatch never waits behind verification.
    /// Returns what is left to do, for [`Scheduler::judge_later`].
    pub fn take_result(&self, worker: Address, output: TaskOutput) -> Returned {
        let lease = output.lease;
        self.transition(|state| {
            let answer = match shaped_outputs(state, lease, output.outputs) {
                Some(outputs) => {
                    if let Some(bytes) = carried_activations(state, lease, &outputs) {
                        state.traffic.activation_bytes += bytes;
                    }
                    Answer::Outputs(outputs)
                }
                None => Answer::Malformed,
            };
            state.on_result(worker, lease, answer, Instant::now())
        })
    }

    /// Verifies what [`Scheduler::take_result`] or [`Scheduler::take_digest`] left to do (a
    /// quorum to judge, or a canary to check) on the judging thread ([`judges`]). While
    /// [`MAX_JUDGING`] answers already wait to be verified, it first waits for room: a relay whose verification
    /// falls behind (a slow disk, a busy signer) then reads results no faster than it settles
    /// them, rather than holding ever more of them in memory. Judging that may wait on workers'
    /// frames takes no room, so a reader waiting here never holds up the judge it waits for.
    pub async fn judge_later(self: &Arc<Self>, returned: Returned) {
        if matches!(returned, Returned::Nothing) {
            return;
        }
        let room = if returned.asks_workers() {
            None
        } else {
            Some(self.judging.clone().acquire_owned().await.expect("the semaphore is never closed"))
        };
        let scheduler = Arc::clone(self);
        self.judges.spawn(async move {
            scheduler.judge(returned).await;
            drop(room);
        });
    }

    async fn judge(&self, returned: Returned) {
        match returned {
            Returned::Nothing => {}
            Returned::Evaluate(evaluate) => self.evaluate(evaluate).await,
            Returned::Canary(check) => self.check_canary(check).await,
        }
    }

    /// Signed receipts for `earners` (worker, beneficiary) of a verified result of `task` (as
    /// the workers were given it: a canary's alias names a job of its own).
    async fn receipts(
        &self,
        job: &JobShared,
        task: TaskId,
        output_sha256: hyphae_proto::Sha256,
        earners: impl Iterator<Item = (Address, Address)>,
    ) -> Vec<Issued> {
        let issued_at = crate::unix_ms() / 1000;
        let payload = |(worker, beneficiary)| ReceiptPayload {
            beneficiary,
            credits: job.credits_per_task,
            issued_at,
            job: task.job,
            output_sha256,
            relay: self.signer.address(),
            task,
            v: ReceiptPayload::VERSION,
            worker,
        };
        self.signer.sign_batched(earners.map(payload).collect()).await
    }

    /// Compares a canary's answer with the known one: a match is paid like any verified result
    /// (the worker did the work, and must not learn which tasks were canaries by going unpaid);
    /// a mismatch costs the worker and its beneficiary their trust.
    async fn check_canary(&self, check: CanaryCheck) {
        let CanaryCheck { worker, beneficiary, known, alias, answer } = check;
        let dtypes: Vec<_> = known.spec.outputs().into_iter().map(|(_, dtype, _)| dtype).collect();
        let passed = match &answer {
            Answer::Outputs(outputs) => {
                tolerance::outputs_match(outputs, &known.outputs, &dtypes, &known.job.tolerance)
            }
            Answer::Digest(_) | Answer::Malformed => false,
        };
        let elapsed_s = self.started.elapsed().as_secs();
        if !passed {
            tracing::warn!(%worker, task = %known.task, "worker failed a canary: its answer differs from the known one");
            let recheck = self.transition(|state| {
                state.counters.canaries_failed += 1;
                state.record_verdicts(known.task, &[], &[(worker, beneficiary)], elapsed_s)
            });
            self.recheck(recheck);
            self.metrics.results_rejected.inc();
            self.metrics.canaries_failed.inc();
            return;
        }
        let output_sha256 = hyphae_proto::frame::outputs_sha256(known.outputs.iter().map(|o| o.0.as_slice()));
        let Some(issued) =
            self.receipts(&known.job, alias, output_sha256, [(worker, beneficiary)].into_iter()).await.pop()
        else {
            unreachable!("one receipt asked, one signed")
        };
        let receipt = issued.receipt.clone();
        let mut batch = Batch::new();
        batch.push(Op::PutReceipt(Box::new(issued)));
        batch.push(Op::Credit { account: beneficiary, amount: receipt.payload.credits, tasks: 1 });
        if let Err(e) = self.store.commit(batch).await {
            // Unpaid but not wronged in standing: the worker's answer was right.
            tracing::error!(%worker, error = %e, "could not commit a canary's receipt");
        } else {
            self.transition(|state| {
                state.credit(beneficiary, receipt.payload.credits, 1);
                state.counters.credits_issued += receipt.payload.credits;
                state.send(worker, ToWorker::Receipt(Box::new(receipt)), Instant::now());
            });
        }
        self.transition(|state| {
            state.counters.canaries_passed += 1;
            state.counters.results_accepted += 1;
            state.trust.valid(worker, beneficiary);
        });
        self.metrics.results_accepted.inc();
        self.metrics.canaries_passed.inc();
    }

    /// Takes the digest of an output the worker keeps for its peers, as [`Scheduler::take_result`]
    /// takes a result.
    pub fn take_digest(&self, worker: Address, digest: TaskDigest) -> Returned {
        let lease = digest.lease;
        self.transition(|state| {
            let expected = state
                .leases
                .get(lease)
                .and_then(|l| state.tasks.get(&l.task))
                .filter(|t| t.job.hand_off)
                .map(|t| t.spec.outputs().into_iter().map(|(_, _, size)| size).collect::<Vec<_>>());
            let answer = match expected.as_deref() {
                Some([size]) if *size == digest.size => Answer::Digest(digest.sha256),
                _ => Answer::Malformed,
            };
            state.on_result(worker, lease, answer, Instant::now())
        })
    }

    pub async fn on_failure(&self, worker: Address, lease: hyphae_proto::LeaseId, failure: TaskFailure) {
        tracing::info!(%worker, %lease, kind = ?failure.kind, message = %failure.message, "worker could not run a task");
        let failed = self
            .transition(|state| state.on_failure(worker, lease, &failure, self.config.max_failures, Instant::now()));
        if let Some((task, reason)) = failed {
            self.fail(task, reason).await;
        }
    }

    /// Runs the lease reaper until the process ends.
    pub async fn reap_expired_leases(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let hedge_after = self.config.hedge_after;
            let (expired, hedged) = self.transition(|state| {
                let now = Instant::now();
                let expired = state.expire(now);
                state.pairs.prune(now);
                let hedged =
                    state.hedge(now, hedge_after, |redundancy| quorum::Rule::for_redundancy(redundancy).max_replicas);
                (expired, hedged)
            });
            self.metrics.leases_expired.inc_by(expired as u64);
            self.metrics.tasks_hedged.inc_by(hedged as u64);
        }
    }

    async fn evaluate(&self, mut evaluate: ToEvaluate) {
        loop {
            let ToEvaluate { task, job, spec, required, mut results } = evaluate;
            let dtypes: Vec<_> = spec.outputs().into_iter().map(|(_, dtype, _)| dtype).collect();
            // However few replicas a trusted worker's task needed, a disagreement is settled
            // with the room the job's full redundancy gives.
            let rule = quorum::Rule {
                redundancy: required,
                max_replicas: quorum::Rule::for_redundancy(job.redundancy).max_replicas,
            };
            let size: u64 = spec.outputs().iter().map(|(_, _, size)| size).sum();
            // A spot check looks at every result's bytes, also those kept on their workers.
            let outputs = match job.check {
                Some(SelfCheck::Shard { .. }) => self.fetch_outputs(task, &mut results, size).await,
                _ => Vec::new(),
            };
            let mut voters = self.voters(&results);
            let judge = |voters: &[quorum::Voter], results: &[state::Replica]| {
                quorum::vote(voters, rule, |i, j| {
                    answers_match(&results[i].answer, &results[j].answer, &dtypes, &job.tolerance)
                })
            };
            let mut decision = match job.check {
                Some(check @ SelfCheck::Matmul(matmul)) => {
                    let passing = self.check_matmul(&spec, &results, matmul, &job.tolerance).await;
                    checks::checked(passing, &voters, rule, check.name())
                }
                Some(check @ SelfCheck::Shard { sequences }) => {
                    let passing = self.check_shard(&job, &spec, outputs, sequences).await;
                    checks::checked(passing, &voters, rule, check.name())
                }
                None => judge(&voters, &results),
            };
            // Digests only match bit for bit. Honest GPUs of different makes round differently,
            // so replicas that did not agree exactly are fetched and compared within tolerance.
            if job.check.is_none()
                && !matches!(decision, Decision::Accept { .. })
                && results.iter().any(|r| matches!(r.answer, Answer::Digest(_)))
            {
                self.fetch_digests(task, &mut results, size).await;
                voters = self.voters(&results);
                decision = judge(&voters, &results);
            }
            let (workers, fail) = match decision {
                Decision::Accept { canonical, agreeing } => {
                    self.accept(task, &job, &spec, results, canonical, agreeing).await;
                    return;
                }
                Decision::OneMore => (Vec::new(), None),
                Decision::Fail { reason } => {
                    (results.iter().map(|r| (r.worker, r.beneficiary)).collect::<Vec<_>>(), Some(reason))
                }
            };
            let replicas = results.len();
            match self.transition(|state| state.reconsider(task, results, fail, Instant::now())) {
                state::Next::Wait => {
                    tracing::info!(%task, replicas, "no quorum yet; waiting for more replicas");
                    return;
                }
                state::Next::Evaluate(next) => evaluate = next,
                state::Next::Fail(reason) => {
                    let elapsed_s = self.started.elapsed().as_secs();
                    let recheck = self.transition(|state| state.record_verdicts(task, &[], &workers, elapsed_s));
                    self.recheck(recheck);
                    self.metrics.results_rejected.inc_by(workers.len() as u64);
                    self.fail(task, reason).await;
                    return;
                }
            }
        }
    }

    /// Each result's worker as the vote counts it.
    fn voters(&self, results: &[state::Replica]) -> Vec<quorum::Voter> {
        self.transition(|state| {
            let voter = |r: &state::Replica| quorum::Voter {
                suspect: state.trust.suspect(&r.worker, &r.beneficiary),
                trusted: state.trust.trusted(&r.worker, &r.beneficiary),
            };
            results.iter().map(voter).collect()
        })
    }

    async fn accept(
        &self,
        task: TaskId,
        job: &Arc<JobShared>,
        spec: &Arc<TaskRecord>,
        results: Vec<state::Replica>,
        canonical: usize,
        agreeing: Vec<usize>,
    ) {
        let (data, output_sha256) = match &results[canonical].answer {
            Answer::Outputs(data) => {
                (data.clone(), hyphae_proto::frame::outputs_sha256(data.iter().map(|o| o.0.as_slice())))
            }
            // The output stays with the workers; the next shard fetches it from them.
            Answer::Digest(sha256) => (Vec::new(), *sha256),
            Answer::Malformed => unreachable!("a malformed answer matches nothing, so it never wins"),
        };
        let outputs: Vec<OutputData> = spec
            .outputs()
            .into_iter()
            .zip(data)
            .map(|((binding, dtype, _), data)| OutputData { binding, dtype, data })
            .collect();
        // A result checked again was paid when first accepted.
        let unpaid = agreeing.iter().filter(|&&i| results[i].paid.is_none());
        let receipts =
            self.receipts(job, task, output_sha256, unpaid.map(|&i| (results[i].worker, results[i].beneficiary))).await;
        // Workers holding exactly the canonical bytes first: they are the next shard's sources.
        let mut agreeing_first = agreeing.clone();
        agreeing_first.sort_by_key(|&i| !matches!(results[i].answer, Answer::Digest(d) if d == output_sha256));
        let accepted: Vec<Address> = agreeing_first.iter().map(|&i| results[i].worker).collect();
        let standing = |i: usize| (results[i].worker, results[i].beneficiary);
        // A result checked again earns its worker no new standing when it holds up: it was
        // counted when first accepted, and a caught worker must earn trust back with new work.
        let vouched: Vec<(Address, Address)> =
            agreeing_first.iter().filter(|&&i| results[i].paid.is_none()).map(|&i| standing(i)).collect();
        let refuted: Vec<(Address, Address)> =
            (0..results.len()).filter(|i| !agreeing.contains(i)).map(standing).collect();
        let rejected: Vec<Address> = refuted.iter().map(|(worker, _)| *worker).collect();
        if !rejected.is_empty() {
            tracing::warn!(%task, ?rejected, "results rejected: they disagree with the accepted majority");
        }

        let mut credits: BTreeMap<Address, (Credits, u64)> = BTreeMap::new();
        for Issued { receipt: r, .. } in &receipts {
            let e = credits.entry(r.payload.beneficiary).or_default();
            e.0 += r.payload.credits;
            e.1 += 1;
        }
        let mut batch = Batch::new();
        batch.push(Op::PutResult {
            task,
            result: Box::new(ResultRecord {
                outcome: Outcome::Completed,
                outputs,
                output_sha256: Some(output_sha256),
                verified_by: accepted.clone(),
                receipts: agreeing_first
                    .iter()
                    .filter_map(|&i| results[i].paid)
                    .chain(receipts.iter().map(|issued| issued.id))
                    .collect(),
                error: None,
                settled_at: crate::unix_ms(),
            }),
        });
        for issued in &receipts {
            batch.push(Op::PutReceipt(Box::new(issued.clone())));
        }
        for (account, (amount, tasks)) in credits {
            batch.push(Op::Credit { account, amount, tasks });
        }

        self.transition(|state| state.begin_settling(task, Instant::now()));
        let committed = self.store.commit(batch).await;
        let now = Instant::now();
        if let Err(e) = committed {
            tracing::error!(%task, error = %e, "could not commit a verified result; running the task again");
            self.transition(|state| state.retry(task, now));
            return;
        }
        let elapsed_s = self.started.elapsed().as_secs();
        let (finished, recheck) = self.transition(|state| {
            let recheck = state.record_verdicts(task, &vouched, &refuted, elapsed_s);
            // A wrong "known" answer would fail honest workers, so only answers the relay checked
            // itself (Freivalds) or vouched for by trusted workers alone become canaries: forging
            // one costs a colluding pair the time to earn trust first, and any check they fail
            // meanwhile starts them over. Checked answers are ground truth that no majority of
            // colluders can forge: as canaries they catch liars on any other work too.
            let known = job.check.is_some_and(|check| check.covers_whole_result())
                || vouched.iter().all(|(worker, beneficiary)| state.trust.trusted(worker, beneficiary));
            if let Answer::Outputs(outputs) = &results[canonical].answer
                && known
            {
                let owners = accepted.iter().filter_map(|a| state.workers.get(a).map(Worker::owner)).collect();
                state.canaries.learn(task, job, spec, outputs, owners);
            }
            for Issued { receipt, .. } in receipts {
                state.credit(receipt.payload.beneficiary, receipt.payload.credits, 1);
                state.counters.credits_issued += receipt.payload.credits;
                state.send(receipt.payload.worker, ToWorker::Receipt(Box::new(receipt)), now);
            }
            (state.settled(task, true, elapsed_s), recheck)
        });
        self.recheck(recheck);
        self.metrics.tasks_verified.inc();
        self.metrics.results_accepted.inc_by(accepted.len() as u64);
        self.metrics.results_rejected.inc_by(rejected.len() as u64);
        if let Some(record) = finished {
            self.finish(record).await;
        }
    }

    /// Canaries given so far to workers caught lying, in place of real work.
    pub fn canaries_in_quarantine(&self) -> u64 {
        self.lock().counters.canaries_in_quarantine
    }

    /// Settled tasks being checked again now.
    pub fn rechecks_open(&self) -> usize {
        self.lock().tasks.values().filter(|t| t.recheck).count()
    }

    /// Runs again the tasks a worker just caught had vouched for alone (see [`State::recheck`]).
    fn recheck(&self, tasks: Vec<(TaskId, Address)>) {
        if tasks.is_empty() {
            return;
        }
        tracing::warn!(count = tasks.len(), "checking again the results a caught worker vouched for");
        for (task, caught) in tasks {
            match self.reopen(task, caught) {
                Ok(true) => {
                    self.metrics.rechecks.inc();
                }
                Ok(false) => {}
                Err(e) => tracing::error!(%task, error = %e, "could not read a task to check it again"),
            }
        }
    }

    /// Reopens a settled kernel task with its stored result as the replica of `caught`, the
    /// worker caught since; none of the workers who vouched for it takes part again.
    fn reopen(&self, task: TaskId, caught: Address) -> Result<bool, StoreError> {
        let (Some(record), Some(spec), Some(result)) =
            (self.store.job(task.job)?, self.store.task(task)?, self.store.result(task)?)
        else {
            return Ok(false);
        };
        // Matmul-checked results were checked by the relay itself; outputs kept on workers for a
        // next shard are gone with the request that needed them.
        let check = self.store.check(task.job)?.map(|c| SelfCheck::Matmul(c.matmul));
        let rerunnable = matches!(record.work, JobWork::Kernel { .. }) && check.is_none() && !result.outputs.is_empty();
        if result.outcome != Outcome::Completed || !rerunnable || !result.verified_by.contains(&caught) {
            return Ok(false);
        }
        let mut paid = None;
        for id in &result.receipts {
            if let Some(receipt) = self.store.receipt(*id)?.filter(|r| r.payload.worker == caught) {
                paid = Some(receipt);
                break;
            }
        }
        let beneficiary = paid.as_ref().map_or(caught, |r| r.payload.beneficiary);
        let answer = Answer::Outputs(result.outputs.into_iter().map(|o| o.data).collect());
        let stored = state::Replica { worker: caught, beneficiary, answer, paid: paid.map(|r| r.id()) };
        let shared = shared_of(&record, false, check);
        let vouchers = result.verified_by;
        Ok(self.transition(|state| state.recheck(shared, Arc::new(spec), stored, &vouchers, Instant::now())))
    }

    /// Fails a task loudly, and with it its job.
    async fn fail(&self, task: TaskId, reason: String) {
        if self.transition(|state| state.drop_recheck(task, Instant::now())) {
            tracing::warn!(%task, %reason, "checking a result again reached no verdict; the stored result stands");
            return;
        }
        tracing::warn!(%task, %reason, "task failed; failing its job");
        let mut batch = Batch::new();
        batch.push(Op::PutResult {
            task,
            result: Box::new(ResultRecord {
                outcome: Outcome::Failed,
                outputs: Vec::new(),
                output_sha256: None,
                verified_by: Vec::new(),
                receipts: Vec::new(),
                error: Some(reason.clone()),
                settled_at: crate::unix_ms(),
            }),
        });
        let record =
            self.transition(|state| state.fail_job(task.job, format!("task {task}: {reason}"), Instant::now()));
        self.metrics.tasks_failed.inc();
        if let Some(record) = &record {
            batch.push(Op::PutJob(Box::new(record.clone())));
        }
        if let Err(e) = self.store.commit(batch).await {
            tracing::error!(%task, error = %e, "could not record a task failure");
        }
        if let Some(record) = &record {
            self.notify(record);
        }
    }

    async fn finish(&self, record: JobRecord) {
        let id = record.id;
        let mut batch = Batch::new();
        batch.push(Op::PutJob(Box::new(record.clone())));
        if let Err(e) = self.store.commit(batch).await {
            tracing::error!(job = %id, error = %e, "could not record a finished job");
        }
        self.notify(&record);
    }

    /// The job's live status, or its stored one once it left the scheduler.
    pub fn job_info(&self, id: JobId) -> Result<Option<JobInfo>, StoreError> {
        {
            let state = self.lock();
            if let Some(active) = state.jobs.get(&id) {
                return Ok(Some(info_of(&active.record, active.counts())));
            }
        }
        Ok(self.store.job(id)?.map(|record| {
            let counts = TaskCounts {
                total: record.task_count,
                queued: record.task_count - record.completed - record.failed,
                running: 0,
                completed: record.completed,
                failed: record.failed,
            };
            info_of(&record, counts)
        }))
    }

    /// Which of the job's tasks in `range` have a replica out or answered, for the results page.
    pub fn started_tasks(&self, job: JobId, range: std::ops::Range<u32>) -> std::collections::HashSet<u32> {
        let state = self.lock();
        if !state.jobs.contains_key(&job) {
            return Default::default();
        }
        range.filter(|&index| state.tasks.get(&TaskId { job, index }).is_some_and(|t| t.started)).collect()
    }

    /// Workers connected now.
    pub fn worker_count(&self) -> usize {
        self.lock().workers.len()
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        let state = self.lock();
        let mut workers: Vec<WorkerInfo> = state
            .workers
            .iter()
            .map(|(address, w)| {
                let rep = state.trust.worker(address);
                WorkerInfo {
                    address: *address,
                    beneficiary: w.beneficiary,
                    platform: w.platform,
                    adapter: w.adapter.clone(),
                    agent: w.agent.clone(),
                    connected_at: w.connected_at,
                    in_flight: w.in_flight,
                    max_in_flight: w.max_in_flight,
                    accepted: rep.accepted,
                    rejected: rep.rejected,
                    consecutive_valid: rep.consecutive_valid,
                    caught_after: rep.caught_after,
                    shards: w.shards.iter().map(|(model, i, n)| format!("{model} {}/{n}", i + 1)).collect(),
                }
            })
            .collect();
        workers.sort_by_key(|w| w.connected_at);
        workers
    }

    pub fn stats(&self) -> Stats {
        let state = self.lock();
        let uptime_s = self.started.elapsed().as_secs();
        let mut workers = WorkerCounts::default();
        for w in state.workers.values() {
            workers.online += 1;
            match w.platform {
                Platform::Native => workers.native += 1,
                Platform::Browser => workers.browser += 1,
            }
        }
        // Queued and running: now. Completed and failed: the relay's whole history.
        let mut jobs = hyphae_proto::api::JobCounts {
            completed: state.counters.jobs_completed as u32,
            failed: state.counters.jobs_failed as u32,
            ..Default::default()
        };
        let mut tasks = TaskCounts {
            completed: state.counters.tasks_verified as u32,
            failed: state.counters.tasks_failed as u32,
            ..Default::default()
        };
        for job in state.jobs.values() {
            match job.record.status {
                JobStatus::Queued => jobs.queued += 1,
                _ => jobs.running += 1,
            }
            let c = job.counts();
            tasks.queued += c.queued;
            tasks.running += c.running;
        }
        tasks.total = tasks.queued + tasks.running + tasks.completed + tasks.failed;
        let (verified_history, rejected_history) = state.counters.history.series(uptime_s);
        // The last ten whole seconds (fewer just after start).
        let window = 10.min(uptime_s.max(1)) as usize;
        let verified: u32 = verified_history[verified_history.len() - window..].iter().sum();
        let recent_jobs = state
            .recent
            .iter()
            .map(|r| {
                let (status, completed, failed) = match state.jobs.get(&r.id) {
                    Some(active) => (active.record.status, active.record.completed, active.record.failed),
                    None => (r.status, r.completed, r.failed),
                };
                let id = r.id.to_string();
                JobSummary {
                    id: format!("{}…", &id[..10]),
                    status,
                    tasks: r.tasks,
                    completed,
                    failed,
                    created_at: r.created_at,
                }
            })
            .collect();
        let mut earners: Vec<Earner> = state
            .earnings
            .iter()
            .map(|(address, e)| Earner { address: *address, earned: e.earned, verified_tasks: e.verified_tasks })
            .collect();
        let top = 10.min(earners.len());
        if top > 0 {
            earners.select_nth_unstable_by(top - 1, |a, b| b.earned.cmp(&a.earned).then(a.address.cmp(&b.address)));
        }
        earners.truncate(top);
        earners.sort_by(|a, b| b.earned.cmp(&a.earned).then(a.address.cmp(&b.address)));
        Stats {
            uptime_s,
            workers,
            jobs,
            tasks,
            results_accepted: state.counters.results_accepted,
            results_rejected: state.counters.results_rejected,
            verified_per_s: f64::from(verified) / window as f64,
            credits_issued: state.counters.credits_issued,
            verified_history,
            rejected_history,
            recent_jobs,
            top_beneficiaries: earners,
            models: Default::default(),
            transport: state.traffic.clone(),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

fn shared_of(record: &JobRecord, hand_off: bool, check: Option<SelfCheck>) -> Arc<JobShared> {
    let entry = match &record.work {
        JobWork::Kernel { entry_point, workgroup_size, workgroup_storage, .. } => Some(EntryPointInfo {
            name: entry_point.clone(),
            stage: "compute".into(),
            workgroup_size: *workgroup_size,
            workgroup_storage: *workgroup_storage,
        }),
        JobWork::Shard { .. } => None,
    };
    Arc::new(JobShared {
        id: record.id,
        work: record.work.clone(),
        entry,
        tolerance: record.tolerance,
        redundancy: record.redundancy,
        credits_per_task: record.credits_per_task,
        hand_off,
        check,
    })
}

fn info_of(record: &JobRecord, tasks: TaskCounts) -> JobInfo {
    JobInfo {
        id: record.id,
        kind: record.work.kind().into(),
        status: record.status,
        tasks,
        redundancy: record.redundancy,
        credits_per_task: record.credits_per_task,
        created_at: record.created_at,
        started_at: record.started_at,
        finished_at: record.finished_at,
        error: record.error.clone(),
    }
}

/// The worker's outputs in binding order if they have exactly the task's output shape; `None`
/// (a result that can never match) otherwise.
fn shaped_outputs(
    state: &State,
    lease: hyphae_proto::LeaseId,
    given: Vec<hyphae_proto::frame::Output>,
) -> Option<Vec<Bytes>> {
    let task = state.leases.get(lease)?.task;
    // A canary's task is usually settled and gone from the live tasks: its shape is the known one.
    let spec = match state.canaries.spec_of(lease) {
        Some(spec) => spec,
        None => &state.tasks.get(&task)?.spec,
    };
    let mut given = given.into_iter();
    let mut outputs = Vec::new();
    for (binding, _, size) in spec.outputs() {
        let o = given.next()?;
        if o.binding != binding || o.data.0.len() as u64 != size {
            return None;
        }
        outputs.push(o.data);
    }
    if given.next().is_some() {
        return None;
    }
    Some(outputs)
}

fn answers_match(a: &Answer, b: &Answer, dtypes: &[hyphae_proto::Dtype], tolerance: &Tolerance) -> bool {
    let digest_of = |outputs: &[Bytes]| hyphae_proto::frame::outputs_sha256(outputs.iter().map(|o| o.0.as_slice()));
    match (a, b) {
        (Answer::Outputs(a), Answer::Outputs(b)) => tolerance::outputs_match(a, b, dtypes, tolerance),
        (Answer::Digest(a), Answer::Digest(b)) => a == b,
        (Answer::Digest(d), Answer::Outputs(o)) | (Answer::Outputs(o), Answer::Digest(d)) => *d == digest_of(o),
        (Answer::Malformed, _) | (_, Answer::Malformed) => false,
    }
}

/// Bytes of activations in a shard result that feeds another shard (a full output, not a
/// digest): what peer-to-peer hand-off saves the relay.
fn carried_activations(state: &State, lease: hyphae_proto::LeaseId, outputs: &[Bytes]) -> Option<u64> {
    if state.canaries.spec_of(lease).is_some() {
        return None;
    }
    let task = state.tasks.get(&state.leases.get(lease)?.task)?;
    match &task.job.work {
        JobWork::Shard { shard, .. } if !shard.pooling => Some(outputs.iter().map(|o| o.0.len() as u64).sum()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use hyphae_proto::SecretKey;

    use super::*;
    use crate::store::SledStore;

    fn result() -> ResultRecord {
        ResultRecord {
            outcome: Outcome::Completed,
            outputs: Vec::new(),
            output_sha256: None,
            verified_by: Vec::new(),
            receipts: Vec::new(),
            error: None,
            settled_at: 0,
        }
    }

    // A crash between the last task's result and the job's final record must not leave the job
    // running forever with nothing left to run.
    #[tokio::test]
    async fn restore_finishes_a_job_whose_tasks_all_settled_before_the_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let (done, half) = (JobId([1; 12]), JobId([2; 12]));
        let mut batch = Batch::new();
        for (id, settled) in [(done, 2), (half, 1)] {
            batch.push(Op::PutJob(Box::new(JobRecord::for_test(id, 2, 2))));
            let tasks = (0..2).map(|index| {
                Arc::new(TaskRecord {
                    index,
                    body: crate::store::records::TaskBody::Kernel { workgroups: [1, 1, 1], bindings: Vec::new() },
                })
            });
            batch.push(Op::PutTasks { job: id, tasks: tasks.collect() });
            for index in 0..settled {
                batch.push(Op::PutResult { task: TaskId { job: id, index }, result: Box::new(result()) });
            }
        }
        store.commit(batch).await.unwrap();

        let signer = Arc::new(Signer::new(SecretKey::random(&mut rand::thread_rng())));
        let blobs = Arc::new(BlobStore::open(dir.path()).unwrap());
        let scheduler =
            Scheduler::new(store.clone(), blobs, signer, Arc::new(Metrics::new()), SchedulerConfig::default());
        assert_eq!(scheduler.restore().await.unwrap(), 1, "only the unsettled task is re-queued");

        let finished = scheduler.job_info(done).unwrap().unwrap();
        assert_eq!(finished.status, JobStatus::Completed);
        assert_eq!(store.job(done).unwrap().unwrap().status, JobStatus::Completed, "not written back");
        let running = scheduler.job_info(half).unwrap().unwrap();
        assert_eq!((running.status, running.tasks.completed, running.tasks.queued), (JobStatus::Queued, 1, 1));
        assert_eq!(scheduler.stats().tasks.completed, 3);
    }

    fn scheduler(dir: &std::path::Path) -> Arc<Scheduler> {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
        let signer = Arc::new(Signer::new(SecretKey::random(&mut rand::thread_rng())));
        let blobs = Arc::new(BlobStore::open(dir).unwrap());
        Arc::new(Scheduler::new(store, blobs, signer, Arc::new(Metrics::new()), SchedulerConfig::default()))
    }

    /// An answer to judge for a task the scheduler no longer holds: judging it ends at once.
    fn answer(hand_off: bool) -> Returned {
        let id = JobId([9; 12]);
        let record = JobRecord::for_test(id, 1, 2);
        let job = Arc::new(JobShared {
            id,
            work: record.work,
            entry: None,
            tolerance: Default::default(),
            redundancy: 2,
            credits_per_task: Credits::whole(1),
            hand_off,
            check: None,
        });
        let body = crate::store::records::TaskBody::Kernel { workgroups: [1, 1, 1], bindings: Vec::new() };
        let spec = Arc::new(TaskRecord { index: 0, body });
        Returned::Evaluate(ToEvaluate {
            task: TaskId { job: id, index: 0 },
            job,
            spec,
            required: 2,
            results: Vec::new(),
        })
    }

    #[tokio::test]
    async fn a_reader_waits_for_room_while_too_many_answers_await_verification() {
        let dir = tempfile::tempdir().unwrap();
        let scheduler = scheduler(dir.path());
        let full = scheduler.judging.clone().acquire_many_owned(MAX_JUDGING as u32).await.unwrap();
        let reader = tokio::spawn({
            let scheduler = scheduler.clone();
            async move { scheduler.judge_later(answer(false)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!reader.is_finished(), "an answer was taken in with no room to verify it");
        drop(full);
        tokio::time::timeout(Duration::from_secs(10), reader).await.expect("room was made").unwrap();

        // Judging that may wait on workers' own frames takes no room: a reader held up here
        // could be the one whose frames that judge waits for.
        let _full = scheduler.judging.clone().acquire_many_owned(MAX_JUDGING as u32).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), scheduler.judge_later(answer(true)))
            .await
            .expect("a hand-off answer waited for room");
    }
}
