//! Durable state: jobs, tasks, results, accounts, receipts and API keys behind the small [`Store`]
//! trait (sled today; redb or fjall could take its place), and content-addressed blobs as files.
//!
//! **Architecture invariant:** every write goes through [`Store::commit`], whose future resolves
//! only once the batch is on disk. Whatever the relay acknowledges (a `201` to a client, a receipt
//! to a worker) is committed first, so `kill -9` loses nothing acknowledged. Batches are applied
//! atomically, and commits that arrive together share one flush (group commit).

pub mod blobs;
pub mod records;
mod sled;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyphae_proto::{Address, Credits, JobId, ReceiptId, Sha256, SignedReceipt, TaskId};

pub use self::sled::SledStore;
use records::{AccountRecord, ApiKeyRecord, JobRecord, ModelRecord, ResultRecord, TaskRecord};

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
    /// Stores the receipt and indexes it under its beneficiary.
    PutReceipt(Box<SignedReceipt>),
    /// Adds to an account's balance, earnings and verified-task count.
    Credit {
        account: Address,
        amount: Credits,
        tasks: u64,
    },
    PutModel(Box<ModelRecord>),
    PutApiKey {
        hash: Sha256,
        record: ApiKeyRecord,
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
    fn tasks(&self, job: JobId) -> Result<Vec<TaskRecord>, StoreError>;
    fn result(&self, task: TaskId) -> Result<Option<ResultRecord>, StoreError>;
    /// Settled tasks of a job with index in `[from, from + limit)`.
    fn results(&self, job: JobId, from: u32, limit: u32) -> Result<Vec<(u32, ResultRecord)>, StoreError>;
    fn account(&self, address: Address) -> Result<Option<AccountRecord>, StoreError>;
    fn accounts(&self) -> Result<Vec<(Address, AccountRecord)>, StoreError>;
    fn receipt(&self, id: ReceiptId) -> Result<Option<SignedReceipt>, StoreError>;
    /// Receipts earned by `beneficiary`, oldest first, after cursor `after`.
    fn receipts_of(&self, beneficiary: Address, after: Option<u64>, limit: usize) -> Result<ReceiptPage, StoreError>;
    fn api_key(&self, hash: &Sha256) -> Result<Option<ApiKeyRecord>, StoreError>;
    fn models(&self) -> Result<Vec<ModelRecord>, StoreError>;
    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
}
