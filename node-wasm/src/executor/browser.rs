//! Browser GPU execution: WebGPU resolves its promises on the event loop, so launches are simply
//! awaited in place.

use hyphae_proto::frame::{AdapterInfo, TaskFailure};
use hyphae_shaders::{ExecError, Gpu};

use super::{Execute, PreparedTask, failure_of};

pub struct GpuExecutor {
    gpu: Gpu,
    adapter: AdapterInfo,
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
        Ok(GpuExecutor { gpu, adapter })
    }
}

impl Execute for GpuExecutor {
    fn adapter(&self) -> AdapterInfo {
        self.adapter.clone()
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        self.gpu.run(&task.launch()).await.map_err(|e| failure_of(&e))
    }
}
