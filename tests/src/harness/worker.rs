//! A worker inside the test process, on its own thread and runtime, with an executor the test
//! picks: the real GPU executor, or [`Lying`] around it.

use std::time::Duration;

use futures::channel::mpsc;
use hyphae_node::blobs::BlobCache;
use hyphae_node::executor::{Execute, GpuExecutor, PreparedTask};
use hyphae_node::{ControlHandle, Event, Throttle, WorkerConfig};
use hyphae_proto::frame::{AdapterInfo, Platform, TaskFailure};
use hyphae_proto::{Address, SecretKey};
use tokio::sync::oneshot;

use super::perturb;

/// Test code only: runs every task honestly on the GPU, then corrupts the outputs.
pub struct Lying(pub GpuExecutor);

impl Execute for Lying {
    fn adapter(&self) -> AdapterInfo {
        self.0.adapter()
    }

    fn holds(&self, id: &hyphae_proto::BlobId) -> bool {
        self.0.holds(id)
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        let mut outputs = self.0.execute(task).await?;
        for output in &mut outputs {
            perturb(output);
        }
        Ok(outputs)
    }
}

pub struct InProcessWorker {
    pub address: Address,
    pub beneficiary: Address,
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Pause and duty cycle.
    pub throttle: ControlHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessWorker {
    pub fn start<E: Execute + Send + 'static>(relay: &str, executor: E) -> InProcessWorker {
        let key = SecretKey::random(&mut rand::thread_rng());
        let beneficiary = SecretKey::random(&mut rand::thread_rng()).address();
        let (tx, events) = mpsc::unbounded();
        let (throttle, control) = hyphae_node::control(Throttle::default());
        let config = WorkerConfig {
            relay: relay.to_owned(),
            key: key.clone(),
            beneficiary,
            max_in_flight: 2,
            platform: Platform::Native,
            agent: "hyphae-tests".into(),
            blob_cache: BlobCache::default(),
            events: Some(tx),
            silence: Duration::from_secs(60),
            control,
            rtc: None,
            max_shards: hyphae_node::executor::shard_capacity() as u32,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            let stop = async {
                let _ = stopped.await;
            };
            if let Err(e) = runtime.block_on(hyphae_node::run(config, executor, stop)) {
                tracing::error!(error = %e, "in-process worker stopped");
            }
        });
        InProcessWorker {
            address: key.address(),
            beneficiary,
            events,
            throttle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
