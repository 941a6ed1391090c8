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
use hyphae_proto::SecretKey;
use hyphae_proto::frame::ToWorker;
use hyphae_tests::harness::sim;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

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
    let relay = sim::InProcessRelay::start(|_| {}).await?;
    let (addr, state, api_key) = (relay.addr, relay.state.clone(), relay.api_key);

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
            let mut submits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if state.scheduler.stats().tasks.queued < (2 * TASKS_PER_JOB) as u32 {
                    let started = Instant::now();
                    let response = http
                        .post(format!("http://{addr}/v1/jobs"))
                        .bearer_auth(api_key)
                        .json(&sim::trivial_job(seed, TASKS_PER_JOB as u32, 2))
                        .send()
                        .await?;
                    anyhow::ensure!(response.status() == 201, "submit failed: {}", response.text().await?);
                    submits.push(started.elapsed().as_secs_f64() * 1e3);
                    seed += 1;
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            anyhow::Ok(submits)
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
    let submits = submitter.await??;
    let slowest = submits.iter().copied().fold(0.0, f64::max);
    let mean = submits.iter().sum::<f64>() / submits.len().max(1) as f64;
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p) as usize] };
    let run = Run { workers, verified_per_s: verified / seconds, p50_ms: pct(0.5), p99_ms: pct(0.99), dispatched };
    eprintln!(
        "{workers} workers: {:.0} verified/s, dispatch p50 {:.3} ms p99 {:.3} ms ({} samples; unstarted tasks never below \
         {min_queued}; {} jobs of {TASKS_PER_JOB} submitted, {mean:.0} ms each on average, {slowest:.0} ms at most)",
        run.verified_per_s,
        run.p50_ms,
        run.p99_ms,
        lat.len(),
        submits.len(),
    );
    for h in handles {
        h.abort();
    }
    relay.stop().await;
    Ok(run)
}

async fn simulated_worker(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<f64>>>,
) -> anyhow::Result<()> {
    let key = SecretKey::random(&mut rand::thread_rng());
    let mut socket = sim::login(addr, &key, 1).await?;
    let mut sent_at: Option<Instant> = None;
    let mut mine = Vec::new();
    while let Some(message) = socket.next().await {
        let Message::Binary(bytes) = message? else { continue };
        match ToWorker::decode(&bytes)? {
            ToWorker::Task(task) => {
                if let Some(t) = sent_at.take() {
                    mine.push(t.elapsed().as_secs_f64() * 1e3);
                }
                let (binding, output) = sim::right_output(&task)?;
                socket.send(sim::answer(&task, binding, output)).await?;
                sent_at = Some(Instant::now());
                if mine.len() >= 64 {
                    latencies.lock().await.append(&mut mine);
                }
            }
            ToWorker::Ping { nonce } => {
                socket.send(Message::Binary(hyphae_proto::frame::ToRelay::Pong { nonce }.encode().into())).await?
            }
            _ => {}
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    latencies.lock().await.append(&mut mine);
    Ok(())
}
