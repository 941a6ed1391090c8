//! Durable state: jobs, tasks, results, accounts, receipts and API keys behind the small [`Store`]
//! trait (sled today; redb or fjall could take its place), and content-addressed blobs as files.
//!
//! **Architecture invariant:** every write goes through [`Store::commit`], whose future resolves
//! only once the batch is on disk. Whatever the relay acknowledges (a `201` to a client, a receipt
//! to a worker) is committed first, so `kill -9` loses nothing acknowledged. Batches are applied
//! atomically, and commits that arrive together share one flush (group commit).

pub mod blobs;
mod chunks;
pub mod records;
mod sled;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyphae_proto::{Address, Credits, Issued, JobId, ReceiptId, Sha256, SignedReceipt, TaskId};

pub use self::sled::SledStore;
use records::{
    AccountRecord, ApiKeyRecord, CheckRecord, JobRecord, LedgerRecord, ModelRecord, PayerRecord, ResultRecord,
    TaskRecord,
};

/// The account of an API key created without one: the last 20 bytes of the SHA-256 of the key's
/// hash, so it is stable and nobody holds its private key (it can only be granted credits).
pub fn key_account(hash: &Sha256) -> Address {
    let derived = Sha256::of(&hash.0);
    Address(derived.0[12..].try_into().expect("32 - 12 = 20 bytes"))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data directory {path} is in use by another hyphae process (stop the running relay first)")]
    Locked { path: String },
    #[error("storage failure: {0}")]
    Io(String),
    #[error("corrupt {what} record: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("the store is closed")]
    Closed,
    #[error("account {account} has {balance} credits; this needs {needed}")]
    InsufficientCredits { account: Address, balance: Credits, needed: Credits },
}

/// One atomic group of writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub ops: Vec<Op>,
}

#[derive(Debug)]
pub enum Op {
    PutJob(Box<JobRecord>),
    PutTasks {
        job: JobId,
        tasks: Vec<Arc<TaskRecord>>,
    },
    PutResult {
        task: TaskId,
        result: Box<ResultRecord>,
    },
    /// Stores the receipt under its id and indexes it under its beneficiary.
    PutReceipt(Box<Issued>),
    /// Adds to an account's balance, earnings and verified-task count.
    Credit {
        account: Address,
        amount: Credits,
        tasks: u64,
    },
    /// Adds credits the operator grants to an account's balance.
    Grant {
        account: Address,
        amount: Credits,
    },
    /// Takes credits from an account's balance; the whole batch fails with
    /// [`StoreError::InsufficientCredits`] when the balance is short.
    Spend {
        account: Address,
        amount: Credits,
    },
    /// Who paid for a job (and may read it).
    PutPayer {
        job: JobId,
        payer: PayerRecord,
    },
    /// How the relay checks a job's results itself.
    PutCheck {
        job: JobId,
        check: CheckRecord,
    },
    PutModel(Box<ModelRecord>),
    /// An API key (by hash) and the account its jobs are paid from.
    PutApiKey {
        hash: Sha256,
        record: ApiKeyRecord,
        account: Address,
    },
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn push(&mut self, op: Op) -> &mut Batch {
        self.ops.push(op);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub type Commit = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A page of receipts and the cursor of the next page.
pub type ReceiptPage = (Vec<SignedReceipt>, Option<u64>);

pub trait Store: Send + Sync + 'static {
    /// Applies `batch` atomically; resolves once it is durable.
    fn commit(&self, batch: Batch) -> Commit;

    fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;
    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    fn check(&self, job: JobId) -> Result<Option<CheckRecord>, StoreError>;
    /// The account that paid for a job; `None` for the relay's own jobs and for jobs stored
    /// before payers were.
    fn payer(&self, job: JobId) -> Result<Option<PayerRecord>, StoreError>;
    fn tasks(&self, job: JobId) -> Result<Vec<TaskRecord>, StoreError>;
    fn task(&self, task: TaskId) -> Result<Option<TaskRecord>, StoreError>;
    fn result(&self, task: TaskId) -> Result<Option<ResultRecord>, StoreError>;
    /// Settled tasks of a job with index in `[from, from + limit)`.
    fn results(&self, job: JobId, from: u32, limit: u32) -> Result<Vec<(u32, ResultRecord)>, StoreError>;
    fn account(&self, address: Address) -> Result<Option<AccountRecord>, StoreError>;
    fn accounts(&self) -> Result<Vec<(Address, AccountRecord)>, StoreError>;
    fn receipt(&self, id: ReceiptId) -> Result<Option<SignedReceipt>, StoreError>;
    /// Receipts earned by `beneficiary`, oldest first, after cursor `after`.
    fn receipts_of(&self, beneficiary: Address, after: Option<u64>, limit: usize) -> Result<ReceiptPage, StoreError>;
    fn api_key(&self, hash: &Sha256) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// The account that pays for a key's jobs: the one it was created with, or, for keys made
    /// before accounts paid, one derived from the key's hash ([`key_account`]).
    fn api_key_account(&self, hash: &Sha256) -> Result<Address, StoreError>;
    fn ledger(&self, account: Address) -> Result<LedgerRecord, StoreError>;
    /// Every receipt.
    fn all_receipts(&self) -> Result<Vec<SignedReceipt>, StoreError>;
    fn models(&self) -> Result<Vec<ModelRecord>, StoreError>;
    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
}
