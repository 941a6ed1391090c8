//! `cargo xtask bench relay`: how many tasks per second the relay verifies, and how fast it hands
//! out the next task, with 100 and 1,000 simulated workers on loopback.
//!
//! The relay is the real one (in this process, on a real port, with its sled store and receipt
//! signing); the workers speak the real protocol over real WebSockets but compute the trivial
//! kernel on the CPU (`b[0] = a[0] + 1`), so the relay, not a GPU, is what is measured. Tasks
//! have redundancy 2. Dispatch latency is measured at the worker: from sending a result to
//! receiving its next task (each worker holds one task at a time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hyphae_proto::api::{BindingOverride, BindingSpec, JobRequest, TaskSpec, WgslJob, Workgroups};
use hyphae_proto::frame::{
    AdapterInfo, DeviceLimits, Hello, Output, Platform, TaskOutput, ToRelay, ToWorker, login_message,
};
use hyphae_proto::tensor::{Bytes, Data, to_bytes};
use hyphae_proto::{Dtype, PROTOCOL_VERSION, SecretKey, Sha256};
use hyphae_relay::store::records::ApiKeyRecord;
use hyphae_relay::store::{Batch, Op};
use hyphae_relay::{Config, Relay};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

const SHADER: &str = "@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read_write> b: array<u32>;
@compute @workgroup_size(1) fn main() { b[0] = a[0] + 1u; }";
const TASKS_PER_JOB: usize = 5_000;

struct Run {
    workers: usize,
    verified_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    dispatched: u64,
}

fn main() -> anyhow::Result<()> {
    let mut workers = vec![100, 1000];
    let mut seconds = 10u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => {
                workers = args.next().unwrap_or_default().split(',').map(|n| n.parse()).collect::<Result<_, _>>()?
            }
            "--seconds" => seconds = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other}; use --workers N,M --seconds S"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut runs = Vec::new();
    for n in workers {
        runs.push(runtime.block_on(run(n, Duration::from_secs(seconds)))?);
    }
    println!("\nrelay benchmark ({} cores, {seconds} s per run, redundancy 2, trivial tasks)", available_cores());
    println!(
        "{:>8} {:>16} {:>10} {:>14} {:>14} {:>12} {:>12}",
        "workers", "verified/s", "vs 20k", "dispatch p50", "dispatch p99", "p99 vs 5ms", "dispatched"
    );
    for r in &runs {
        println!(
            "{:>8} {:>16.0} {:>9.2}x {:>11.3} ms {:>11.3} ms {:>11.2}x {:>12}",
            r.workers,
            r.verified_per_s,
            r.verified_per_s / 20_000.0,
            r.p50_ms,
            r.p99_ms,
            r.p99_ms / 5.0,
            r.dispatched
        );
    }
    Ok(())
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

async fn run(workers: usize, window: Duration) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::new("127.0.0.1:0".parse()?, dir.path().to_owned());
    config.scheduler.max_in_flight = 1;
    let relay = Relay::start(config).await?;
    let addr = relay.local_addr();
    let state = relay.state().clone();
    let api_key = "hyk_bench";
    let mut batch = Batch::new();
    let hash = Sha256::of(api_key.as_bytes());
    let account = hyphae_relay::store::key_account(&hash);
    batch.push(Op::PutApiKey { hash, record: ApiKeyRecord { name: "bench".into(), created_at: 0 }, account });
    // Enough for every job the run submits: the relay is measured, not the ledger.
    batch.push(Op::Grant { account, amount: hyphae_proto::Credits::whole(1 << 40) });
    state.store.commit(batch).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(relay.serve(async {
        let _ = stop_rx.await;
    }));

    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut handles = Vec::new();
    for _ in 0..workers {
        handles.push(tokio::spawn(simulated_worker(addr, stop.clone(), latencies.clone())));
    }

    // Keep the queue full from a task of its own: a new job whenever fewer than two jobs' worth
    // of tasks wait. The run reports the emptiest the queue got, so a starved run shows.
    let http = reqwest::Client::new();
    let submitter = {
        let (state, stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seed = 0;
            while !stop.load(Ordering::Relaxed) {
                if state.scheduler.stats().tasks.queued < (2 * TASKS_PER_JOB) as u32 {
                    let response = http
                        .post(format!("http://{addr}/v1/jobs"))
                        .bearer_auth(api_key)
                        .json(&job(seed))
                        .send()
                        .await?;
                    anyhow::ensure!(response.status() == 201, "submit failed: {}", response.text().await?);
                    seed += 1;
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            anyhow::Ok(())
        })
    };
    while state.scheduler.stats().tasks.queued < TASKS_PER_JOB as u32 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    latencies.lock().await.clear();
    let (t0, verified0, dispatched0) =
        (Instant::now(), state.scheduler.stats().tasks.completed, state.metrics.tasks_dispatched.get());
    let mut min_queued = u32::MAX;
    while t0.elapsed() < window {
        min_queued = min_queued.min(state.scheduler.stats().tasks.queued);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = state.scheduler.stats();
    let seconds = t0.elapsed().as_secs_f64();
    let verified = f64::from(stats.tasks.completed - verified0);
    let dispatched = state.metrics.tasks_dispatched.get() - dispatched0;
    stop.store(true, Ordering::Relaxed);
    submitter.await??;
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p) as usize] };
    let run = Run { workers, verified_per_s: verified / seconds, p50_ms: pct(0.5), p99_ms: pct(0.99), dispatched };
    eprintln!(
        "{workers} workers: {:.0} verified/s, dispatch p50 {:.3} ms p99 {:.3} ms ({} samples; unstarted tasks never below {min_queued})",
        run.verified_per_s,
        run.p50_ms,
        run.p99_ms,
        lat.len()
    );
    for h in handles {
        h.abort();
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(run)
}

fn job(seed: u32) -> JobRequest {
    let tasks = (0..TASKS_PER_JOB as u32)
        .map(|i| TaskSpec {
            workgroups: None,
            bindings: [(
                0,
                BindingOverride {
                    data: Some(Data::Inline(Bytes(to_bytes(
                        &[seed.wrapping_mul(1_000_003).wrapping_add(i)],
                        u32::to_le_bytes,
                    )))),
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
        redundancy: Some(2),
        tolerance: None,
        credits_per_task: None,
    })
}

async fn simulated_worker(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<f64>>>,
) -> anyhow::Result<()> {
    let key = SecretKey::random(&mut rand::thread_rng());
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/workers/ws")).await?;
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
        max_in_flight: 1,
        max_shards: 0,
    };
    socket.send(Message::Binary(ToRelay::Hello(Box::new(hello)).encode().into())).await?;
    let mut sent_at: Option<Instant> = None;
    let mut mine = Vec::new();
    while let Some(message) = socket.next().await {
        let Message::Binary(bytes) = message? else { continue };
        match ToWorker::decode(&bytes)? {
            ToWorker::Task(task) => {
                if let Some(t) = sent_at.take() {
                    mine.push(t.elapsed().as_secs_f64() * 1e3);
                }
                let hyphae_proto::frame::Work::Kernel(kernel) = &task.work else { anyhow::bail!("expected a kernel") };
                let input = match &kernel.bindings[0].source {
                    Some(hyphae_proto::frame::Source::Inline(b)) => u32::from_le_bytes(b.0[..4].try_into()?),
                    _ => anyhow::bail!("expected an inline input"),
                };
                let result = ToRelay::Result(Box::new(TaskOutput {
                    lease: task.lease,
                    outputs: vec![Output { binding: 1, data: Bytes((input + 1).to_le_bytes().to_vec()) }],
                    elapsed_us: 0,
                }));
                socket.send(Message::Binary(result.encode().into())).await?;
                sent_at = Some(Instant::now());
                if mine.len() >= 64 {
                    latencies.lock().await.append(&mut mine);
                }
            }
            ToWorker::Ping { nonce } => socket.send(Message::Binary(ToRelay::Pong { nonce }.encode().into())).await?,
            _ => {}
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    latencies.lock().await.append(&mut mine);
    Ok(())
}
