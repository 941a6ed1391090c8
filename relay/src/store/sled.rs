//! The sled implementation of [`Store`]: one tree with a one-byte key prefix per record kind. A
//! single committer thread takes every batch waiting (a group), works out each batch's writes
//! against the tree as the group's earlier batches left it, drops a batch that fails (a spend
//! over the balance) whole, and writes the rest as one atomic `apply_batch`, then flushes once.
//! Being the only writer makes read-modify-writes (balances, the receipt sequence) race-free
//! without sled's transactions, which cost more than the writes themselves, and lets it remember
//! the values it read and wrote last (accounts, ledgers, the sequence) instead of reading them
//! back from the tree.
//!
//! What a write costs in sled 0.34 is mostly whether its key is new: a leaf splits past 16 keys,
//! and every split rewrites both halves and the index node above (up to 256 children) into the
//! log. Measured on the 2-core VM (groups of 256 writes, one flush each, on a tree of 100,000
//! keys): a new key, in order or at random, 12-18 µs; a new value for an existing key 3-5 µs,
//! even at 3-6 KB. A verified task writes three new keys (its result, its receipt, the receipt's
//! place in its beneficiary's list) and updates one (the account): about 33 µs of the
//! committer's time, the largest single cost of verifying a task.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use hyphae_proto::{Address, Issued, JobId, ReceiptId, Sha256, SignedReceipt, TaskId};
use tokio::sync::oneshot;

use super::records::{
    self, AccountRecord, ApiKeyRecord, CheckRecord, JobRecord, LedgerRecord, ModelRecord, PayerRecord, ResultRecord,
    TaskChunk, TaskRecord,
};
use super::{Batch, Commit, Op, ReceiptPage, Store, StoreError, key_account};

const JOB: u8 = b'j';
/// One task per record, as written before chunks.
const TASK: u8 = b't';
/// A [`TaskChunk`] under its job and its first task's index.
const TASK_CHUNK: u8 = b'T';
const RESULT: u8 = b'r';
const ACCOUNT: u8 = b'a';
const RECEIPT: u8 = b'c';
const RECEIPT_BY_BENEFICIARY: u8 = b'b';
const API_KEY: u8 = b'k';
const MODEL: u8 = b'n';
const KEY_ACCOUNT: u8 = b'K';
const LEDGER: u8 = b'l';
const CHECK: u8 = b'v';
const PAYER: u8 = b'p';
const META_RECEIPT_SEQ: &[u8] = b"m/receipt_seq";

/// Commits applied per flush at most, so one flush never waits on an unbounded backlog.
const MAX_GROUP: usize = 4096;
/// Tasks per chunk at most, and the encoded size after which a chunk ends early (model shard
/// tasks can carry megabytes of activations).
const CHUNK_TASKS: usize = 256;
const CHUNK_BYTES: usize = 64 << 10;
/// Read-modify-written values (accounts, ledgers) the committer remembers: one per account that
/// earned or spent lately.
const REMEMBERED: usize = 100_000;

struct Pending {
    batch: Batch,
    done: oneshot::Sender<Result<(), StoreError>>,
}

pub struct SledStore {
    tree: ::sled::Tree,
    committer: mpsc::Sender<Pending>,
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for part in parts {
        k.extend_from_slice(part);
    }
    k
}

fn task_key(prefix: u8, task: TaskId) -> Vec<u8> {
    key(prefix, &[&task.job.0, &task.index.to_be_bytes()])
}

fn io(e: ::sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let path = dir.join("db");
        // No background flusher: the committer flushes every group before acknowledging it.
        let db = ::sled::Config::new().path(&path).flush_every_ms(None).open().map_err(|e| match e {
            ::sled::Error::Io(ref io)
                if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
            {
                StoreError::Locked { path: dir.display().to_string() }
            }
            other => io(other),
        })?;
        let tree = db.open_tree("hyphae").map_err(io)?;
        let (committer, queue) = mpsc::channel::<Pending>();
        let commit_tree = tree.clone();
        thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || run_committer(db, commit_tree, queue))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(SledStore { tree, committer })
    }

    fn get<T: records::Record>(&self, what: &'static str, k: &[u8]) -> Result<Option<T>, StoreError> {
        match self.tree.get(k).map_err(io)? {
            Some(bytes) => records::decode(what, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn scan<T: records::Record>(&self, what: &'static str, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|entry| entry.map_err(io).and_then(|(_, v)| records::decode(what, &v)))
            .collect()
    }
}

fn run_committer(db: ::sled::Db, tree: ::sled::Tree, queue: mpsc::Receiver<Pending>) {
    // sled's own writer threads are started from here and inherit this.
    crate::background::run_as_batch_work();
    let mut remembered = lru::LruCache::new(NonZeroUsize::new(REMEMBERED).expect("not zero"));
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut writes =
            Group { tree: &tree, remembered: &remembered, written: HashMap::new(), batch: ::sled::Batch::default() };
        let mut applied = Vec::with_capacity(group.len());
        for pending in group {
            match writes.stage(&pending.batch) {
                Ok(()) => applied.push(pending.done),
                Err(e) => {
                    if !matches!(e, StoreError::InsufficientCredits { .. }) {
                        tracing::error!(error = %e, "store batch failed");
                    }
                    let _ = pending.done.send(Err(e));
                }
            }
        }
        let Group { written, batch, .. } = writes;
        let result = tree.apply_batch(batch).and_then(|()| db.flush().map(|_| ())).map_err(io);
        match &result {
            Ok(()) => {
                for (k, v) in written.into_iter().filter(|(k, _)| is_read_back(k)) {
                    remembered.put(k, v);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store write failed");
                // What the tree holds now is unknown: read it again.
                remembered.clear();
            }
        }
        for done in applied {
            let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| StoreError::Io(e.to_string())));
        }
    }
}

/// Keys whose values a commit reads before writing them.
fn is_read_back(k: &[u8]) -> bool {
    matches!(k.first(), Some(&ACCOUNT | &LEDGER)) || k == META_RECEIPT_SEQ
}

/// The writes of one group of batches, not yet in the tree.
struct Group<'c> {
    tree: &'c ::sled::Tree,
    /// Values as last written by earlier groups (none written since by anyone else).
    remembered: &'c lru::LruCache<Vec<u8>, Vec<u8>>,
    /// The latest value each key was given in the group, shadowing the tree's.
    written: HashMap<Vec<u8>, Vec<u8>>,
    batch: ::sled::Batch,
}

impl Group<'_> {
    /// Adds `batch`'s writes, or none of them if one of its ops fails.
    fn stage(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let mut staged = Staged { group: self, written: Vec::new(), index: HashMap::new() };
        for op in &batch.ops {
            apply_op(&mut staged, op)?;
        }
        let Staged { written, .. } = staged;
        for (k, v) in written {
            self.batch.insert(k.as_slice(), v.as_slice());
            self.written.insert(k, v);
        }
        Ok(())
    }
}

/// One batch's writes while it is applied: reads see them, then the group's, then what the
/// committer remembers, then the tree.
struct Staged<'g, 'c> {
    group: &'g Group<'c>,
    written: Vec<(Vec<u8>, Vec<u8>)>,
    /// Key → its latest position in `written`.
    index: HashMap<Vec<u8>, usize>,
}

impl Staged<'_, '_> {
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(&at) = self.index.get(k) {
            return Ok(Some(self.written[at].1.clone()));
        }
        if let Some(v) = self.group.written.get(k).or_else(|| self.group.remembered.peek(k)) {
            return Ok(Some(v.clone()));
        }
        Ok(self.group.tree.get(k).map_err(io)?.map(|v| v.to_vec()))
    }

    fn insert(&mut self, k: impl Into<Vec<u8>>, v: impl Into<Vec<u8>>) {
        let k = k.into();
        self.index.insert(k.clone(), self.written.len());
        self.written.push((k, v.into()));
    }
}

/// Writes `tasks` as [`TaskChunk`]s of consecutive indices.
fn put_tasks(t: &mut Staged<'_, '_>, job: JobId, tasks: &[std::sync::Arc<TaskRecord>]) {
    let mut chunk: Vec<TaskRecord> = Vec::new();
    let mut bytes = 0;
    let close = |t: &mut Staged<'_, '_>, chunk: &mut Vec<TaskRecord>| {
        if let Some(first) = chunk.first() {
            let k = task_key(TASK_CHUNK, TaskId { job, index: first.index });
            t.insert(k, records::encode(&TaskChunk { tasks: std::mem::take(chunk) }));
        }
    };
    for task in tasks {
        let follows = chunk.last().is_none_or(|last| last.index.checked_add(1) == Some(task.index));
        if !follows || chunk.len() == CHUNK_TASKS || bytes >= CHUNK_BYTES {
            close(t, &mut chunk);
            bytes = 0;
        }
        bytes += task.approximate_size();
        chunk.push(task.as_ref().clone());
    }
    close(t, &mut chunk);
}

fn apply_op(t: &mut Staged<'_, '_>, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::PutJob(job) => {
            t.insert(key(JOB, &[&job.id.0]), records::encode(job.as_ref()));
        }
        Op::PutTasks { job, tasks } => put_tasks(t, *job, tasks),
        Op::PutResult { task, result } => {
            t.insert(task_key(RESULT, *task), records::encode(result.as_ref()));
        }
        Op::PutReceipt(issued) => {
            let Issued { id, receipt } = issued.as_ref();
            debug_assert_eq!(*id, receipt.id());
            t.insert(key(RECEIPT, &[&id.0]), records::encode_receipt(receipt));
            let seq = match t.get(META_RECEIPT_SEQ)? {
                Some(v) => u64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt { what: "receipt sequence", reason: "not 8 bytes".into() })?,
                ),
                None => 0,
            } + 1;
            t.insert(META_RECEIPT_SEQ, seq.to_be_bytes());
            let index = key(RECEIPT_BY_BENEFICIARY, &[&receipt.payload.beneficiary.0, &seq.to_be_bytes()]);
            t.insert(index, id.0);
        }
        Op::Credit { account, amount, tasks } => {
            update_account(t, *account, |record| {
                record.balance += *amount;
                record.earned += *amount;
                record.verified_tasks += tasks;
                Ok(())
            })?;
        }
        Op::Grant { account, amount } => {
            update_account(t, *account, |record| {
                record.balance += *amount;
                Ok(())
            })?;
            update_ledger(t, *account, |ledger| ledger.granted += *amount)?;
        }
        Op::Spend { account, amount } => {
            update_account(t, *account, |record| {
                record.balance = record.balance.checked_sub(*amount).ok_or(StoreError::InsufficientCredits {
                    account: *account,
                    balance: record.balance,
                    needed: *amount,
                })?;
                Ok(())
            })?;
            update_ledger(t, *account, |ledger| ledger.spent += *amount)?;
        }
        Op::PutPayer { job, payer } => {
            t.insert(key(PAYER, &[&job.0]), records::encode(payer));
        }
        Op::PutCheck { job, check } => {
            t.insert(key(CHECK, &[&job.0]), records::encode(check));
        }
        Op::PutModel(model) => {
            t.insert(key(MODEL, &[model.name.as_bytes()]), records::encode(model.as_ref()));
        }
        Op::PutApiKey { hash, record, account } => {
            t.insert(key(API_KEY, &[&hash.0]), records::encode(record));
            t.insert(key(KEY_ACCOUNT, &[&hash.0]), account.0);
        }
    }
    Ok(())
}

/// Read-modify-write of an account (the committer is the only writer, so no race).
fn update_account(
    t: &mut Staged<'_, '_>,
    account: Address,
    change: impl FnOnce(&mut AccountRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let k = key(ACCOUNT, &[&account.0]);
    let mut record: AccountRecord = match t.get(&k)? {
        Some(v) => records::decode("account", &v)?,
        None => AccountRecord::default(),
    };
    change(&mut record)?;
    t.insert(k, records::encode(&record));
    Ok(())
}

fn update_ledger(
    t: &mut Staged<'_, '_>,
    account: Address,
    change: impl FnOnce(&mut LedgerRecord),
) -> Result<(), StoreError> {
    let k = key(LEDGER, &[&account.0]);
    let mut ledger: LedgerRecord = match t.get(&k)? {
        Some(v) => records::decode("ledger", &v)?,
        None => LedgerRecord::default(),
    };
    change(&mut ledger);
    t.insert(k, records::encode(&ledger));
    Ok(())
}

impl Store for SledStore {
    fn commit(&self, batch: Batch) -> Commit {
        let (done, wait) = oneshot::channel();
        let sent = self.committer.send(Pending { batch, done });
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            wait.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.get("job", &key(JOB, &[&id.0]))
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.scan("job", &[JOB])
    }

    fn tasks(&self, job: JobId) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tasks: Vec<TaskRecord> = self.scan("task", &key(TASK, &[&job.0]))?;
        let chunks: Vec<TaskChunk> = self.scan("task chunk", &key(TASK_CHUNK, &[&job.0]))?;
        tasks.extend(chunks.into_iter().flat_map(|c| c.tasks));
        tasks.sort_by_key(|t| t.index);
        Ok(tasks)
    }

    fn task(&self, task: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        if let Some(alone) = self.get("task", &task_key(TASK, task))? {
            return Ok(Some(alone));
        }
        // The chunk holding it starts at its index or before: the last key at or below it.
        let Some(above) = task.index.checked_add(1) else { return Ok(None) };
        let Some((k, v)) =
            self.tree.get_lt(task_key(TASK_CHUNK, TaskId { job: task.job, index: above })).map_err(io)?
        else {
            return Ok(None);
        };
        if !k.starts_with(&key(TASK_CHUNK, &[&task.job.0])) {
            return Ok(None);
        }
        let chunk: TaskChunk = records::decode("task chunk", &v)?;
        Ok(chunk.tasks.into_iter().find(|t| t.index == task.index))
    }

    fn result(&self, task: TaskId) -> Result<Option<ResultRecord>, StoreError> {
        self.get("result", &task_key(RESULT, task))
    }

    fn results(&self, job: JobId, from: u32, limit: u32) -> Result<Vec<(u32, ResultRecord)>, StoreError> {
        let start = task_key(RESULT, TaskId { job, index: from });
        let prefix = key(RESULT, &[&job.0]);
        let mut out = Vec::new();
        for entry in self.tree.range(start..) {
            let (k, v) = entry.map_err(io)?;
            if !k.starts_with(&prefix) {
                break;
            }
            let index = u32::from_be_bytes(
                k[prefix.len()..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt { what: "result key", reason: "bad index".into() })?,
            );
            if index >= from.saturating_add(limit) {
                break;
            }
            out.push((index, records::decode("result", &v)?));
        }
        Ok(out)
    }

    fn account(&self, address: Address) -> Result<Option<AccountRecord>, StoreError> {
        self.get("account", &key(ACCOUNT, &[&address.0]))
    }

    fn accounts(&self) -> Result<Vec<(Address, AccountRecord)>, StoreError> {
        self.tree
            .scan_prefix([ACCOUNT])
            .map(|entry| {
                let (k, v) = entry.map_err(io)?;
                let address = Address(
                    k[1..]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt { what: "account key", reason: "not 20 bytes".into() })?,
                );
                Ok((address, records::decode("account", &v)?))
            })
            .collect()
    }

    fn receipt(&self, id: ReceiptId) -> Result<Option<SignedReceipt>, StoreError> {
        match self.tree.get(key(RECEIPT, &[&id.0])).map_err(io)? {
            Some(bytes) => records::decode_receipt(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn receipts_of(&self, beneficiary: Address, after: Option<u64>, limit: usize) -> Result<ReceiptPage, StoreError> {
        let prefix = key(RECEIPT_BY_BENEFICIARY, &[&beneficiary.0]);
        let start = key(RECEIPT_BY_BENEFICIARY, &[&beneficiary.0, &after.map_or(0, |a| a + 1).to_be_bytes()]);
        let mut receipts = Vec::new();
        let mut last = None;
        for entry in self.tree.range(start..) {
            let (k, v) = entry.map_err(io)?;
            if !k.starts_with(&prefix) {
                return Ok((receipts, None));
            }
            if receipts.len() == limit {
                return Ok((receipts, last));
            }
            let seq = u64::from_be_bytes(
                k[prefix.len()..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt { what: "receipt index", reason: "bad sequence".into() })?,
            );
            let id = ReceiptId(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt { what: "receipt index", reason: "bad id".into() })?,
            );
            let receipt = self
                .receipt(id)?
                .ok_or(StoreError::Corrupt { what: "receipt index", reason: format!("{id} is indexed but missing") })?;
            receipts.push(receipt);
            last = Some(seq);
        }
        Ok((receipts, None))
    }

    fn api_key(&self, hash: &Sha256) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.get("api key", &key(API_KEY, &[&hash.0]))
    }

    fn check(&self, job: JobId) -> Result<Option<CheckRecord>, StoreError> {
        self.get("check", &key(CHECK, &[&job.0]))
    }

    fn payer(&self, job: JobId) -> Result<Option<PayerRecord>, StoreError> {
        self.get("payer", &key(PAYER, &[&job.0]))
    }

    fn api_key_account(&self, hash: &Sha256) -> Result<Address, StoreError> {
        match self.tree.get(key(KEY_ACCOUNT, &[&hash.0])).map_err(io)? {
            Some(bytes) => Ok(Address(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt { what: "key account", reason: "not 20 bytes".into() })?,
            )),
            None => Ok(key_account(hash)),
        }
    }

    fn ledger(&self, account: Address) -> Result<LedgerRecord, StoreError> {
        Ok(self.get("ledger", &key(LEDGER, &[&account.0]))?.unwrap_or_default())
    }

    fn all_receipts(&self) -> Result<Vec<SignedReceipt>, StoreError> {
        self.tree
            .scan_prefix([RECEIPT])
            .map(|entry| {
                let (_, v) = entry.map_err(io)?;
                records::decode_receipt(&v)
            })
            .collect()
    }

    fn models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        self.scan("model", &[MODEL])
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.scan("api key", &[API_KEY])
    }
}

#[cfg(test)]
mod tests {
    use hyphae_proto::Credits;

    use super::*;

    fn open() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn credits_add_up_across_commits() {
        let (_dir, store) = open();
        let account = Address([1; 20]);
        for _ in 0..3 {
            let mut batch = Batch::new();
            batch.push(Op::Credit { account, amount: Credits::from_micros(500_000), tasks: 1 });
            store.commit(batch).await.unwrap();
        }
        let record = store.account(account).unwrap().unwrap();
        assert_eq!(record.balance, Credits::from_micros(1_500_000));
        assert_eq!(record.verified_tasks, 3);
    }

    #[tokio::test]
    async fn a_spend_the_balance_cannot_cover_fails_the_whole_batch() {
        let (_dir, store) = open();
        let account = Address([3; 20]);
        let mut grant = Batch::new();
        grant.push(Op::Grant { account, amount: Credits::whole(1) });
        store.commit(grant).await.unwrap();
        let job = JobRecord::for_test(JobId([3; 12]), 2, 2);
        let mut batch = Batch::new();
        batch.push(Op::Spend { account, amount: job.cost() });
        batch.push(Op::PutJob(Box::new(job.clone())));
        match store.commit(batch).await {
            Err(StoreError::InsufficientCredits { balance, needed, .. }) => {
                assert_eq!((balance, needed), (Credits::whole(1), Credits::whole(2)));
            }
            other => panic!("expected InsufficientCredits, got {other:?}"),
        }
        assert!(store.job(job.id).unwrap().is_none(), "the refused job was stored");
        assert_eq!(store.account(account).unwrap().unwrap().balance, Credits::whole(1));
        assert_eq!(store.ledger(account).unwrap(), LedgerRecord { granted: Credits::whole(1), spent: Credits::ZERO });
    }

    #[tokio::test]
    async fn concurrent_commits_all_land() {
        let (_dir, store) = open();
        let store = std::sync::Arc::new(store);
        let account = Address([2; 20]);
        let commits = (0..200).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batch = Batch::new();
                batch.push(Op::Credit { account, amount: Credits::whole(1), tasks: 1 });
                store.commit(batch).await
            })
        });
        for commit in futures::future::join_all(commits).await {
            commit.unwrap().unwrap();
        }
        assert_eq!(store.account(account).unwrap().unwrap().balance, Credits::whole(200));
    }

    fn kernel_task(index: u32, inline: usize) -> TaskRecord {
        let binding = hyphae_proto::frame::TaskBinding {
            binding: 0,
            dtype: hyphae_proto::Dtype::U32,
            access: hyphae_proto::frame::Access::Read,
            source: Some(hyphae_proto::frame::Source::Inline(hyphae_proto::tensor::Bytes(vec![index as u8; inline]))),
            size: inline as u64,
        };
        TaskRecord { index, body: records::TaskBody::Kernel { workgroups: [1, 1, 1], bindings: vec![binding] } }
    }

    #[tokio::test]
    async fn tasks_stored_in_chunks_read_back_one_by_one_and_all_together() {
        let (_dir, store) = open();
        let job = JobId([5; 12]);
        // Small tasks fill chunks by count, big ones by size; a gap in the indices starts a chunk.
        let tasks: Vec<TaskRecord> = (0..600)
            .map(|i| kernel_task(i, 4))
            .chain((600..620).map(|i| kernel_task(i, 20 << 10)))
            .chain((700..703).map(|i| kernel_task(i, 4)))
            .collect();
        let mut batch = Batch::new();
        batch.push(Op::PutTasks { job, tasks: tasks.iter().cloned().map(std::sync::Arc::new).collect() });
        store.commit(batch).await.unwrap();
        let chunks = store.tree.scan_prefix(key(TASK_CHUNK, &[&job.0])).count();
        assert!((7..=12).contains(&chunks), "{chunks} chunks for 623 tasks");
        for task in &tasks {
            assert_eq!(store.task(TaskId { job, index: task.index }).unwrap().as_ref(), Some(task));
        }
        for missing in [620, 650, 699, 703, u32::MAX] {
            assert_eq!(store.task(TaskId { job, index: missing }).unwrap(), None, "task {missing}");
        }
        assert_eq!(store.task(TaskId { job: JobId([6; 12]), index: 0 }).unwrap(), None, "another job");
        assert_eq!(store.tasks(job).unwrap(), tasks);
    }

    #[tokio::test]
    async fn tasks_stored_one_per_record_before_chunks_still_read() {
        let (_dir, store) = open();
        let job = JobId([7; 12]);
        let old = kernel_task(3, 8);
        store.tree.insert(task_key(TASK, TaskId { job, index: 3 }), records::encode(&old)).unwrap();
        let mut batch = Batch::new();
        batch.push(Op::PutTasks { job, tasks: vec![std::sync::Arc::new(kernel_task(4, 8))] });
        store.commit(batch).await.unwrap();
        assert_eq!(store.task(TaskId { job, index: 3 }).unwrap(), Some(old.clone()));
        assert_eq!(store.tasks(job).unwrap(), vec![old, kernel_task(4, 8)]);
    }

    #[tokio::test]
    async fn balances_stay_right_when_commits_read_remembered_values() {
        let (_dir, store) = open();
        let account = Address([8; 20]);
        let mut grant = Batch::new();
        grant.push(Op::Grant { account, amount: Credits::whole(3) });
        store.commit(grant).await.unwrap();
        // The second spend reads the balance the first left, remembered rather than read.
        for expected in [2, 1, 0] {
            let mut spend = Batch::new();
            spend.push(Op::Spend { account, amount: Credits::whole(1) });
            store.commit(spend).await.unwrap();
            assert_eq!(store.account(account).unwrap().unwrap().balance, Credits::whole(expected));
        }
        let mut over = Batch::new();
        over.push(Op::Spend { account, amount: Credits::whole(1) });
        assert!(matches!(store.commit(over).await, Err(StoreError::InsufficientCredits { .. })));
        assert_eq!(
            store.ledger(account).unwrap(),
            LedgerRecord { granted: Credits::whole(3), spent: Credits::whole(3) }
        );
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_is_refused_clearly() {
        let (dir, _store) = open();
        match SledStore::open(dir.path()) {
            Err(StoreError::Locked { .. }) => {}
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("second open succeeded"),
        }
    }
}
