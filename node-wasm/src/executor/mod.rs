//! Running a task: [`Execute`] is what the task loop needs from a GPU, [`GpuExecutor`] the real one
//! over `hyphae_shaders::Gpu`, for kernels and model shards alike. Tests wrap it (a lying worker
//! perturbs its outputs); nothing else does.

#[cfg_attr(not(target_arch = "wasm32"), path = "native.rs")]
#[cfg_attr(target_arch = "wasm32", path = "browser.rs")]
mod imp;
mod shard;

use hyphae_proto::BlobId;
use hyphae_proto::frame::{AdapterInfo, FailureKind, ShardSpec, TaskFailure};
use hyphae_shaders::ExecError;
pub use imp::GpuExecutor;
pub use shard::ShardCache;

/// Model shards a worker keeps loaded on its GPU at once.
pub const fn shard_capacity() -> usize {
    shard::CAPACITY
}

/// A task ready to run: the assignment with every blob it needs resolved to its bytes.
#[derive(Debug, Clone)]
pub enum PreparedTask {
    Kernel(KernelTask),
    Shard(ShardTask),
}

#[derive(Debug, Clone)]
pub struct KernelTask {
    pub shader: String,
    pub entry_point: String,
    pub workgroups: [u32; 3],
    pub bindings: Vec<PreparedBinding>,
}

#[derive(Debug, Clone)]
pub struct PreparedBinding {
    pub binding: u32,
    pub access: hyphae_proto::frame::Access,
    /// `None`: zeros of `size` bytes.
    pub bytes: Option<Vec<u8>>,
    pub size: u64,
}

/// A batch through one model shard.
#[derive(Debug, Clone)]
pub struct ShardTask {
    /// The model's `config.json`.
    pub config: String,
    pub spec: ShardSpec,
    pub weights: BlobId,
    /// The weights' safetensors bytes; `None` when the executor said it holds them already.
    pub weights_bytes: Option<Vec<u8>>,
    pub batch: u32,
    pub seq: u32,
    pub mask: Vec<u32>,
    /// Little-endian token ids (first shard) or hidden states.
    pub input: Vec<u8>,
    pub output_size: u64,
}

impl KernelTask {
    pub fn launch(&self) -> hyphae_shaders::Launch<'_> {
        hyphae_shaders::Launch {
            shader: &self.shader,
            entry_point: &self.entry_point,
            workgroups: self.workgroups,
            bindings: self
                .bindings
                .iter()
                .map(|b| hyphae_shaders::LaunchBinding {
                    binding: b.binding,
                    access: b.access,
                    contents: match &b.bytes {
                        Some(bytes) => hyphae_shaders::Contents::Bytes(bytes),
                        None => hyphae_shaders::Contents::Zeros(b.size),
                    },
                })
                .collect(),
        }
    }
}

/// Something that runs tasks: returns the outputs in binding order (kernels: the `read_write`
/// buffers; shards: the one output).
#[allow(async_fn_in_trait)] // Used generically, never as `dyn`; wasm futures are not `Send`.
pub trait Execute {
    fn adapter(&self) -> AdapterInfo;
    /// Whether the shard weights `id` are loaded on the GPU already (then they are not fetched).
    fn holds(&self, id: &BlobId) -> bool;
    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure>;
}

/// How an executor error is reported to the relay.
pub fn failure_of(e: &ExecError) -> TaskFailure {
    TaskFailure { kind: e.failure_kind(), message: e.to_string() }
}

pub fn failure(kind: FailureKind, message: impl Into<String>) -> TaskFailure {
    TaskFailure { kind, message: message.into() }
}
