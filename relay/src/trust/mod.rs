//! How much the relay believes each worker (DESIGN.md §4), and what that belief buys: how many
//! replicas a task needs, how many tasks a worker may hold, and which results were accepted on
//! one worker's word (to check again should that worker ever be caught lying).
//!
//! Standing is kept per worker key **and** per beneficiary: keys are free to make, so a fresh key
//! earns nothing from its siblings, and one bad result from any key of a beneficiary costs every
//! key of that beneficiary its trust.
//!
//! **Architecture invariant:** pure, like `verify`. No socket, store or clock; randomness comes
//! from the caller's generator, so the scheduler and the `bench trust` simulation run the very
//! same policy.

mod standing;

use foldhash::{HashMap, HashMapExt};

use hyphae_proto::{Address, TaskId};
use rand::Rng;

pub use standing::Standing;

#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// Whether a trusted worker's tasks may go unreplicated at all (the default). Off, every
    /// task gets the job's full redundancy.
    pub adaptive: bool,
    /// Consecutive valid results (of the worker and of its beneficiary) after which a worker is
    /// trusted: its tasks are replicated with probability `(trusted_after / consecutive)³`, after
    /// BOINC's adaptive replication, so the longer a worker's record the rarer the check.
    pub trusted_after: u64,
    /// Replication never drops below this probability, however long the record: a worker that
    /// turns can never count on going unchecked.
    pub min_check: f64,
    /// How many of a worker's latest accepted results are kept, to be checked again if it is
    /// caught: those accepted on its word alone, and those it agreed on with a partner who may
    /// be colluding.
    pub remember_vouched: usize,
    /// Leases a worker starts with, and the least it falls to.
    pub quota_floor: u32,
    /// The share of dispatches that are canaries (tasks whose answer the relay knows), while
    /// there is real work to mix them into.
    pub canary_rate: f64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            adaptive: true,
            trusted_after: 10,
            min_check: 0.03,
            remember_vouched: 256,
            quota_floor: 2,
            canary_rate: 0.02,
        }
    }
}

/// Every worker's and beneficiary's standing.
#[derive(Debug, Default)]
pub struct Trust {
    pub config: TrustConfig,
    workers: HashMap<Address, Standing>,
    beneficiaries: HashMap<Address, Standing>,
}

impl Trust {
    pub fn new(config: TrustConfig) -> Trust {
        Trust { config, workers: HashMap::new(), beneficiaries: HashMap::new() }
    }

    pub fn worker(&self, worker: &Address) -> Standing {
        self.workers.get(worker).cloned().unwrap_or_default()
    }

    pub fn beneficiary(&self, beneficiary: &Address) -> Standing {
        self.beneficiaries.get(beneficiary).cloned().unwrap_or_default()
    }

    /// The record a worker is judged by: the shorter of its own and its beneficiary's.
    pub fn record(&self, worker: &Address, beneficiary: &Address) -> u64 {
        let own = self.workers.get(worker).map_or(0, |s| s.consecutive_valid);
        let shared = self.beneficiaries.get(beneficiary).map_or(0, |s| s.consecutive_valid);
        own.min(shared)
    }

    /// Whether `worker` has been caught (it or its beneficiary) and not yet earned trust back.
    /// Suspects alone never make a quorum: two colluders agreeing prove nothing.
    pub fn suspect(&self, worker: &Address, beneficiary: &Address) -> bool {
        let caught = self.workers.get(worker).is_some_and(|s| s.rejected > 0)
            || self.beneficiaries.get(beneficiary).is_some_and(|s| s.rejected > 0);
        caught && self.record(worker, beneficiary) < self.config.trusted_after
    }

    /// Whether `worker` is trusted: a record of at least `trusted_after` valid results in a row.
    pub fn trusted(&self, worker: &Address, beneficiary: &Address) -> bool {
        self.record(worker, beneficiary) >= self.config.trusted_after
    }

    /// How many agreeing results a task needs when `worker` is the first to run it: the job's
    /// `redundancy`, or 1 when the worker is trusted and this task is not drawn for a check.
    pub fn replicas_for(&self, worker: &Address, beneficiary: &Address, redundancy: u32, rng: &mut impl Rng) -> u32 {
        if !self.config.adaptive || redundancy <= 1 {
            return redundancy;
        }
        let record = self.record(worker, beneficiary);
        if record < self.config.trusted_after {
            return redundancy;
        }
        // BOINC checks with probability 1/N; cubed, the checks thin out faster as a record
        // grows (measured with `cargo xtask bench trust`), and a lie slipping through unchecked is
        // still found when its worker is caught and its results are checked again.
        let ratio = self.config.trusted_after as f64 / record as f64;
        let check = ratio.powi(3).max(self.config.min_check);
        if rng.gen_bool(check.min(1.0)) { redundancy } else { 1 }
    }

    /// How many leases `worker` may hold: what it asked for, capped by what it has earned. A
    /// worker starts at the floor and gains one lease per `trusted_after` valid results in a row.
    pub fn quota(&self, worker: &Address, asked: u32) -> u32 {
        let record = self.workers.get(worker).map_or(0, |s| s.consecutive_valid);
        let earned = self.config.quota_floor as u64 + record / self.config.trusted_after.max(1);
        asked.min(earned.min(u32::MAX as u64) as u32)
    }

    /// A result of `worker` agreed with the accepted one (or with a canary's known answer).
    pub fn valid(&mut self, worker: Address, beneficiary: Address) {
        self.workers.entry(worker).or_default().valid();
        self.beneficiaries.entry(beneficiary).or_default().valid();
    }

    /// A result of `worker` was wrong. Its trust and its beneficiary's start over, and the
    /// results it vouched for lately are handed back to be checked again.
    pub fn invalid(&mut self, worker: Address, beneficiary: Address) -> Vec<TaskId> {
        self.beneficiaries.entry(beneficiary).or_default().invalid();
        let standing = self.workers.entry(worker).or_default();
        standing.invalid();
        standing.vouched.drain(..).collect()
    }

    /// `worker`'s result for `task` was accepted.
    pub fn vouched(&mut self, worker: Address, task: TaskId) {
        let keep = self.config.remember_vouched;
        let vouched = &mut self.workers.entry(worker).or_default().vouched;
        if vouched.len() == keep {
            vouched.pop_front();
        }
        if keep > 0 {
            vouched.push_back(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use hyphae_proto::{JobId, SecretKey};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn address() -> Address {
        SecretKey::random(&mut rand::thread_rng()).address()
    }

    fn adaptive() -> Trust {
        Trust::new(TrustConfig { adaptive: true, ..TrustConfig::default() })
    }

    fn task(index: u32) -> TaskId {
        TaskId { job: JobId([1; 12]), index }
    }

    #[test]
    fn a_new_worker_gets_full_redundancy() {
        let trust = adaptive();
        let mut rng = StdRng::seed_from_u64(1);
        let (w, b) = (address(), address());
        assert!((0..100).all(|_| trust.replicas_for(&w, &b, 2, &mut rng) == 2));
    }

    #[test]
    fn a_long_record_is_checked_rarely_but_never_never() {
        let mut trust = adaptive();
        let (w, b) = (address(), address());
        for _ in 0..1_000 {
            trust.valid(w, b);
        }
        let mut rng = StdRng::seed_from_u64(2);
        let checked = (0..10_000).filter(|_| trust.replicas_for(&w, &b, 2, &mut rng) == 2).count();
        // (trusted_after / record)³ is one in a million, below the 3% floor.
        assert!((220..380).contains(&checked), "{checked} of 10000 checked");
    }

    #[test]
    fn one_wrong_result_resets_trust_and_returns_what_it_vouched_for() {
        let mut trust = adaptive();
        let (w, b) = (address(), address());
        for i in 0..20 {
            trust.valid(w, b);
            trust.vouched(w, task(i));
        }
        assert_eq!(trust.record(&w, &b), 20);
        let recheck = trust.invalid(w, b);
        assert_eq!(recheck.len(), 20);
        assert_eq!(trust.record(&w, &b), 0);
        assert!(trust.invalid(w, b).is_empty(), "handed back once");
    }

    #[test]
    fn a_fresh_key_of_a_beneficiary_caught_lying_is_not_trusted_on_its_own_record() {
        let mut trust = adaptive();
        let (old, fresh, b) = (address(), address(), address());
        for _ in 0..50 {
            trust.valid(old, b);
        }
        trust.invalid(fresh, b);
        assert_eq!(trust.record(&old, &b), 0, "the beneficiary's record starts over too");
        assert_eq!(trust.record(&fresh, &b), 0);
    }

    #[test]
    fn a_caught_worker_is_suspect_until_it_earns_trust_back() {
        let mut trust = adaptive();
        let (w, b, fresh) = (address(), address(), address());
        assert!(!trust.suspect(&fresh, &fresh), "a newcomer is not a suspect");
        trust.invalid(w, b);
        assert!(trust.suspect(&w, &b));
        for _ in 0..10 {
            trust.valid(w, b);
        }
        assert!(!trust.suspect(&w, &b) && trust.trusted(&w, &b));
    }

    #[test]
    fn quotas_grow_with_valid_results_and_fall_on_one_error() {
        let mut trust = adaptive();
        let (w, b) = (address(), address());
        assert_eq!(trust.quota(&w, 4), 2);
        for _ in 0..20 {
            trust.valid(w, b);
        }
        assert_eq!(trust.quota(&w, 4), 4);
        assert_eq!(trust.quota(&w, 2), 2, "never more than the worker asked for");
        trust.invalid(w, b);
        assert_eq!(trust.quota(&w, 4), 2);
    }

    #[test]
    fn only_the_latest_vouched_results_are_remembered() {
        let mut trust = Trust::new(TrustConfig { remember_vouched: 3, ..TrustConfig::default() });
        let (w, b) = (address(), address());
        for i in 0..5 {
            trust.vouched(w, task(i));
        }
        assert_eq!(trust.invalid(w, b), vec![task(2), task(3), task(4)]);
    }

    #[test]
    fn without_adaptive_replication_everything_gets_the_job_redundancy() {
        let mut trust = Trust::new(TrustConfig { adaptive: false, ..TrustConfig::default() });
        let (w, b) = (address(), address());
        for _ in 0..100 {
            trust.valid(w, b);
        }
        let mut rng = StdRng::seed_from_u64(3);
        assert!((0..100).all(|_| trust.replicas_for(&w, &b, 3, &mut rng) == 3));
    }
}
