//! Frames of the worker WebSocket (`GET /v1/workers/ws`): [`ToWorker`] from the relay, [`ToRelay`]
//! from the worker, each one binary message encoded with postcard.
//!
//! The conversation: relay sends [`ToWorker::Challenge`]; worker answers [`ToRelay::Hello`], signed
//! over [`login_message`]; relay answers [`ToWorker::Welcome`] (or [`ToWorker::Refused`] and
//! closes). Then tasks flow relay → worker, results and failures worker → relay, receipts relay →
//! worker once a result is verified, and pings both ways keep dead sockets from holding leases.

use serde::{Deserialize, Serialize};

use crate::peer::{PeerFrame, Signal};
use crate::tensor::Bytes;
use crate::{Address, BlobId, Dtype, LeaseId, ProtoError, Sha256, Signature, SignedReceipt, TaskId};

/// The text a worker signs (EIP-191) to prove it holds its key. Naming the relay keeps a login
/// to one relay from being replayed to another; the nonce keeps it from being replayed at all.
pub fn login_message(relay: &Address, nonce: &[u8; 32]) -> String {
    format!("hyphae worker login\nrelay: {relay}\nnonce: 0x{}", hex::encode(nonce))
}

/// The digest of a task's outputs, laid end to end in binding order. Every receipt of a task
/// carries it as `output_sha256`.
pub fn outputs_sha256<'a>(outputs: impl IntoIterator<Item = &'a [u8]>) -> Sha256 {
    Sha256::of_parts(outputs)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// First frame on every connection.
    Challenge {
        protocol: u32,
        relay: Address,
        nonce: [u8; 32],
    },
    /// Login accepted. The worker may hold up to `max_in_flight` tasks at once.
    Welcome {
        worker: Address,
        max_in_flight: u32,
    },
    /// Login refused (bad signature, wrong protocol); the relay closes the socket after it.
    Refused {
        reason: String,
    },
    Task(Box<TaskAssignment>),
    /// The relay no longer needs this lease (the task was settled by others, or the job failed).
    Cancel {
        lease: LeaseId,
    },
    /// A result of this worker was verified and paid.
    Receipt(Box<SignedReceipt>),
    Ping {
        nonce: u64,
    },
    /// A paired worker's WebRTC setup.
    Signal {
        from: Address,
        signal: Signal,
    },
    /// A frame from a paired worker (or from the relay itself), relayed because no direct
    /// connection carries it.
    Peer {
        from: Address,
        frame: PeerFrame,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToRelay {
    Hello(Box<Hello>),
    Result(Box<TaskOutput>),
    /// The answer to a lease whose output the worker keeps for the peers that need it next
    /// ([`ShardWork::hand_off`]): only its digest comes to the relay.
    Digest(Box<TaskDigest>),
    Failed {
        lease: LeaseId,
        failure: TaskFailure,
    },
    Pong {
        nonce: u64,
    },
    /// WebRTC setup for a worker the relay paired this one with.
    Signal {
        to: Address,
        signal: Signal,
    },
    /// A frame for a paired worker (or for the relay, answering its `Want`), to relay.
    Peer {
        to: Address,
        frame: PeerFrame,
    },
    /// Bytes this worker moved over direct peer connections since its last report.
    Traffic(PeerTraffic),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub worker: Address,
    /// Signature by `worker`'s key over [`login_message`].
    pub signature: Signature,
    /// Who earns this worker's credits.
    pub beneficiary: Address,
    pub platform: Platform,
    pub adapter: AdapterInfo,
    /// Software and version, e.g. `hyphae-node/0.1.0`.
    pub agent: String,
    /// How many tasks the worker wants at once (the relay may grant fewer).
    pub max_in_flight: u32,
    /// How many model shards the worker keeps loaded at once (its GPU memory); 0: no limit. A
    /// worker holding as many is given other shards only when nobody with room takes them.
    pub max_shards: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Native,
    Browser,
}

/// What a worker's GPU is, as wgpu reports it. Backend and vendor make its numeric class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterInfo {
    pub name: String,
    pub vendor: u32,
    pub device: u32,
    /// `cpu`, `integrated_gpu`, `discrete_gpu`, `virtual_gpu` or `other`.
    pub device_type: String,
    /// `vulkan`, `metal`, `dx12`, `gl` or `browser_webgpu`.
    pub backend: String,
    pub driver: String,
    pub limits: DeviceLimits,
}

/// The device limits that decide which tasks a worker can take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLimits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_storage_size: u32,
}

/// One task handed to one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskAssignment {
    pub lease: LeaseId,
    pub task: TaskId,
    pub work: Work,
    /// Milliseconds the worker has before the relay gives the task to someone else.
    pub deadline_ms: u64,
}

/// What a task computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Work {
    /// One dispatch of a WGSL kernel submitted through `POST /v1/jobs`.
    Kernel(KernelWork),
    /// One pipeline shard of a model (a range of its layers) on a batch of sequences.
    Shard(Box<ShardWork>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelWork {
    pub shader: String,
    pub entry_point: String,
    pub workgroups: [u32; 3],
    /// Sorted by binding number.
    pub bindings: Vec<TaskBinding>,
}

/// A shard task. Its one output (binding 0, f32) is the hidden states `[batch, seq, hidden]`, or
/// for the pooling shard the normalized embeddings `[batch, hidden]`: `output_size` bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardWork {
    /// The model's name, e.g. `all-MiniLM-L6-v2`.
    pub model: String,
    /// The model's `config.json`, verbatim.
    pub config: String,
    pub shard: ShardSpec,
    /// The shard's weights: a safetensors file holding exactly the tensors it needs.
    pub weights: BlobId,
    pub weights_size: u64,
    pub batch: u32,
    pub seq: u32,
    /// One little-endian u32 per token, `[batch, seq]`: 1 for a real token, 0 for padding.
    pub mask: Bytes,
    /// Token ids (u32) for the first shard, the previous shard's hidden states (f32) otherwise.
    pub input: Source,
    pub input_size: u64,
    pub output_size: u64,
    /// Keep the output for the workers of the next shard and answer with [`ToRelay::Digest`].
    pub hand_off: bool,
    /// Workers that hold `weights` and may serve them (checked against the blob id).
    pub weight_peers: Vec<Address>,
}

/// Which part of a model a shard is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
    /// Layers `[start, end)`.
    pub layers: [u32; 2],
    /// The first shard also embeds the tokens.
    pub embeddings: bool,
    /// The last shard also pools and normalizes.
    pub pooling: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskBinding {
    pub binding: u32,
    pub dtype: Dtype,
    pub access: Access,
    /// Initial contents; `None` means zeros of `size` bytes (outputs only).
    pub source: Option<Source>,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`: read back and returned as an output.
    ReadWrite,
}

/// Where a buffer's bytes come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Source {
    Inline(Bytes),
    /// Fetched by the worker from `GET /v1/blobs/{id}` and checked against the id.
    Blob(BlobId),
    /// Held by other workers (the verified output of a previous shard), fetched from them.
    Peer(PeerSource),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerSource {
    pub sha256: Sha256,
    /// Workers holding exactly these bytes, best first.
    pub holders: Vec<Address>,
}

/// A worker's answer to a lease: the read_write buffers, in binding order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskOutput {
    pub lease: LeaseId,
    pub outputs: Vec<Output>,
    /// Time on the worker from receiving the task to sending this, for the dashboard.
    pub elapsed_us: u64,
}

/// A result kept on the worker: the relay compares digests, and fetches the bytes
/// ([`PeerFrame::Want`]) only when replicas differ and must be compared within tolerance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDigest {
    pub lease: LeaseId,
    /// [`outputs_sha256`] of the output.
    pub sha256: Sha256,
    pub size: u64,
    pub elapsed_us: u64,
}

/// Counters a worker reports about its data plane, as deltas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTraffic {
    /// Payload bytes sent over direct connections.
    pub sent: u64,
    pub connections_up: u32,
    pub connections_failed: u32,
    /// Fetches that completed over a direct connection.
    pub direct: FetchTotals,
    /// Fetches that completed through the relay.
    pub relayed: FetchTotals,
}

/// Fetches (of activations or weights, from other workers) that completed over one path: how
/// many, their bytes, and the time from asking to holding every byte checked (a connection's
/// setup not included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchTotals {
    pub count: u64,
    pub bytes: u64,
    pub micros: u64,
}

impl FetchTotals {
    pub fn add(&mut self, bytes: u64, took: std::time::Duration) {
        self.count += 1;
        self.bytes += bytes;
        self.micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    }

    pub fn merge(&mut self, other: &FetchTotals) {
        self.count += other.count;
        self.bytes += other.bytes;
        self.micros += other.micros;
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub binding: u32,
    pub data: Bytes,
}

/// Why a worker could not run a task. Not a wrong answer: the task goes to someone else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// The task needs more than this device allows (buffer size, workgroups, bindings).
    ExceedsLimits,
    /// The shader failed to compile or validate on this device.
    InvalidShader,
    /// A blob could not be fetched or did not match its id.
    MissingBlob,
    /// The device reported an error, ran out of memory or was lost.
    Device,
    /// The worker is shutting down.
    ShuttingDown,
}

impl ToWorker {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("frames always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<ToWorker, ProtoError> {
        postcard::from_bytes(bytes).map_err(|e| ProtoError::Frame(e.to_string()))
    }
}

impl ToRelay {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("frames always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<ToRelay, ProtoError> {
        postcard::from_bytes(bytes).map_err(|e| ProtoError::Frame(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobId, SecretKey};

    #[test]
    fn frames_round_trip_through_postcard() {
        let key = SecretKey::random(&mut rand::thread_rng());
        let nonce = [9u8; 32];
        let hello = ToRelay::Hello(Box::new(Hello {
            protocol: crate::PROTOCOL_VERSION,
            worker: key.address(),
            signature: key.sign_message(login_message(&key.address(), &nonce).as_bytes()),
            beneficiary: key.address(),
            platform: Platform::Native,
            adapter: AdapterInfo { name: "llvmpipe".into(), ..AdapterInfo::default() },
            agent: "test".into(),
            max_in_flight: 4,
            max_shards: 0,
        }));
        assert_eq!(ToRelay::decode(&hello.encode()).unwrap(), hello);

        let task = ToWorker::Task(Box::new(TaskAssignment {
            lease: LeaseId(5),
            task: TaskId { job: JobId([3; 12]), index: 1 },
            work: Work::Kernel(KernelWork {
                shader: "fn main() {}".into(),
                entry_point: "main".into(),
                workgroups: [1, 2, 3],
                bindings: vec![TaskBinding {
                    binding: 0,
                    dtype: Dtype::U32,
                    access: Access::Read,
                    source: Some(Source::Inline(Bytes(vec![1, 2, 3, 4]))),
                    size: 4,
                }],
            }),
            deadline_ms: 1000,
        }));
        assert_eq!(ToWorker::decode(&task.encode()).unwrap(), task);

        let shard = ToWorker::Task(Box::new(TaskAssignment {
            lease: LeaseId(6),
            task: TaskId { job: JobId([4; 12]), index: 0 },
            work: Work::Shard(Box::new(ShardWork {
                model: "m".into(),
                config: "{}".into(),
                shard: ShardSpec { index: 1, count: 3, layers: [2, 4], embeddings: false, pooling: false },
                weights: crate::BlobId::of(b"w"),
                weights_size: 1,
                batch: 2,
                seq: 3,
                mask: Bytes(vec![1; 24]),
                input: Source::Blob(crate::BlobId::of(b"x")),
                input_size: 4,
                output_size: 8,
                hand_off: true,
                weight_peers: vec![key.address()],
            })),
            deadline_ms: 1000,
        }));
        assert_eq!(ToWorker::decode(&shard.encode()).unwrap(), shard);

        let signal = ToRelay::Signal { to: key.address(), signal: Signal::Offer { sdp: "v=0".into() } };
        assert_eq!(ToRelay::decode(&signal.encode()).unwrap(), signal);
        let want = ToWorker::Peer {
            from: key.address(),
            frame: PeerFrame::Want { request: 3, sha256: crate::Sha256::of(b"x") },
        };
        assert_eq!(ToWorker::decode(&want.encode()).unwrap(), want);
    }

    #[test]
    fn garbage_is_a_frame_error_not_a_panic() {
        for garbage in [&b""[..], b"\xff\xff\xff\xff\xff", b"\x01\x02"] {
            assert!(matches!(ToRelay::decode(garbage), Err(ProtoError::Frame(_))));
        }
    }

    #[test]
    fn login_signature_names_relay_and_nonce() {
        let relay: Address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().unwrap();
        let message = login_message(&relay, &[0xab; 32]);
        assert!(message.contains("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"));
        assert!(message.ends_with(&"ab".repeat(32)));
    }
}
