//! Browser GPU execution: WebGPU resolves its promises on the event loop, so launches are simply
//! awaited in place.

use hyphae_proto::BlobId;
use hyphae_proto::frame::{AdapterInfo, TaskFailure};
use hyphae_shaders::{ExecError, Gpu};

use super::{Execute, PreparedTask, ShardCache, failure_of};

pub struct GpuExecutor {
    gpu: Gpu,
    adapter: AdapterInfo,
    shards: ShardCache,
}

impl GpuExecutor {
    /// Opens the browser's WebGPU adapter. Browsers often leave the adapter's name empty to
    /// limit fingerprinting; `label` (the page's reading of `GPUAdapterInfo`) names it then.
    pub async fn new(label: Option<String>) -> Result<GpuExecutor, ExecError> {
        let gpu = Gpu::new().await?;
        let mut adapter = gpu.adapter_info();
        if adapter.name.is_empty() {
            adapter.name = label.filter(|l| !l.is_empty()).unwrap_or_else(|| "WebGPU adapter".to_owned());
        }
        Ok(GpuExecutor { gpu, adapter, shards: ShardCache::default() })
    }
}

impl Execute for GpuExecutor {
    fn adapter(&self) -> AdapterInfo {
        self.adapter.clone()
    }

    fn holds(&self, id: &BlobId) -> bool {
        self.shards.holds(id)
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        match task {
            PreparedTask::Kernel(kernel) => self.gpu.run(&kernel.launch()).await.map_err(|e| failure_of(&e)),
            PreparedTask::Shard(shard) => self.shards.run(&self.gpu, shard).await,
        }
    }
}
