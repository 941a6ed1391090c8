//! Browser GPU execution: WebGPU resolves its promises on the event loop, so launches are simply
//! awaited in place.

use hyphae_proto::frame::{AdapterInfo, TaskFailure};
use hyphae_shaders::{ExecError, Gpu};

use super::{Execute, PreparedTask, failure_of};

pub struct GpuExecutor {
    gpu: Gpu,
}

impl GpuExecutor {
    pub async fn new() -> Result<GpuExecutor, ExecError> {
        Ok(GpuExecutor { gpu: Gpu::new().await? })
    }
}

impl Execute for GpuExecutor {
    fn adapter(&self) -> AdapterInfo {
        self.gpu.adapter_info()
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        self.gpu.run(&task.launch()).await.map_err(|e| failure_of(&e))
    }
}
