//! A worker inside the test process, on its own thread and runtime, with an executor the test
//! picks: the real GPU executor, or [`Lying`] around it.

use std::time::Duration;

use futures::channel::mpsc;
use hyphae_node::blobs::BlobCache;
use hyphae_node::executor::{Execute, GpuExecutor, PreparedTask};
use hyphae_node::{ControlHandle, Event, Throttle, WorkerConfig};
use hyphae_proto::frame::{Access, AdapterInfo, Platform, TaskFailure};
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

/// Test code only: answers every task with random bytes of the right sizes, without running it.
pub struct Noise(pub GpuExecutor);

impl Execute for Noise {
    fn adapter(&self) -> AdapterInfo {
        self.0.adapter()
    }

    fn holds(&self, id: &hyphae_proto::BlobId) -> bool {
        self.0.holds(id)
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        use rand::RngCore;
        let mut outputs: Vec<Vec<u8>> = output_sizes(&task).into_iter().map(|size| vec![0; size as usize]).collect();
        for output in &mut outputs {
            rand::thread_rng().fill_bytes(output);
        }
        Ok(outputs)
    }
}

/// The sizes of the outputs a task asks for, in order.
fn output_sizes(task: &PreparedTask) -> Vec<u64> {
    match task {
        PreparedTask::Kernel(k) => {
            k.bindings.iter().filter(|b| b.access == Access::ReadWrite).map(|b| b.size).collect()
        }
        PreparedTask::Shard(s) => vec![s.output_size],
    }
}

/// Test code only: a lazy worker. It computes its first task, then answers every later task of
/// the same output shape with that first result, as a worker skipping the work would.
pub struct Stale {
    pub executor: GpuExecutor,
    first: std::sync::Mutex<Option<Vec<Vec<u8>>>>,
}

impl Stale {
    pub fn new(executor: GpuExecutor) -> Stale {
        Stale { executor, first: std::sync::Mutex::new(None) }
    }
}

impl Execute for Stale {
    fn adapter(&self) -> AdapterInfo {
        self.executor.adapter()
    }

    fn holds(&self, id: &hyphae_proto::BlobId) -> bool {
        self.executor.holds(id)
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        let remembered = self.first.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let sizes = output_sizes(&task);
        if let Some(first) = remembered.filter(|first| first.iter().map(|o| o.len() as u64).eq(sizes.iter().copied())) {
            return Ok(first);
        }
        let outputs = self.executor.execute(task).await?;
        *self.first.lock().unwrap_or_else(|p| p.into_inner()) = Some(outputs.clone());
        Ok(outputs)
    }
}

/// Test code only: honest for its first `honest_for` tasks, long enough to be trusted, then lying
/// the way [`Lying`] does.
pub struct Turncoat {
    pub executor: GpuExecutor,
    pub honest_for: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl Turncoat {
    pub fn new(executor: GpuExecutor, honest_for: usize) -> Turncoat {
        Turncoat { executor, honest_for, done: Default::default() }
    }
}

impl Execute for Turncoat {
    fn adapter(&self) -> AdapterInfo {
        self.executor.adapter()
    }

    fn holds(&self, id: &hyphae_proto::BlobId) -> bool {
        self.executor.holds(id)
    }

    async fn execute(&self, task: PreparedTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        let mut outputs = self.executor.execute(task).await?;
        if self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= self.honest_for {
            for output in &mut outputs {
                perturb(output);
            }
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
