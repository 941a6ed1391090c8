//! Bodies of the relay's HTTP API (DESIGN.md §2). Requests are parsed leniently where the contract
//! allows defaults and strictly everywhere else: an unknown field is a typo the client wants to hear
//! about, not silently drop.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::frame::{AdapterInfo, Platform};
use crate::tensor::{Bytes, Data};
use crate::{Address, BlobId, Credits, Dtype, JobId, ReceiptId, Sha256, SignedReceipt, TaskId};

/// `POST /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobRequest {
    Wgsl(WgslJob),
}

/// A WGSL kernel job: one shader, run once per task with that task's bindings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WgslJob {
    pub shader: String,
    #[serde(default = "default_entry_point")]
    pub entry_point: String,
    /// Dispatch size of every task that does not set its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workgroups: Option<Workgroups>,
    /// Bindings shared by every task; a task's own bindings override these by binding number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingSpec>,
    /// The tasks; empty means one task made of the top-level fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSpec>,
    /// How many distinct workers must agree on each task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<u32>,
    /// How far float outputs of two replicas may differ and still agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Tolerance>,
    /// Credits paid to each worker whose result for a task is verified (kernel jobs declare their
    /// cost; DESIGN.md §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits_per_task: Option<Credits>,
    /// A check the relay can make of each result by itself, so one worker's result is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Check>,
}

/// A check of a result the relay makes itself, cheaper than computing it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The output binding `c` is the product of the input bindings `a` and `b` (all f32,
    /// row-major), checked by Freivalds' algorithm: `C·r = A·(B·r)` for secret random `r`.
    Matmul(MatmulCheck),
}

/// Which bindings hold `C (m×n) = A (m×k) · B (k×n)`, and the shape: `m`, `k`, `n` for every
/// task, or `dims`, a u32 input binding holding each task's `[M, N, K]` (as the built-in matmul
/// kernel takes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatmulCheck {
    pub a: u32,
    pub b: u32,
    pub c: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
}

fn default_entry_point() -> String {
    "main".to_owned()
}

/// One `@group(0) @binding(n)` storage buffer of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    pub binding: u32,
    pub dtype: Dtype,
    /// Contents of an input, or the initial contents of an output (zeros when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    /// Outputs are `var<storage, read_write>` and come back in the results.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output: bool,
    /// Size in bytes of an output without `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// One task of a job; unset fields come from the job's top level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workgroups: Option<Workgroups>,
    /// Keyed by binding number (`"0"`, `"1"`, … in JSON).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "binding_map")]
    pub bindings: BTreeMap<u32, BindingOverride>,
}

/// JSON object keys are strings; serde's internally tagged enums buffer them in a form that no
/// longer converts to integers by itself, so binding numbers are parsed here.
fn binding_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<u32, BindingOverride>, D::Error> {
    let raw = BTreeMap::<String, BindingOverride>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(key, value)| {
            key.parse::<u32>()
                .map(|binding| (binding, value))
                .map_err(|_| serde::de::Error::custom(format_args!("binding key {key:?} is not a binding number")))
        })
        .collect()
}

/// A task's binding: overrides the job-level binding of the same number field by field, or adds a
/// binding the job level does not have (then `dtype` is required).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Dtype>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A dispatch size. Accepts `[x]`, `[x, y]` or `[x, y, z]`; missing dimensions are 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Workgroups(pub [u32; 3]);

impl Workgroups {
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&d| u64::from(d)).product()
    }
}

impl<'de> Deserialize<'de> for Workgroups {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let dims = Vec::<u32>::deserialize(deserializer)?;
        if dims.is_empty() || dims.len() > 3 {
            return Err(serde::de::Error::invalid_length(dims.len(), &"1 to 3 dimensions"));
        }
        let mut out = [1; 3];
        out[..dims.len()].copy_from_slice(&dims);
        Ok(Workgroups(out))
    }
}

/// Float replicas agree element-wise when `|a - b| <= abs + rel * |b|` (DESIGN.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    #[serde(default = "Tolerance::default_rel")]
    pub rel: f64,
    #[serde(default = "Tolerance::default_abs")]
    pub abs: f64,
}

impl Tolerance {
    fn default_rel() -> f64 {
        1e-5
    }

    fn default_abs() -> f64 {
        1e-6
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { rel: Self::default_rel(), abs: Self::default_abs() }
    }
}

/// `201` answer to `POST /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobCreated {
    pub id: JobId,
    pub status: JobStatus,
    pub tasks: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

/// Tasks of a job by state. `running` counts tasks with at least one replica out with a worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub total: u32,
    pub queued: u32,
    pub running: u32,
    pub completed: u32,
    pub failed: u32,
}

/// `GET /v1/jobs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: JobId,
    pub kind: String,
    pub status: JobStatus,
    pub tasks: TaskCounts,
    pub redundancy: u32,
    pub credits_per_task: Credits,
    /// Unix milliseconds.
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Why the job failed, naming the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/jobs/{id}/results?offset=&limit=`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResults {
    pub id: JobId,
    pub status: JobStatus,
    pub total: u32,
    pub offset: u32,
    pub tasks: Vec<TaskResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub index: u32,
    pub task: TaskId,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<Sha256>,
    /// The workers whose matching results made this the accepted one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_by: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<ReceiptId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputData {
    pub binding: u32,
    pub dtype: Dtype,
    pub data: Bytes,
}

/// `201` answer to `POST /v1/blobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobCreated {
    pub id: BlobId,
    pub size: u64,
}

/// One entry of `GET /v1/workers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub address: Address,
    pub beneficiary: Address,
    pub platform: Platform,
    pub adapter: AdapterInfo,
    pub agent: String,
    /// Unix milliseconds.
    pub connected_at: u64,
    pub in_flight: u32,
    pub max_in_flight: u32,
    /// Results of this worker that ended up accepted or rejected, this connection and before.
    pub accepted: u64,
    pub rejected: u64,
    /// Accepted results since the last rejected one: the basis of its reputation.
    pub consecutive_valid: u64,
    /// Valid results it had when it was first caught with a wrong one (never caught: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_after: Option<u64>,
    /// Model shards it has run (and holds the weights of), e.g. `all-MiniLM-L6-v2 2/3`.
    #[serde(default)]
    pub shards: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}

/// `GET /v1/stats`: the live numbers of the dashboard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub uptime_s: u64,
    pub workers: WorkerCounts,
    pub jobs: JobCounts,
    pub tasks: TaskCounts,
    /// Replica results that agreed with the accepted result (ever: one per receipt), and those
    /// that did not (since the relay started).
    pub results_accepted: u64,
    pub results_rejected: u64,
    /// Tasks verified per second over the last few seconds.
    pub verified_per_s: f64,
    pub credits_issued: Credits,
    /// Tasks verified in each of the last [`Stats::HISTORY`] whole seconds, oldest first.
    pub verified_history: Vec<u32>,
    /// Replica results rejected in each of the same seconds.
    pub rejected_history: Vec<u32>,
    /// The latest jobs, newest first, with their ids shortened for display.
    pub recent_jobs: Vec<JobSummary>,
    /// Who earned most on this relay.
    pub top_beneficiaries: Vec<Earner>,
    /// Model work: embeddings served through the grid.
    #[serde(default)]
    pub models: ModelStats,
    /// How activations and weights moved between workers since the relay started.
    #[serde(default)]
    pub transport: TransportStats,
}

/// The data plane's counters. Activations the relay never carried are the point of direct
/// connections: `activation_bytes` and `relayed_bytes` stay low while `direct_bytes` grows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportStats {
    /// Activations carried inline in tasks and results through the relay.
    pub activation_bytes: u64,
    /// Peer frames relayed between workers that had no direct connection.
    pub relayed_bytes: u64,
    /// Kept outputs the relay fetched to compare replicas within tolerance.
    pub fetched_bytes: u64,
    /// Received by workers over direct WebRTC connections (as they report it).
    pub direct_bytes: u64,
    pub connections_up: u64,
    pub connections_failed: u64,
    /// WebRTC signals carried between paired workers.
    pub signals: u64,
    /// Signals and peer frames refused between workers the relay had not paired.
    pub refused: u64,
    /// Fetches between workers by path, as the fetching workers report them: mean latency is
    /// `micros / count`, throughput `bytes / micros`.
    #[serde(default)]
    pub direct_fetches: crate::frame::FetchTotals,
    #[serde(default)]
    pub relayed_fetches: crate::frame::FetchTotals,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    /// Models served, by name.
    pub served: Vec<String>,
    pub requests: u64,
    pub inputs: u64,
    /// Real (not padding) tokens embedded since the relay started.
    pub tokens: u64,
    /// Over the last ten seconds.
    pub tokens_per_s: f64,
    /// Tokens embedded in each of the last [`Stats::HISTORY`] whole seconds, oldest first.
    pub tokens_history: Vec<u32>,
}

impl Stats {
    pub const HISTORY: usize = 60;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job id cut to its first few characters, e.g. `job_3f9a12…`.
    pub id: String,
    pub status: JobStatus,
    pub tasks: u32,
    pub completed: u32,
    pub failed: u32,
    /// Unix milliseconds.
    pub created_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earner {
    pub address: Address,
    pub earned: Credits,
    pub verified_tasks: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounts {
    pub online: u32,
    pub native: u32,
    pub browser: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    pub queued: u32,
    pub running: u32,
    pub completed: u32,
    pub failed: u32,
}

/// `GET /v1/accounts/{address}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub address: Address,
    pub balance: Credits,
    /// Credits earned by verified work, ever.
    pub earned: Credits,
    pub verified_tasks: u64,
    /// Credits the relay's operator granted it, ever.
    #[serde(default)]
    pub granted: Credits,
    /// Credits it spent on jobs and requests, ever. `balance = earned + granted - spent`.
    #[serde(default)]
    pub spent: Credits,
}

/// `GET /v1/receipts?account=0x…&after=NEXT&limit=N`, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiptPage {
    pub receipts: Vec<SignedReceipt>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/relay`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelayInfo {
    pub name: String,
    pub version: String,
    /// The address that signs this relay's receipts.
    pub address: Address,
    pub protocol: u32,
    pub max_blob_bytes: u64,
    pub max_request_bytes: u64,
    pub max_binding_bytes: u64,
}

/// Every error answer: `{"error":{"code":"…","message":"…"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// The machine-readable cause of an error. Clients and tests match on these, never on messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON, or not the JSON this endpoint takes.
    InvalidJson,
    /// Well-formed, but the values do not make a valid request.
    InvalidRequest,
    /// The WGSL does not parse or validate; the message names line and column.
    InvalidWgsl,
    /// The job's bindings do not match the shader's `@group(0)` storage buffers.
    BindingMismatch,
    Unauthorized,
    InsufficientCredits,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// The relay is shutting down or overloaded; try again.
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidWgsl
            | ErrorCode::BindingMismatch => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::InsufficientCredits => 402,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code, message: message.into() } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_request_in_the_contract_shape_parses() {
        let json = r#"{"kind":"wgsl","shader":"@compute @workgroup_size(64) fn main() {}",
            "entry_point":"main","workgroups":[4],
            "bindings":[{"binding":0,"dtype":"u32","data":"AQAAAA=="},
                        {"binding":1,"dtype":"f32","output":true,"size":16}],
            "tasks":[{"workgroups":[2,2],"bindings":{"0":{"dtype":"u32","data":"AgAAAA=="}}}],
            "redundancy":2,"tolerance":{"rel":1e-5,"abs":1e-6}}"#;
        let JobRequest::Wgsl(job) = serde_json::from_str(json).unwrap();
        assert_eq!(job.workgroups, Some(Workgroups([4, 1, 1])));
        assert_eq!(job.tasks[0].workgroups, Some(Workgroups([2, 2, 1])));
        assert_eq!(job.tasks[0].bindings[&0].data, Some(Data::Inline(Bytes(vec![2, 0, 0, 0]))));
        assert!(job.bindings[1].output);
        assert_eq!(job.redundancy, Some(2));
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        let typo = r#"{"kind":"wgsl","shader":"","redundancyy":2}"#;
        assert!(serde_json::from_str::<JobRequest>(typo).is_err());
        let kind = r#"{"kind":"cuda","shader":""}"#;
        assert!(serde_json::from_str::<JobRequest>(kind).is_err());
        let dims = r#"{"kind":"wgsl","shader":"","workgroups":[1,2,3,4]}"#;
        assert!(serde_json::from_str::<JobRequest>(dims).is_err());
    }

    #[test]
    fn error_body_has_the_contract_shape() {
        let body = ErrorBody::new(ErrorCode::InvalidWgsl, "line 3, column 5: expected ';'");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"invalid_wgsl","message":"line 3, column 5: expected ';'"}}"#
        );
    }
}
