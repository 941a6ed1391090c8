//! Simulated workers for the relay benchmarks: they speak the real worker protocol over a real
//! WebSocket, but "compute" on the CPU the trivial kernel (`b[0] = a[0] + 1`) or small matmuls, so
//! thousands fit in one process and the relay, not a GPU, is what a benchmark measures.

use futures::{SinkExt, StreamExt};
use hyphae_proto::api::{BindingOverride, BindingSpec, Check, JobRequest, MatmulCheck, TaskSpec, WgslJob, Workgroups};
use hyphae_proto::frame::{
    AdapterInfo, DeviceLimits, Hello, Output, Platform, Source, TaskAssignment, TaskOutput, ToRelay, ToWorker, Work,
    login_message,
};
use hyphae_proto::tensor::{Bytes, Data, f32s, to_bytes, u32s};
use hyphae_proto::{Credits, Dtype, PROTOCOL_VERSION, SecretKey, Sha256};
use hyphae_relay::store::records::ApiKeyRecord;
use hyphae_relay::store::{Batch, Op, key_account};
use hyphae_relay::{AppState, Config, Relay};
use hyphae_shaders::reference;
use tokio_tungstenite::tungstenite::Message;

use super::jobs::{MatmulCase, matmul_job};

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The kernel every simulated task runs.
pub const SHADER: &str = "@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read_write> b: array<u32>;
@compute @workgroup_size(1) fn main() { b[0] = a[0] + 1u; }";

/// A relay in this process, on a loopback port and a fresh data directory, serving until dropped.
pub struct InProcessRelay {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    /// An API key with a balance no run can exhaust.
    pub api_key: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
}

/// Data directories of stopped relays, removed by [`remove_stopped_data_dirs`]. A relay's store
/// closes when the last handle on its state goes, which may be well after `stop` (a task aborted
/// but not yet dropped); removing its files before then stalled the next relay's store.
static STOPPED: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

/// Removes the data directories of stopped relays: call once nothing can hold a relay's state any
/// more (the runtime that ran them dropped).
pub fn remove_stopped_data_dirs() {
    STOPPED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
}

impl InProcessRelay {
    /// Each worker holds one task at a time; `configure` changes the rest.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> anyhow::Result<InProcessRelay> {
        let dir = tempfile::tempdir()?;
        let mut config = Config::new("127.0.0.1:0".parse()?, dir.path().to_owned());
        config.scheduler.max_in_flight = 1;
        configure(&mut config);
        let relay = Relay::start(config).await?;
        let addr = relay.local_addr();
        let state = relay.state().clone();
        let api_key = bench_api_key(&state).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(relay.serve(async {
            let _ = stopped.await;
        }));
        Ok(InProcessRelay { addr, state, api_key, stop: Some(stop), server, dir })
    }

    /// Stops serving and waits for the relay to finish; its data directory stays until
    /// [`remove_stopped_data_dirs`].
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        STOPPED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(self.dir);
    }
}

/// The API key benchmarks submit with, created with a balance no run can exhaust.
async fn bench_api_key(state: &AppState) -> anyhow::Result<&'static str> {
    const KEY: &str = "hyk_bench";
    let hash = Sha256::of(KEY.as_bytes());
    let account = key_account(&hash);
    let mut batch = Batch::new();
    batch.push(Op::PutApiKey { hash, record: ApiKeyRecord { name: "bench".into(), created_at: 0 }, account });
    batch.push(Op::Grant { account, amount: Credits::whole(1 << 40) });
    state.store.commit(batch).await?;
    Ok(KEY)
}

/// The input of task `index` of job `seed`: what [`trivial_job`] sends, so a run can check results.
pub fn trivial_input(seed: u32, index: u32) -> u32 {
    seed.wrapping_mul(1_000_003).wrapping_add(index)
}

/// A job of `tasks` trivial tasks, each with its own input.
pub fn trivial_job(seed: u32, tasks: u32, redundancy: u32) -> JobRequest {
    let tasks = (0..tasks)
        .map(|i| TaskSpec {
            workgroups: None,
            bindings: [(
                0,
                BindingOverride {
                    data: Some(Data::Inline(Bytes(to_bytes(&[trivial_input(seed, i)], u32::to_le_bytes)))),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    JobRequest::Wgsl(WgslJob {
        shader: SHADER.into(),
        entry_point: "main".into(),
        workgroups: Some(Workgroups([1, 1, 1])),
        bindings: vec![
            BindingSpec { binding: 0, dtype: Dtype::U32, data: None, output: false, size: None },
            BindingSpec { binding: 1, dtype: Dtype::U32, data: None, output: true, size: Some(4) },
        ],
        tasks,
        redundancy: Some(redundancy),
        tolerance: None,
        credits_per_task: None,
        verify: None,
    })
}

/// Logs in as `key` (its own beneficiary), holding at most `max_in_flight` tasks.
pub async fn login(addr: std::net::SocketAddr, key: &SecretKey, max_in_flight: u32) -> anyhow::Result<Socket> {
    // As the relay's side does (`hyphae_relay::ws::READ_BUFFER`): frames are small. Nagle off,
    // as the native worker has it.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(hyphae_relay::ws::READ_BUFFER);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/workers/ws"), Some(config), true).await?;
    let Some(Ok(Message::Binary(first))) = socket.next().await else { anyhow::bail!("no challenge") };
    let ToWorker::Challenge { relay, nonce, .. } = ToWorker::decode(&first)? else { anyhow::bail!("no challenge") };
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        worker: key.address(),
        signature: key.sign_message(login_message(&relay, &nonce).as_bytes()),
        beneficiary: key.address(),
        platform: Platform::Native,
        adapter: AdapterInfo {
            name: "simulated".into(),
            backend: "cpu".into(),
            limits: DeviceLimits {
                max_buffer_size: 1 << 30,
                max_storage_buffer_binding_size: 1 << 27,
                max_storage_buffers_per_shader_stage: 8,
                max_compute_workgroups_per_dimension: 65535,
                max_compute_invocations_per_workgroup: 256,
                max_compute_workgroup_storage_size: 16384,
            },
            ..AdapterInfo::default()
        },
        agent: "bench".into(),
        max_in_flight,
        max_shards: 0,
    };
    socket.send(Message::Binary(ToRelay::Hello(Box::new(hello)).encode().into())).await?;
    Ok(socket)
}

/// The input `a[0]` of a trivial task.
fn trivial_task_input(task: &TaskAssignment) -> anyhow::Result<u32> {
    Ok(u32::from_le_bytes(inline(task, 0)?[..4].try_into()?))
}

/// The bytes of binding `n` of a kernel task, sent inline.
fn inline(task: &TaskAssignment, n: u32) -> anyhow::Result<&[u8]> {
    let Work::Kernel(kernel) = &task.work else { anyhow::bail!("expected a kernel") };
    match kernel.bindings.iter().find(|b| b.binding == n).and_then(|b| b.source.as_ref()) {
        Some(Source::Inline(b)) => Ok(&b.0),
        _ => anyhow::bail!("expected binding {n} inline"),
    }
}

/// The right output of a trivial or [`checked_matmul_job`] task: its binding and bytes.
pub fn right_output(task: &TaskAssignment) -> anyhow::Result<(u32, Vec<u8>)> {
    let Work::Kernel(kernel) = &task.work else { anyhow::bail!("expected a kernel") };
    if kernel.shader == SHADER {
        return Ok((1, trivial_task_input(task)?.wrapping_add(1).to_le_bytes().to_vec()));
    }
    let dims: Vec<u32> = u32s(inline(task, 0)?).collect();
    let (a, b): (Vec<f32>, Vec<f32>) = (f32s(inline(task, 1)?).collect(), f32s(inline(task, 2)?).collect());
    let [m, n, k] = dims[..] else { anyhow::bail!("expected the dims [m, n, k]") };
    let c = reference::matmul::matmul(&a, &b, m as usize, n as usize, k as usize);
    Ok((3, to_bytes(&c, f32::to_le_bytes)))
}

/// The result frame answering `task` with `data` in output `binding`.
pub fn answer(task: &TaskAssignment, binding: u32, data: Vec<u8>) -> Message {
    let result = ToRelay::Result(Box::new(TaskOutput {
        lease: task.lease,
        outputs: vec![Output { binding, data: Bytes(data) }],
        elapsed_us: 0,
    }));
    Message::Binary(result.encode().into())
}

/// A job of `tasks` small matmuls (sides 4 to 8) that asks the relay to check every result with
/// Freivalds' algorithm, so one result a task is enough; and the cases, to check results with.
pub fn checked_matmul_job(seed: u32, tasks: u32) -> (JobRequest, Vec<MatmulCase>) {
    let (mut job, cases) = matmul_job(tasks as usize, 4..=8, 2, u64::from(seed));
    let JobRequest::Wgsl(wgsl) = &mut job;
    wgsl.verify = Some(Check::Matmul(MatmulCheck { a: 1, b: 2, c: 3, dims: Some(0), m: None, k: None, n: None }));
    (job, cases)
}

/// Whether `output` is the product of `case`, within the tolerance of [`matmul_job`].
pub fn matmul_right(case: &MatmulCase, output: &[u8]) -> bool {
    let want = reference::matmul::matmul(&case.a, &case.b, case.m, case.n, case.k);
    let got: Vec<f32> = f32s(output).collect();
    got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-5 + 1e-4 * w.abs())
}
