//! Native GPU execution: wgpu's native backends block in `device.poll`, so the GPU gets a thread
//! of its own that runs launches one after another, and the async task loop awaits its answers.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use futures::channel::oneshot;
use hyphae_proto::BlobId;
use hyphae_proto::frame::{AdapterInfo, FailureKind, TaskFailure};
use hyphae_shaders::{ExecError, Gpu};

use super::{Execute, PreparedTask, ShardCache, failure, failure_of};

type Job = (PreparedTask, oneshot::Sender<Result<Vec<Vec<u8>>, TaskFailure>>);

pub struct GpuExecutor {
    adapter: AdapterInfo,
    jobs: mpsc::Sender<Job>,
    shards: ShardCache,
}

impl GpuExecutor {
    /// Opens the GPU wgpu picks (`WGPU_BACKEND` chooses the backend) and starts its thread.
    pub fn new() -> Result<GpuExecutor, ExecError> {
        let gpu = Arc::new(pollster::block_on(Gpu::new())?);
        Ok(GpuExecutor::with_gpu(gpu))
    }

    pub fn with_gpu(gpu: Arc<Gpu>) -> GpuExecutor {
        let adapter = gpu.adapter_info();
        let shards = ShardCache::default();
        let (jobs, queue) = mpsc::channel::<Job>();
        let cache = shards.clone();
        thread::Builder::new()
            .name("gpu".into())
            .spawn(move || {
                for (task, answer) in queue {
                    let result = match task {
                        PreparedTask::Kernel(kernel) => {
                            pollster::block_on(gpu.run(&kernel.launch())).map_err(|e: ExecError| failure_of(&e))
                        }
                        PreparedTask::Shard(shard) => pollster::block_on(cache.run(&gpu, shard)),
                    };
                    let _ = answer.send(result);
                }
            })
            .expect("spawning the GPU thread");
        GpuExecutor { adapter, jobs, shards }
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
        let (answer, result) = oneshot::channel();
        self.jobs.send((task, answer)).map_err(|_| failure(FailureKind::Device, "the GPU thread has stopped"))?;
        result.await.unwrap_or_else(|_| Err(failure(FailureKind::Device, "the GPU thread panicked")))
    }
}
