//! Native GPU execution: wgpu's native backends block in `device.poll`, so the GPU gets a thread
//! of its own that runs launches one after another, and the async task loop awaits its answers.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use futures::channel::oneshot;
use hyphae_proto::frame::{AdapterInfo, FailureKind, TaskFailure};
use hyphae_shaders::{ExecError, Gpu};

use super::{Execute, PreparedTask, failure, failure_of};

type Job = (PreparedTask, oneshot::Sender<Result<Vec<Vec<u8>>, ExecError>>);

pub struct GpuExecutor {
    adapter: AdapterInfo,
    jobs: mpsc::Sender<Job>,
}

impl GpuExecutor {
    /// Opens the GPU wgpu picks (`WGPU_BACKEND` chooses the backend) and starts its thread.
    pub fn new() -> Result<GpuExecutor, ExecError> {
        let gpu = Arc::new(pollster::block_on(Gpu::new())?);
        Ok(GpuExecutor::with_gpu(gpu))
    }

    pub fn with_gpu(gpu: Arc<Gpu>) -> GpuExecutor {
        let adapter = gpu.adapter_info();
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("gpu".into())
            .spawn(move || {
                for (task, answer) in queue {
                    let result = pollster::block_on(gpu.run(&task.launch()));
                    let _ = answer.send(result);
                }
            })
            .expect("spawning the GPU thread");
        GpuExecutor { adapter, jobs }
    }
}

impl Execute for GpuExecutor {
    fn adapter(&self) -> AdapterInfo {
        self.adapter.clone()
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        let (answer, result) = oneshot::channel();
        self.jobs.send((task, answer)).map_err(|_| failure(FailureKind::Device, "the GPU thread has stopped"))?;
        match result.await {
            Ok(Ok(outputs)) => Ok(outputs),
            Ok(Err(e)) => Err(failure_of(&e)),
            Err(_) => Err(failure(FailureKind::Device, "the GPU thread panicked")),
        }
    }
}
