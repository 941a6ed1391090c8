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
//! even at 3-6 KB. So results and a beneficiary's receipt list are kept in chunks updated in
//! place ([`chunks`]): a verified task writes one new key (its receipt, found by id) and updates
//! two (its result chunk, and its beneficiary's account, which holds the receipt chunk still
//! filling). With groups of 400-500 tasks that measured 26-28 µs a task, where a receipt chunk of
//! its own took 34-36 µs and one key per result and per list entry 49 µs.
//! Results, receipt lists and tasks written one per key before chunks are still read.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use foldhash::{HashMap, HashMapExt};
use hyphae_proto::{Address, Issued, JobId, ReceiptId, Sha256, SignedReceipt, TaskId};
use tokio::sync::oneshot;

use super::chunks::{self, CHUNKED_CURSOR, INLINE_RESULT_MAX, RECEIPTS_PER_CHUNK, ReceiptTail, ResultChunk, Slot};
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
/// A result alone: one too large for its chunk, or written before chunks.
const RESULT: u8 = b'r';
/// A [`ResultChunk`] under its job and its first task's index.
const RESULT_CHUNK: u8 = b'R';
const ACCOUNT: u8 = b'a';
const RECEIPT: u8 = b'c';
/// A receipt id under its beneficiary and a global sequence number, as written before chunks.
const RECEIPT_BY_BENEFICIARY: u8 = b'b';
/// A full chunk of a beneficiary's receipt ids under the beneficiary and the chunk's number (and,
/// as written before [`ReceiptTail`]s, the last chunk, full or not).
const RECEIPTS_OF: u8 = b'B';
const API_KEY: u8 = b'k';
const MODEL: u8 = b'n';
const KEY_ACCOUNT: u8 = b'K';
const LEDGER: u8 = b'l';
const CHECK: u8 = b'v';
const PAYER: u8 = b'p';

/// Commits applied per flush at most, so one flush never waits on an unbounded backlog.
const MAX_GROUP: usize = 4096;
/// Tasks per chunk at most, and the encoded size after which a chunk ends early (model shard
/// tasks can carry megabytes of activations).
const CHUNK_TASKS: usize = 256;
const CHUNK_BYTES: usize = 64 << 10;
/// Read-modify-written values (accounts, ledgers) the committer remembers: one per account that
/// earned or spent lately. An account holds at most 63 receipt ids, so this is 40 MB at most.
const REMEMBERED: usize = 32_768;
/// Result chunks the committer remembers: the last of each job lately settling. A chunk holds at
/// most 64 results of 256 bytes, so this is 70 MB at most.
const REMEMBERED_CHUNKS: usize = 4096;

struct Pending {
    batch: Batch,
    done: oneshot::Sender<Result<(), StoreError>>,
}

pub struct SledStore {
    tree: ::sled::Tree,
    /// `None` once dropping the store has closed it.
    committer: Option<mpsc::Sender<Pending>>,
    committing: Option<thread::JoinHandle<()>>,
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

fn result_chunk_key(task: TaskId) -> Vec<u8> {
    task_key(RESULT_CHUNK, TaskId { job: task.job, index: ResultChunk::first_of(task.index) })
}

fn receipts_of_key(beneficiary: Address, chunk: u64) -> Vec<u8> {
    key(RECEIPTS_OF, &[&beneficiary.0, &chunk.to_be_bytes()])
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
        let committing = thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || run_committer(db, commit_tree, queue))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(SledStore { tree, committer: Some(committer), committing: Some(committing) })
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

/// Dropping the store commits what it was given and closes the database before it returns, so its
/// files may be removed then. sled's writers share one lock per process: a database still closing
/// in the background once its directory was gone held that lock for good and stalled every other
/// database in the process (seen when a benchmark started a relay after stopping one).
impl Drop for SledStore {
    fn drop(&mut self) {
        self.committer = None;
        if let Some(committing) = self.committing.take() {
            let _ = committing.join();
        }
    }
}

fn run_committer(db: ::sled::Db, tree: ::sled::Tree, queue: mpsc::Receiver<Pending>) {
    // sled's own writer threads are started from here and inherit this.
    crate::background::run_as_batch_work();
    let mut remembered = Remembered::new();
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut writes = Group { tree: &tree, remembered: &remembered, written: HashMap::new() };
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
        // Each key once, as the group left it: a chunk or an account written many times in a
        // group is copied into the batch once.
        let mut batch = ::sled::Batch::default();
        for (k, v) in &writes.written {
            batch.insert(k.as_slice(), v.as_slice());
        }
        let Group { written, .. } = writes;
        let result = tree.apply_batch(batch).and_then(|()| db.flush().map(|_| ())).map_err(io);
        match &result {
            Ok(()) => remembered.learn(written),
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

/// What the committer knows the tree holds, so that read-modify-writes need not read it.
struct Remembered {
    /// Accounts and ledgers.
    values: lru::LruCache<Vec<u8>, Vec<u8>>,
    /// Result chunks, kept apart because they are larger.
    chunks: lru::LruCache<Vec<u8>, Vec<u8>>,
}

impl Remembered {
    fn new() -> Remembered {
        let at_most = |n: usize| NonZeroUsize::new(n).expect("not zero");
        Remembered {
            values: lru::LruCache::new(at_most(REMEMBERED)),
            chunks: lru::LruCache::new(at_most(REMEMBERED_CHUNKS)),
        }
    }

    fn peek(&self, k: &[u8]) -> Option<&Vec<u8>> {
        match k.first() {
            Some(&RESULT_CHUNK) => self.chunks.peek(k),
            _ => self.values.peek(k),
        }
    }

    /// Takes in what a group wrote, now that it is in the tree.
    fn learn(&mut self, written: HashMap<Vec<u8>, Vec<u8>>) {
        for (k, v) in written {
            match k.first() {
                Some(&ACCOUNT | &LEDGER) => {
                    self.values.put(k, v);
                }
                Some(&RESULT_CHUNK) => {
                    self.chunks.put(k, v);
                }
                _ => {}
            }
        }
    }

    fn clear(&mut self) {
        self.values.clear();
        self.chunks.clear();
    }
}

fn parse_receipts_of_key(k: &[u8]) -> Option<(Address, u64)> {
    let rest = k.strip_prefix(&[RECEIPTS_OF])?;
    let (beneficiary, chunk) = rest.split_first_chunk::<20>()?;
    Some((Address(*beneficiary), u64::from_be_bytes(chunk.try_into().ok()?)))
}

/// The writes of one group of batches, not yet in the tree.
struct Group<'c> {
    tree: &'c ::sled::Tree,
    /// Values as last written by earlier groups (none written since by anyone else).
    remembered: &'c Remembered,
    /// The latest value each key was given in the group, shadowing the tree's.
    written: HashMap<Vec<u8>, Vec<u8>>,
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
        Op::PutResult { task, result } => put_result(t, *task, result)?,
        Op::PutReceipt(issued) => {
            let Issued { id, receipt } = issued.as_ref();
            debug_assert_eq!(*id, receipt.id());
            t.insert(key(RECEIPT, &[&id.0]), records::encode_receipt(receipt));
            add_to_receipts_of(t, receipt.payload.beneficiary, *id)?;
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

/// Puts a small result in its chunk, a large one (or one whose task's result already stands
/// alone) under its own key, marked in the chunk so that reads know to look there.
fn put_result(t: &mut Staged<'_, '_>, task: TaskId, result: &ResultRecord) -> Result<(), StoreError> {
    let encoded = records::encode(result);
    let chunk_key = result_chunk_key(task);
    let old = t.get(&chunk_key)?;
    let mut chunk = match &old {
        Some(bytes) => ResultChunk::parse(bytes)?,
        None => ResultChunk::default(),
    };
    let marked_alone = chunk.get(task.index) == Some(Slot::Alone);
    // A result that stood alone stays alone, so no write ever has to remove a key.
    if marked_alone || encoded.len() > INLINE_RESULT_MAX {
        t.insert(task_key(RESULT, task), encoded);
        if marked_alone {
            return Ok(());
        }
        chunk.set(task.index, Slot::Alone);
    } else {
        chunk.set(task.index, Slot::Inline(&encoded));
    }
    let bytes = chunk.encode();
    t.insert(chunk_key, bytes);
    Ok(())
}

/// Appends `id` to `beneficiary`'s receipt tail, writing the chunk it fills under a key of its own.
fn add_to_receipts_of(t: &mut Staged<'_, '_>, beneficiary: Address, id: ReceiptId) -> Result<(), StoreError> {
    let (record, tail) = account_of(t, beneficiary)?;
    let mut tail = match tail {
        Some(tail) => tail,
        // Paid first since tails: continue the last chunk written with a key of its own, if any.
        None => {
            let last = t.group.tree.get_lt(receipts_of_key(beneficiary, u64::MAX)).map_err(io)?;
            let last = last.and_then(|(k, ids)| {
                parse_receipts_of_key(&k).filter(|&(b, _)| b == beneficiary).map(|(_, chunk)| (chunk, ids))
            });
            ReceiptTail::after(last.as_ref().map(|(chunk, ids)| (*chunk, ids.as_ref())))
        }
    };
    if let Some(full) = tail.push(id) {
        t.insert(receipts_of_key(beneficiary, tail.sealed - 1), full);
    }
    put_account(t, beneficiary, &record, Some(&tail));
    Ok(())
}

/// Read-modify-write of an account (the committer is the only writer, so no race).
fn update_account(
    t: &mut Staged<'_, '_>,
    account: Address,
    change: impl FnOnce(&mut AccountRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let (mut record, tail) = account_of(t, account)?;
    change(&mut record)?;
    put_account(t, account, &record, tail.as_ref());
    Ok(())
}

fn account_of(t: &Staged<'_, '_>, account: Address) -> Result<(AccountRecord, Option<ReceiptTail>), StoreError> {
    match t.get(&key(ACCOUNT, &[&account.0]))? {
        Some(v) => {
            let (record, rest) = records::decode_prefix("account", &v)?;
            Ok((record, ReceiptTail::parse(rest)?))
        }
        None => Ok((AccountRecord::default(), None)),
    }
}

fn put_account(t: &mut Staged<'_, '_>, account: Address, record: &AccountRecord, tail: Option<&ReceiptTail>) {
    let mut v = records::encode(record);
    if let Some(tail) = tail {
        tail.encode_onto(&mut v);
    }
    t.insert(key(ACCOUNT, &[&account.0]), v);
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
        let sent = self.committer.as_ref().is_some_and(|c| c.send(Pending { batch, done }).is_ok());
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
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
        if let Some(bytes) = self.tree.get(result_chunk_key(task)).map_err(io)?
            && let Some(Slot::Inline(result)) = ResultChunk::parse(&bytes)?.get(task.index)
        {
            return records::decode("result", result).map(Some);
        }
        // Marked alone in its chunk, or written before chunks.
        self.get("result", &task_key(RESULT, task))
    }

    fn results(&self, job: JobId, from: u32, limit: u32) -> Result<Vec<(u32, ResultRecord)>, StoreError> {
        let end = from.saturating_add(limit);
        // Results alone (large ones, and those written before chunks) first; a chunk's inline
        // result for the same task is newer and replaces it.
        let mut found: BTreeMap<u32, ResultRecord> = BTreeMap::new();
        // Both kinds of key end in a task index: the task's, or the chunk's first task's.
        let of_job = |prefix: u8, start: Vec<u8>| {
            let job_prefix = key(prefix, &[&job.0]);
            self.tree.range(start..).map(move |entry| {
                let (k, v) = entry.map_err(io)?;
                let Some(index) = k.strip_prefix(job_prefix.as_slice()) else { return Ok(None) };
                let index = u32::from_be_bytes(
                    index
                        .try_into()
                        .map_err(|_| StoreError::Corrupt { what: "result key", reason: "bad index".into() })?,
                );
                Ok(Some((index, v)))
            })
        };
        for entry in of_job(RESULT, task_key(RESULT, TaskId { job, index: from })) {
            let Some((index, v)) = entry? else { break };
            if index >= end {
                break;
            }
            found.insert(index, records::decode("result", &v)?);
        }
        for entry in of_job(RESULT_CHUNK, result_chunk_key(TaskId { job, index: from })) {
            let Some((first, v)) = entry? else { break };
            if first >= end {
                break;
            }
            for (index, slot) in ResultChunk::parse(&v)?.entries() {
                if let (Slot::Inline(result), true) = (slot, (from..end).contains(&index)) {
                    found.insert(index, records::decode("result", result)?);
                }
            }
        }
        Ok(found.into_iter().collect())
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
        // Receipts indexed one per key before chunks come first, under their sequence numbers;
        // then the chunks, under their position with CHUNKED_CURSOR set.
        let unchunked = match after {
            Some(after) if after >= CHUNKED_CURSOR => None,
            after => Some(after.map_or(0, |a| a + 1)),
        };
        let chunked_from = after.filter(|&a| a >= CHUNKED_CURSOR).map_or(0, |a| a - CHUNKED_CURSOR + 1);
        let mut page: Vec<(u64, ReceiptId)> = Vec::new();
        if let Some(from) = unchunked {
            let prefix = key(RECEIPT_BY_BENEFICIARY, &[&beneficiary.0]);
            for entry in self.tree.range(key(RECEIPT_BY_BENEFICIARY, &[&beneficiary.0, &from.to_be_bytes()])..) {
                let (k, v) = entry.map_err(io)?;
                if !k.starts_with(&prefix) || page.len() > limit {
                    break;
                }
                let corrupt = |reason: &str| StoreError::Corrupt { what: "receipt index", reason: reason.into() };
                let seq = u64::from_be_bytes(k[prefix.len()..].try_into().map_err(|_| corrupt("bad sequence"))?);
                page.push((seq, ReceiptId(v.as_ref().try_into().map_err(|_| corrupt("bad id"))?)));
            }
        }
        // The tail first: a chunk it fills after this is written before the tail moves past it.
        let tail = match self.tree.get(key(ACCOUNT, &[&beneficiary.0])).map_err(io)? {
            Some(v) => ReceiptTail::parse(records::decode_prefix::<AccountRecord>("account", &v)?.1)?,
            None => None,
        };
        let first_chunk = chunked_from / RECEIPTS_PER_CHUNK;
        let prefix = key(RECEIPTS_OF, &[&beneficiary.0]);
        let wanted = |&(p, _): &(u64, ReceiptId)| p >= chunked_from;
        for entry in self.tree.range(receipts_of_key(beneficiary, first_chunk)..) {
            let (k, v) = entry.map_err(io)?;
            if !k.starts_with(&prefix) || page.len() > limit {
                break;
            }
            let (_, chunk) = parse_receipts_of_key(&k)
                .ok_or(StoreError::Corrupt { what: "receipt chunk key", reason: "bad length".into() })?;
            // A chunk from before tails that the tail has taken over.
            if tail.as_ref().is_some_and(|tail| chunk >= tail.sealed) {
                break;
            }
            let positions = chunk * RECEIPTS_PER_CHUNK..;
            page.extend(positions.zip(chunks::receipt_ids(&v)?).filter(wanted).map(|(p, id)| (p + CHUNKED_CURSOR, id)));
        }
        if let Some(tail) = tail.filter(|_| page.len() <= limit) {
            page.extend(tail.entries().filter(wanted).map(|(p, id)| (p + CHUNKED_CURSOR, id)));
        }
        let next = (page.len() > limit).then(|| page[limit - 1].0);
        page.truncate(limit);
        let receipts = page
            .into_iter()
            .map(|(_, id)| {
                self.receipt(id)?.ok_or(StoreError::Corrupt {
                    what: "receipt index",
                    reason: format!("{id} is indexed but missing"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((receipts, next))
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

    fn result_of(bytes: usize, tag: u8) -> ResultRecord {
        ResultRecord {
            outcome: records::Outcome::Completed,
            outputs: vec![hyphae_proto::api::OutputData {
                binding: 1,
                dtype: hyphae_proto::Dtype::U32,
                data: hyphae_proto::tensor::Bytes(vec![tag; bytes]),
            }],
            output_sha256: None,
            verified_by: vec![Address([tag; 20])],
            receipts: vec![],
            error: None,
            settled_at: u64::from(tag),
        }
    }

    async fn put_results(store: &SledStore, job: JobId, results: &[(u32, &ResultRecord)]) {
        let mut batch = Batch::new();
        for &(index, result) in results {
            batch.push(Op::PutResult { task: TaskId { job, index }, result: Box::new(result.clone()) });
        }
        store.commit(batch).await.unwrap();
    }

    #[tokio::test]
    async fn results_are_kept_in_chunks_and_read_back_one_by_one_and_by_range() {
        let (_dir, store) = open();
        let job = JobId([9; 12]);
        // Small results inline, large ones alone, in any order, across commits and chunks; task
        // 5 is settled again with a small result, task 6 with a large one after a small one.
        let (small, large) = (result_of(8, 1), result_of(INLINE_RESULT_MAX, 2));
        let (again, again_large) = (result_of(4, 3), result_of(2 * INLINE_RESULT_MAX, 4));
        let mut expected = std::collections::BTreeMap::new();
        for index in [130, 0, 5, 63, 64, 6, 200] {
            expected.insert(index, small.clone());
        }
        for index in [7, 65, 199] {
            expected.insert(index, large.clone());
        }
        let first: Vec<_> = expected.iter().map(|(&i, r)| (i, r)).collect();
        put_results(&store, job, &first[..4]).await;
        put_results(&store, job, &first[4..]).await;
        put_results(&store, job, &[(5, &again), (6, &again_large), (7, &again)]).await;
        expected.insert(5, again.clone());
        expected.insert(6, again_large);
        expected.insert(7, again);

        for index in 0..260 {
            assert_eq!(store.result(TaskId { job, index }).unwrap().as_ref(), expected.get(&index), "task {index}");
        }
        assert_eq!(store.result(TaskId { job: JobId([8; 12]), index: 0 }).unwrap(), None, "another job");
        let all: Vec<_> = expected.clone().into_iter().collect();
        assert_eq!(store.results(job, 0, u32::MAX).unwrap(), all);
        let some: Vec<_> = expected.range(6..131).map(|(&i, r)| (i, r.clone())).collect();
        assert_eq!(store.results(job, 6, 125).unwrap(), some);
        assert_eq!(store.results(job, 201, 1000).unwrap(), vec![]);
        let chunks = store.tree.scan_prefix(key(RESULT_CHUNK, &[&job.0])).count();
        let alone = store.tree.scan_prefix(key(RESULT, &[&job.0])).count();
        assert_eq!((chunks, alone), (4, 4), "chunks 0, 64, 128 and 192; tasks 6, 7, 65 and 199 alone");
    }

    #[tokio::test]
    async fn results_written_one_per_key_before_chunks_still_read_until_settled_again() {
        let (_dir, store) = open();
        let job = JobId([10; 12]);
        let (old, new) = (result_of(8, 1), result_of(8, 2));
        for index in [3, 4] {
            store.tree.insert(task_key(RESULT, TaskId { job, index }), records::encode(&old)).unwrap();
        }
        put_results(&store, job, &[(4, &new), (5, &new)]).await;
        assert_eq!(store.result(TaskId { job, index: 3 }).unwrap(), Some(old.clone()));
        assert_eq!(store.result(TaskId { job, index: 4 }).unwrap(), Some(new.clone()));
        assert_eq!(store.results(job, 0, 10).unwrap(), vec![(3, old), (4, new.clone()), (5, new)]);
    }

    fn issued(relay: &hyphae_proto::SecretKey, beneficiary: Address, index: u32) -> hyphae_proto::Issued {
        let receipt = hyphae_proto::ReceiptPayload {
            beneficiary,
            credits: Credits::whole(1),
            issued_at: 1_790_000_000,
            job: JobId([4; 12]),
            output_sha256: Sha256::of(b"out"),
            relay: relay.address(),
            task: TaskId { job: JobId([4; 12]), index },
            v: hyphae_proto::ReceiptPayload::VERSION,
            worker: relay.address(),
        }
        .sign(relay);
        hyphae_proto::Issued { id: receipt.id(), receipt }
    }

    fn all_pages(store: &SledStore, beneficiary: Address, limit: usize) -> Vec<u32> {
        let (mut tasks, mut after) = (Vec::new(), None);
        loop {
            let (page, next) = store.receipts_of(beneficiary, after, limit).unwrap();
            assert!(page.len() <= limit);
            tasks.extend(page.iter().map(|r| r.payload.task.index));
            match next {
                Some(next) => after = Some(next),
                None => return tasks,
            }
        }
    }

    #[tokio::test]
    async fn a_beneficiarys_receipts_page_in_order_from_the_index_before_chunks_through_the_chunks() {
        let (_dir, store) = open();
        let relay = hyphae_proto::SecretKey::random(&mut rand::thread_rng());
        let (worker, other) = (Address([11; 20]), Address([12; 20]));
        // Three receipts indexed one per key, as before chunks, under global sequence numbers.
        for (seq, index) in [(4u64, 0u32), (9, 1), (10, 2)] {
            let Issued { id, receipt } = issued(&relay, worker, index);
            store.tree.insert(key(RECEIPT, &[&id.0]), records::encode_receipt(&receipt)).unwrap();
            store.tree.insert(key(RECEIPT_BY_BENEFICIARY, &[&worker.0, &seq.to_be_bytes()]), &id.0).unwrap();
        }
        // Then 150 more (three chunks), across commits, interleaved with another beneficiary's.
        for first in (3..153).step_by(50) {
            let mut batch = Batch::new();
            for index in first..first + 50 {
                batch.push(Op::PutReceipt(Box::new(issued(&relay, worker, index))));
                batch.push(Op::PutReceipt(Box::new(issued(&relay, other, index))));
            }
            store.commit(batch).await.unwrap();
        }
        let everything: Vec<u32> = (0..153).collect();
        for limit in [1, 2, 3, 7, 64, 100, 1000] {
            assert_eq!(all_pages(&store, worker, limit), everything, "pages of {limit}");
        }
        assert_eq!(all_pages(&store, other, 10), (3..153).collect::<Vec<_>>());
        assert_eq!(all_pages(&store, Address([13; 20]), 10), Vec::<u32>::new());
        // Two full chunks have keys of their own; the 22 after them are in the account's tail.
        assert_eq!(store.tree.scan_prefix(key(RECEIPTS_OF, &[&worker.0])).count(), 2);
        let one = issued(&relay, worker, 77);
        assert_eq!(store.receipt(one.id).unwrap(), Some(one.receipt));
    }

    #[tokio::test]
    async fn the_last_chunk_written_before_tails_is_continued_and_the_balance_kept() {
        let (_dir, store) = open();
        let relay = hyphae_proto::SecretKey::random(&mut rand::thread_rng());
        let worker = Address([15; 20]);
        // As written before tails: a full chunk, a chunk of 10, and the account record alone.
        for (chunk, tasks) in [(0u64, 0..64u32), (1, 64..74)] {
            let mut ids = Vec::new();
            for index in tasks {
                let Issued { id, receipt } = issued(&relay, worker, index);
                store.tree.insert(key(RECEIPT, &[&id.0]), records::encode_receipt(&receipt)).unwrap();
                ids.extend_from_slice(&id.0);
            }
            store.tree.insert(receipts_of_key(worker, chunk), ids).unwrap();
        }
        let before = AccountRecord { balance: Credits::whole(5), earned: Credits::whole(5), verified_tasks: 74 };
        store.tree.insert(key(ACCOUNT, &[&worker.0]), records::encode(&before)).unwrap();
        assert_eq!(all_pages(&store, worker, 7), (0..74).collect::<Vec<_>>());

        for first in [74u32, 124] {
            let mut batch = Batch::new();
            for index in first..first + 50 {
                batch.push(Op::PutReceipt(Box::new(issued(&relay, worker, index))));
                batch.push(Op::Credit { account: worker, amount: Credits::whole(1), tasks: 1 });
            }
            store.commit(batch).await.unwrap();
            let settled = (first + 50) as usize;
            for limit in [1, 9, 64, 500] {
                assert_eq!(all_pages(&store, worker, limit), (0..first + 50).collect::<Vec<_>>(), "{settled}, {limit}");
            }
        }
        // The chunk of 10 was filled to 64 and written over; 110 - 54 = 46 ids wait in the tail.
        let chunks: Vec<_> =
            store.tree.scan_prefix(key(RECEIPTS_OF, &[&worker.0])).map(|e| e.unwrap().1.len()).collect();
        assert_eq!(chunks, [64 * 16, 64 * 16]);
        let after = store.account(worker).unwrap().unwrap();
        assert_eq!(
            (after.balance, after.earned, after.verified_tasks),
            (Credits::whole(105), Credits::whole(105), 174)
        );
        assert_eq!(store.accounts().unwrap(), vec![(worker, after)]);
    }

    #[tokio::test]
    async fn dropping_the_store_writes_what_it_was_given_and_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let account = Address([14; 20]);
        let mut batch = Batch::new();
        batch.push(Op::Grant { account, amount: Credits::whole(7) });
        let commit = store.commit(batch);
        drop(store);
        commit.await.unwrap();
        let reopened = SledStore::open(dir.path()).expect("the dropped store is closed");
        assert_eq!(reopened.account(account).unwrap().unwrap().balance, Credits::whole(7));
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
