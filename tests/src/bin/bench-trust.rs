//! `cargo xtask bench trust`: what the relay's trust policy costs and what it lets through, with
//! 1,000 simulated workers of which 0 %, 10 %, 30 % or 45 % misbehave.
//!
//! The relay is the real one, in this process, with adaptive replication and canaries on
//! (`trusted_after` 10, canary rate 2 %); the workers speak the real protocol over real
//! WebSockets and answer the trivial kernel (`b[0] = a[0] + 1`) on the CPU, honestly or as their
//! behaviour says:
//! - `noise`: a fresh random wrong answer each time;
//! - `colluding`: the same wrong answer (`a + 2`) as every other colluder;
//! - `lazy`: the previous task's answer again (a stale result);
//! - `turncoat`: honest for its first 15 results (past `trusted_after`), then colluding.
//!
//! Every accepted result is checked against `a + 1` afterwards, once the checks the relay runs
//! again (of results vouched for by workers caught later) are done. Effective replication is the
//! results workers returned (canaries and checks included) per task settled.
//!
//! Each worker takes a while over each task (`--work-ms`, 20 by default), as a GPU does, so that
//! results are verified about as fast as they come in, as on a real grid. Workers that answer
//! instantly saturate the relay (this benchmark then measures the relay, not the policy): results
//! wait up to seconds to be verified, newcomers are handed tasks meanwhile on the standing they
//! had before, and replication rises with that lag (`--work-ms 0`: 1.22-1.26 with no one
//! misbehaving, against 1.09-1.10 at 20 ms, on this 2-core machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hyphae_proto::api::JobStatus;
use hyphae_proto::frame::{ToRelay, ToWorker};
use hyphae_proto::tensor::u32s;
use hyphae_proto::{Address, JobId, SecretKey};
use hyphae_relay::AppState;
use hyphae_relay::store::records::Outcome;
use hyphae_tests::harness::sim;
use rand::Rng;
use tokio_tungstenite::tungstenite::Message;

/// As the relay's own binary (`relay/src/main.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const WORKERS: usize = 1_000;
const JOBS: u32 = 4;
/// Tasks per run unless `--tasks` says otherwise: 200 per worker, so that a run's figures are
/// not only the first results every newcomer must have replicated before it is trusted.
const TASKS: u32 = 200_000;
/// Milliseconds a worker spends on each task unless `--work-ms` says otherwise.
const WORK_MS: u64 = 20;
/// Results a turncoat returns honestly before it starts lying.
const TURN_AFTER: u64 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Honest,
    Noise,
    Colluding,
    Lazy,
    Turncoat,
}

impl Behaviour {
    fn name(self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Noise => "noise",
            Behaviour::Colluding => "colluding",
            Behaviour::Lazy => "lazy",
            Behaviour::Turncoat => "turncoat",
        }
    }
}

/// What the simulated jobs compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// The trivial kernel, verified by replication alone.
    Trivial,
    /// Small matmuls whose jobs ask the relay for Freivalds' check: covered work.
    CheckedMatmul,
}

struct Scenario {
    share: f64,
    behaviour: Behaviour,
    workload: Workload,
}

impl Scenario {
    fn name(&self) -> String {
        let who = if self.behaviour == Behaviour::Honest {
            "none".to_owned()
        } else {
            format!("{:.0} % {}", self.share * 100.0, self.behaviour.name())
        };
        match self.workload {
            Workload::Trivial => who,
            Workload::CheckedMatmul => format!("{who}, matmul"),
        }
    }
}

struct Outcomes {
    scenario: String,
    tasks: u64,
    failed: u64,
    wrong_accepted: u64,
    replication: f64,
    /// Mean valid results a misbehaving worker had when first caught, and how many were never.
    caught_after: Option<f64>,
    never_caught: usize,
    /// Honest results rejected, of all honest results judged.
    honest_lost: f64,
    /// Canaries run by caught workers in place of real work (their own time, not the grid's).
    quarantine: u64,
    /// Extra replicas idle workers got because one straggled.
    hedged: u64,
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let (mut tasks, mut only, mut work_ms) = (TASKS, None::<String>, WORK_MS);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tasks" => tasks = args.next().unwrap_or_default().parse()?,
            // Runs only the scenarios whose name contains this, e.g. "none" or "45 %".
            "--only" => only = args.next(),
            "--work-ms" => work_ms = args.next().unwrap_or_default().parse()?,
            other => {
                anyhow::bail!("unknown argument {other}; usage: bench-trust [--tasks N] [--only NAME] [--work-ms MS]")
            }
        }
    }
    let tasks_per_job = tasks.div_ceil(JOBS);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let misbehaving = [Behaviour::Noise, Behaviour::Colluding, Behaviour::Lazy, Behaviour::Turncoat];
    let mut scenarios = vec![Scenario { share: 0.0, behaviour: Behaviour::Honest, workload: Workload::Trivial }];
    for share in [0.10, 0.30, 0.45] {
        for behaviour in misbehaving {
            scenarios.push(Scenario { share, behaviour, workload: Workload::Trivial });
        }
    }
    for behaviour in misbehaving {
        scenarios.push(Scenario { share: 0.45, behaviour, workload: Workload::CheckedMatmul });
    }
    scenarios.retain(|s| only.as_ref().is_none_or(|only| s.name().contains(only.as_str())));
    let mut rows = Vec::new();
    for scenario in &scenarios {
        // Each checked matmul costs the relay a Freivalds check: a tenth as many make the point.
        let tasks_per_job = match scenario.workload {
            Workload::Trivial => tasks_per_job,
            Workload::CheckedMatmul => tasks_per_job / 10,
        };
        let row = runtime.block_on(run(scenario, tasks_per_job, Duration::from_millis(work_ms)))?;
        eprintln!(
            "{}: {} tasks in {:.1} s, {} wrong accepted, {} failed, replication {:.3} ({} hedged)",
            row.scenario, row.tasks, row.seconds, row.wrong_accepted, row.failed, row.replication, row.hedged
        );
        rows.push(row);
    }
    drop(runtime);
    sim::remove_stopped_data_dirs();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "\ntrust benchmark: {WORKERS} simulated workers taking {work_ms} ms a task, {} tasks per run (redundancy 2 \
         for untrusted workers), adaptive replication (trusted after 10), canaries 2 %, {cores} cores",
        JOBS * tasks_per_job
    );
    println!(
        "{:<20} {:>8} {:>14} {:>7} {:>12} {:>16} {:>13} {:>12} {:>11}",
        "misbehaving",
        "tasks",
        "wrong accepted",
        "failed",
        "replication",
        "caught after",
        "never caught",
        "honest lost",
        "quarantine"
    );
    for r in &rows {
        let caught = r.caught_after.map_or("-".to_owned(), |c| format!("{c:.1} results"));
        println!(
            "{:<20} {:>8} {:>14} {:>7} {:>11.3}x {:>16} {:>13} {:>11.3}% {:>11}",
            r.scenario,
            r.tasks,
            r.wrong_accepted,
            r.failed,
            r.replication,
            caught,
            r.never_caught,
            r.honest_lost * 100.0,
            r.quarantine
        );
    }
    println!(
        "  (replication: results returned per task settled, canaries included but for those run by caught \
         workers; target at most 1.2 at 0-10 %)"
    );
    println!("  (quarantine: canaries caught workers ran in place of real work, on their own time)");
    println!("  (caught after: valid results a misbehaving worker had when first caught; 0 for one caught at once)");
    Ok(())
}

async fn run(scenario: &Scenario, tasks_per_job: u32, work: Duration) -> anyhow::Result<Outcomes> {
    let relay = sim::InProcessRelay::start(|config| config.scheduler.trust.adaptive = true).await?;
    let (addr, state, api_key) = (relay.addr, relay.state.clone(), relay.api_key);

    let bad = (WORKERS as f64 * scenario.share).round() as usize;
    let results = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    let mut handles = Vec::new();
    for i in 0..WORKERS {
        let behaviour = if i < bad { scenario.behaviour } else { Behaviour::Honest };
        let key = SecretKey::random(&mut rand::thread_rng());
        workers.push((key.address(), behaviour));
        handles.push(tokio::spawn(simulated_worker(addr, key, behaviour, work, results.clone())));
    }
    while state.scheduler.workers().len() < WORKERS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut jobs = Vec::new();
    let mut matmuls = Vec::new();
    for seed in 0..JOBS {
        let job = match scenario.workload {
            Workload::Trivial => sim::trivial_job(seed, tasks_per_job, 2),
            Workload::CheckedMatmul => {
                let (job, cases) = sim::checked_matmul_job(seed, tasks_per_job);
                matmuls.push(cases);
                job
            }
        };
        let response = http.post(format!("http://{addr}/v1/jobs")).bearer_auth(api_key).json(&job).send().await?;
        anyhow::ensure!(response.status() == 201, "submit failed: {}", response.text().await?);
        let created: hyphae_proto::api::JobCreated = response.json().await?;
        jobs.push((seed, created.id));
    }
    for (_, id) in &jobs {
        wait_finished(&state, *id).await?;
    }
    // Results vouched for by workers caught late are being checked again: count once they are.
    let deadline = Instant::now() + Duration::from_secs(300);
    while state.scheduler.rechecks_open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();

    let (mut tasks, mut failed, mut wrong_accepted) = (0, 0, 0);
    for (seed, id) in &jobs {
        for (index, result) in state.store.results(*id, 0, tasks_per_job)? {
            tasks += 1;
            match result.outcome {
                Outcome::Completed => {
                    let output = &result.outputs[0].data.0;
                    let right = match scenario.workload {
                        Workload::Trivial => {
                            u32s(output).next() == Some(sim::trivial_input(*seed, index).wrapping_add(1))
                        }
                        Workload::CheckedMatmul => sim::matmul_right(&matmuls[*seed as usize][index as usize], output),
                    };
                    if !right {
                        wrong_accepted += 1;
                    }
                }
                Outcome::Failed => failed += 1,
            }
        }
    }
    let info = state.scheduler.workers();
    let standing = |address: &Address| info.iter().find(|w| w.address == *address);
    let bad_workers: Vec<_> = workers.iter().filter(|(_, b)| *b != Behaviour::Honest).collect();
    let caught: Vec<u64> = bad_workers.iter().filter_map(|(a, _)| standing(a)?.caught_after).collect();
    let never_caught = bad_workers.len() - caught.len();
    let (honest_rejected, honest_judged) = workers
        .iter()
        .filter(|(_, b)| *b == Behaviour::Honest)
        .filter_map(|(a, _)| standing(a))
        .fold((0, 0), |(r, j), w| (r + w.rejected, j + w.rejected + w.accepted));
    for handle in handles {
        handle.abort();
    }
    let quarantine = state.scheduler.canaries_in_quarantine();
    relay.stop().await;
    Ok(Outcomes {
        scenario: scenario.name(),
        tasks,
        failed,
        wrong_accepted,
        replication: results.load(Ordering::Relaxed).saturating_sub(quarantine) as f64 / tasks.max(1) as f64,
        caught_after: (!caught.is_empty()).then(|| caught.iter().sum::<u64>() as f64 / caught.len() as f64),
        never_caught,
        honest_lost: honest_rejected as f64 / honest_judged.max(1) as f64,
        quarantine,
        hedged: state.metrics.tasks_hedged.get(),
        seconds,
    })
}

async fn wait_finished(state: &AppState, id: JobId) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let info = state.scheduler.job_info(id)?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
        if matches!(info.status, JobStatus::Completed | JobStatus::Failed) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "job {id} did not finish: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn simulated_worker(
    addr: std::net::SocketAddr,
    key: SecretKey,
    behaviour: Behaviour,
    work: Duration,
    results: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut socket = sim::login(addr, &key, 1).await?;
    let mut sent = 0u64;
    let mut last = None;
    while let Some(message) = socket.next().await {
        let Message::Binary(bytes) = message? else { continue };
        match ToWorker::decode(&bytes)? {
            ToWorker::Task(task) => {
                // Every answer is one output buffer: the right one, or a wrong one of its size.
                let (binding, right) = sim::right_output(&task)?;
                let wrong = |consistent: bool| {
                    let mut out = right.clone();
                    if consistent {
                        // Colluders agree: the same twist of the right answer.
                        out[0] ^= 0x01;
                        let last = out.len() - 1;
                        out[last] ^= 0x40;
                    } else {
                        rand::thread_rng().fill(&mut out[..]);
                    }
                    out
                };
                let answer = match behaviour {
                    Behaviour::Honest => right,
                    Behaviour::Noise => wrong(false),
                    Behaviour::Colluding => wrong(true),
                    // A stale result: the previous task's answer, when it has the size of this one.
                    Behaviour::Lazy => last.take().filter(|l: &Vec<u8>| l.len() == right.len()).unwrap_or(right),
                    Behaviour::Turncoat if sent < TURN_AFTER => right,
                    Behaviour::Turncoat => wrong(true),
                };
                last = Some(answer.clone());
                sent += 1;
                if !work.is_zero() {
                    tokio::time::sleep(work).await;
                }
                results.fetch_add(1, Ordering::Relaxed);
                socket.send(sim::answer(&task, binding, answer)).await?;
            }
            ToWorker::Ping { nonce } => socket.send(Message::Binary(ToRelay::Pong { nonce }.encode().into())).await?,
            _ => {}
        }
    }
    Ok(())
}
