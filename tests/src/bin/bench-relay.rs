//! `cargo xtask bench relay`: how many tasks per second the relay verifies, and how fast it hands
//! out the next task, with 100 and 1,000 simulated workers on loopback.
//!
//! The relay is the real one (in this process, on a real port, with its sled store and receipt
//! signing); the workers speak the real protocol over real WebSockets but compute the trivial
//! kernel on the CPU (`b[0] = a[0] + 1`), so the relay, not a GPU, is what is measured. Jobs ask
//! for redundancy 2: with `fixed` replication every task runs twice, with `adaptive` (the relay's
//! default) a trusted worker's task mostly runs once.
//!
//! Two kinds of run:
//! - **saturated**: every worker answers at once and holds one task at a time, so the relay (and
//!   the workers, on the same cores) run flat out: the verified tasks per second it can sustain.
//! - **paced**: every worker takes a while over each task, tuned as the run goes so the grid
//!   offers the target load (20,000 tasks/s), like GPUs that take time to compute. Dispatch
//!   latency only means something here: in a saturated closed loop it is the length of the run
//!   queue, whatever the relay does.
//!
//! Dispatch latency is measured at the worker: from sending a result to receiving its next task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hyphae_proto::SecretKey;
use hyphae_proto::frame::ToWorker;
use hyphae_tests::harness::sim;
use tokio_tungstenite::tungstenite::Message;

/// As the relay's own binary (`relay/src/main.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const TASKS_PER_JOB: usize = 5_000;
/// Unstarted tasks the submitter keeps queued, so no run starves for work.
const BACKLOG: u32 = 12 * TASKS_PER_JOB as u32;
/// Clients submitting jobs side by side.
const SUBMITTERS: u32 = 8;
const TARGET_PER_S: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 5.0;
const INGEST_RUNS: usize = 5;
/// A run is measured after WARM_UP_MIN; a paced one, besides, once its verified rate has held
/// within 10 % of the offered load for STEADY_STEPS steps of 250 ms (or after WARM_UP_MAX if it
/// never does).
const WARM_UP_MIN: Duration = Duration::from_secs(2);
const WARM_UP_MAX: Duration = Duration::from_secs(10);
const STEADY_STEPS: u32 = 4;

#[derive(Clone, Copy, PartialEq)]
enum Replication {
    Fixed,
    Adaptive,
}

impl Replication {
    fn name(self) -> &'static str {
        match self {
            Replication::Fixed => "fixed",
            Replication::Adaptive => "adaptive",
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    Saturated,
    /// Verified tasks per second the workers offer.
    Paced(f64),
}

struct Run {
    replication: Replication,
    workers: usize,
    load: Load,
    verified_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Results returned per verified task (canaries included).
    replication_factor: f64,
    /// Processor time of this process (relay and workers alike) per result returned.
    cpu_us_per_result: f64,
}

fn main() -> anyhow::Result<()> {
    let mut workers = vec![100, 1000];
    let mut seconds = 10u64;
    let mut modes = vec![Replication::Fixed, Replication::Adaptive];
    let mut paced = vec![TARGET_PER_S / 2.0, TARGET_PER_S];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--workers" => workers = value.split(',').map(|n| n.parse()).collect::<Result<_, _>>()?,
            "--seconds" => seconds = value.parse()?,
            "--paced" => paced = value.split(',').map(|n| n.parse()).collect::<Result<_, _>>()?,
            "--replication" => {
                modes = value
                    .split(',')
                    .map(|m| match m {
                        "fixed" => Ok(Replication::Fixed),
                        "adaptive" => Ok(Replication::Adaptive),
                        other => Err(anyhow::anyhow!("unknown replication {other}; use fixed or adaptive")),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => {
                anyhow::bail!(
                    "unknown argument {other}; use --workers N,M --seconds S --replication fixed,adaptive --paced TASKS_PER_S"
                )
            }
        }
    }
    let window = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let ingest = runtime.block_on(ingest())?;
    let mut runs = Vec::new();
    for &mode in &modes {
        for &n in &workers {
            runs.push(runtime.block_on(run(mode, n, Load::Saturated, window))?);
        }
        let most = workers.iter().copied().max().unwrap_or(1000);
        for &rate in &paced {
            runs.push(runtime.block_on(run(mode, most, Load::Paced(rate), window))?);
        }
    }
    drop(runtime);
    sim::remove_stopped_data_dirs();

    println!(
        "\njob submission, no workers: {TASKS_PER_JOB} tasks in {:.0} ms median of {INGEST_RUNS} (POST to 201, \
         durable), {:.0} tasks/s",
        ingest * 1e3,
        TASKS_PER_JOB as f64 / ingest
    );
    println!(
        "\nrelay benchmark ({} cores, {seconds} s per run after warming up (2 s, paced runs until on pace, at most \
         10 s), jobs of redundancy 2, trivial tasks)",
        available_cores()
    );
    println!(
        "{:>9} {:>8} {:>13} {:>11} {:>7} {:>13} {:>13} {:>9} {:>12} {:>13}",
        "replicas",
        "workers",
        "load",
        "verified/s",
        "vs 20k",
        "dispatch p50",
        "dispatch p99",
        "vs 5 ms",
        "results/task",
        "µs cpu/result"
    );
    for r in &runs {
        let load = match r.load {
            Load::Saturated => "saturated".to_owned(),
            Load::Paced(rate) => format!("{rate:.0}/s offered"),
        };
        println!(
            "{:>9} {:>8} {:>13} {:>11.0} {:>6.2}x {:>10.3} ms {:>10.3} ms {:>8.2}x {:>12.3} {:>13.1}",
            r.replication.name(),
            r.workers,
            load,
            r.verified_per_s,
            r.verified_per_s / TARGET_PER_S,
            r.p50_ms,
            r.p99_ms,
            r.p99_ms / TARGET_P99_MS,
            r.replication_factor,
            r.cpu_us_per_result,
        );
    }
    Ok(())
}

/// User and system time this process has used, from `/proc/self/stat` (in clock ticks of 1/100 s).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| {
        fields.get(i).and_then(|f| f.parse::<f64>().ok()).ok_or_else(|| anyhow::anyhow!("bad /proc/self/stat"))
    };
    // utime and stime are fields 14 and 15 of the line: the 12th and 13th after the name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

async fn relay(replication: Replication) -> anyhow::Result<sim::InProcessRelay> {
    sim::InProcessRelay::start(|config| config.scheduler.trust.adaptive = replication == Replication::Adaptive).await
}

/// Seconds from POSTing a job of [`TASKS_PER_JOB`] tasks to its 201 with no workers, the median
/// of [`INGEST_RUNS`]: what the relay spends taking work in, apart from handing it out.
async fn ingest() -> anyhow::Result<f64> {
    let relay = relay(Replication::Adaptive).await?;
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for seed in 0..INGEST_RUNS as u32 {
        let body = serde_json::to_vec(&sim::trivial_job(seed, TASKS_PER_JOB as u32, 2))?;
        let started = Instant::now();
        let response = http
            .post(format!("http://{}/v1/jobs", relay.addr))
            .bearer_auth(relay.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "submit failed: {}", response.text().await?);
        times.push(started.elapsed().as_secs_f64());
    }
    relay.stop().await;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// What every simulated worker of a run shares.
struct Shared {
    stop: AtomicBool,
    /// Microseconds a worker spends on each task before answering (paced runs).
    think_us: AtomicU64,
    /// Every dispatch latency measured, in ms, pushed as measured: a worker that buffered its own
    /// would leave out its last ones, and at light load all of them.
    latencies: std::sync::Mutex<Vec<f64>>,
    /// Results the workers sent, canaries included.
    results: AtomicU64,
}

async fn run(replication: Replication, workers: usize, load: Load, window: Duration) -> anyhow::Result<Run> {
    let relay = relay(replication).await?;
    let (addr, state, api_key) = (relay.addr, relay.state.clone(), relay.api_key);
    // A first guess at the pace: every worker busy, each task run about once and a half.
    let think_us = match load {
        Load::Saturated => 0,
        Load::Paced(rate) => (workers as f64 * 1.5 / rate * 1e6) as u64,
    };
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        think_us: AtomicU64::new(think_us),
        latencies: std::sync::Mutex::default(),
        results: AtomicU64::new(0),
    });
    // Keep the queue full from tasks of their own: a new job whenever fewer than BACKLOG tasks wait
    // or are on their way in. Several submitters, so a slow submission never starves the run; the
    // run reports the emptiest the queue got, so a starved run shows.
    let submitting = Arc::new(AtomicU32::new(0));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|submitter| {
            let (state, shared, submitting) = (state.clone(), shared.clone(), submitting.clone());
            let http = reqwest::Client::new();
            tokio::spawn(async move {
                let mut seed = submitter;
                while !shared.stop.load(Ordering::Relaxed) {
                    // Counting jobs on their way in, a dip below the backlog sends one job, not
                    // every submitter's at once: 40,000 tasks arriving together stall dispatch for
                    // tens of milliseconds, which would measure the bursts, not the steady load.
                    let coming = submitting.fetch_add(1, Ordering::Relaxed) * TASKS_PER_JOB as u32;
                    if state.scheduler.stats().tasks.queued + coming < BACKLOG {
                        // Off the runtime: writing a megabyte of JSON would stall the threads
                        // the relay and the workers share, which no real client does.
                        let body = tokio::task::spawn_blocking(move || {
                            serde_json::to_vec(&sim::trivial_job(seed, TASKS_PER_JOB as u32, 2))
                        })
                        .await??;
                        let response = http
                            .post(format!("http://{addr}/v1/jobs"))
                            .bearer_auth(api_key)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await?;
                        anyhow::ensure!(response.status() == 201, "submit failed: {}", response.text().await?);
                        submitting.fetch_sub(1, Ordering::Relaxed);
                        seed += SUBMITTERS;
                    } else {
                        submitting.fetch_sub(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    // A backlog to start with, kept topped up from then on; then the workers join.
    while state.scheduler.stats().tasks.queued < BACKLOG - TASKS_PER_JOB as u32 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let handles: Vec<_> = (0..workers).map(|_| tokio::spawn(simulated_worker(addr, shared.clone()))).collect();
    let verified = || state.scheduler.stats().tasks.completed;
    // Warm up (workers earn trust), steering the pace towards the offered load meanwhile, until
    // the pace holds: measured after a fixed 2 s, a paced run's tail was mostly its first seconds,
    // with trust still being earned and the steering not yet settled.
    let warm_up = Instant::now();
    let mut last = (Instant::now(), verified());
    let mut steady_steps = 0;
    while warm_up.elapsed() < WARM_UP_MIN || (steady_steps < STEADY_STEPS && warm_up.elapsed() < WARM_UP_MAX) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let on_pace;
        (last, on_pace) = steer(load, &shared, last, verified());
        steady_steps = if on_pace { steady_steps + 1 } else { 0 };
    }
    let warmed_up = warm_up.elapsed();
    shared.latencies.lock().expect("not poisoned").clear();
    let (t0, verified0, results0) = (Instant::now(), verified(), shared.results.load(Ordering::Relaxed));
    let (hedged0, canaries0) = (state.metrics.tasks_hedged.get(), state.metrics.canaries_passed.get());
    let cpu0 = cpu_seconds()?;
    let mut min_queued = u32::MAX;
    while t0.elapsed() < window {
        min_queued = min_queued.min(state.scheduler.stats().tasks.queued);
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = steer(load, &shared, last, verified()).0;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let verified = f64::from(verified() - verified0);
    let results = (shared.results.load(Ordering::Relaxed) - results0) as f64;
    let cpu = cpu_seconds()? - cpu0;
    let hedged = state.metrics.tasks_hedged.get() - hedged0;
    let canaries = state.metrics.canaries_passed.get() - canaries0;
    shared.stop.store(true, Ordering::Relaxed);
    for submitter in submitters {
        submitter.await??;
    }
    let mut lat = std::mem::take(&mut *shared.latencies.lock().expect("not poisoned"));
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p) as usize] };
    let run = Run {
        replication,
        workers,
        load,
        verified_per_s: verified / seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        replication_factor: results / verified.max(1.0),
        cpu_us_per_result: cpu * 1e6 / results.max(1.0),
    };
    eprintln!(
        "{} replication, {workers} workers, {}: {:.0} verified/s, dispatch p50 {:.3} ms p90 {:.1} ms p99 {:.3} ms max \
         {:.1} ms ({} samples; {:.3} results a task, {:.1} µs of processor a result, {hedged} hedged, {canaries} canaries; unstarted tasks never below {min_queued}; workers think {:.1} ms \
         a task at the end; warmed up for {:.1} s)",
        replication.name(),
        match load {
            Load::Saturated => "saturated".to_owned(),
            Load::Paced(rate) => format!("{rate:.0}/s offered"),
        },
        run.verified_per_s,
        run.p50_ms,
        pct(0.9),
        run.p99_ms,
        pct(1.0),
        lat.len(),
        run.replication_factor,
        run.cpu_us_per_result,
        shared.think_us.load(Ordering::Relaxed) as f64 / 1e3,
        warmed_up.as_secs_f64(),
    );
    for h in handles {
        h.abort();
    }
    relay.stop().await;
    Ok(run)
}

/// Steers a paced run's think time by how far the verified rate since `last` fell from the
/// offered one (saturated runs have none). Returns the new `last`, and whether the rate since
/// `last` was on pace: within 10 % of the offered load (a saturated run always is).
fn steer(load: Load, shared: &Shared, last: (Instant, u32), verified: u32) -> ((Instant, u32), bool) {
    let now = Instant::now();
    let mut on_pace = true;
    if let Load::Paced(target) = load {
        let rate = f64::from(verified - last.1) / now.duration_since(last.0).as_secs_f64();
        on_pace = (rate / target - 1.0).abs() <= 0.1;
        if rate > 0.0 {
            // Half the way there each step, and never faster than the relay can keep up with:
            // a relay that cannot serve the load still shows at least the workers' pace.
            let factor = (rate / target).clamp(0.5, 2.0).sqrt();
            let think = shared.think_us.load(Ordering::Relaxed) as f64 * factor;
            shared.think_us.store(think.max(1_000.0) as u64, Ordering::Relaxed);
        }
    }
    ((now, verified), on_pace)
}

async fn simulated_worker(addr: std::net::SocketAddr, shared: Arc<Shared>) -> anyhow::Result<()> {
    let key = SecretKey::random(&mut rand::thread_rng());
    let mut socket = sim::login(addr, &key, 1).await?;
    let mut sent_at: Option<Instant> = None;
    while let Some(message) = socket.next().await {
        let Message::Binary(bytes) = message? else { continue };
        match ToWorker::decode(&bytes)? {
            ToWorker::Task(task) => {
                if let Some(t) = sent_at.take() {
                    shared.latencies.lock().expect("not poisoned").push(t.elapsed().as_secs_f64() * 1e3);
                }
                let think = shared.think_us.load(Ordering::Relaxed);
                if think > 0 {
                    tokio::time::sleep(Duration::from_micros(think)).await;
                }
                let (binding, output) = sim::right_output(&task)?;
                socket.send(sim::answer(&task, binding, output)).await?;
                shared.results.fetch_add(1, Ordering::Relaxed);
                sent_at = Some(Instant::now());
            }
            ToWorker::Ping { nonce } => {
                socket.send(Message::Binary(hyphae_proto::frame::ToRelay::Pong { nonce }.encode().into())).await?
            }
            _ => {}
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(())
}
