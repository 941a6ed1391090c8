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

const WORKERS: usize = 1_000;
const JOBS: u32 = 4;
const TASKS_PER_JOB: u32 = 12_500;
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

struct Scenario {
    share: f64,
    behaviour: Behaviour,
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
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut scenarios = vec![Scenario { share: 0.0, behaviour: Behaviour::Honest }];
    for share in [0.10, 0.30, 0.45] {
        for behaviour in [Behaviour::Noise, Behaviour::Colluding, Behaviour::Lazy, Behaviour::Turncoat] {
            scenarios.push(Scenario { share, behaviour });
        }
    }
    let mut rows = Vec::new();
    for scenario in &scenarios {
        let row = runtime.block_on(run(scenario))?;
        eprintln!(
            "{}: {} tasks in {:.1} s, {} wrong accepted, {} failed, replication {:.3}",
            row.scenario, row.tasks, row.seconds, row.wrong_accepted, row.failed, row.replication
        );
        rows.push(row);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "\ntrust benchmark: {WORKERS} simulated workers, {} tasks per run (redundancy 2 for untrusted \
         workers), adaptive replication (trusted after 10), canaries 2 %, {cores} cores",
        JOBS * TASKS_PER_JOB
    );
    println!(
        "{:<20} {:>8} {:>14} {:>7} {:>12} {:>16} {:>13} {:>12}",
        "misbehaving",
        "tasks",
        "wrong accepted",
        "failed",
        "replication",
        "caught after",
        "never caught",
        "honest lost"
    );
    for r in &rows {
        let caught = r.caught_after.map_or("-".to_owned(), |c| format!("{c:.1} results"));
        println!(
            "{:<20} {:>8} {:>14} {:>7} {:>11.3}x {:>16} {:>13} {:>11.3}%",
            r.scenario,
            r.tasks,
            r.wrong_accepted,
            r.failed,
            r.replication,
            caught,
            r.never_caught,
            r.honest_lost * 100.0
        );
    }
    println!("  (replication: results returned, canaries included, per task settled; target at most 1.2 at 0-10 %)");
    println!("  (caught after: valid results a misbehaving worker had when first caught; 0 for one caught at once)");
    Ok(())
}

async fn run(scenario: &Scenario) -> anyhow::Result<Outcomes> {
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
        handles.push(tokio::spawn(simulated_worker(addr, key, behaviour, results.clone())));
    }
    while state.scheduler.workers().len() < WORKERS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut jobs = Vec::new();
    for seed in 0..JOBS {
        let response = http
            .post(format!("http://{addr}/v1/jobs"))
            .bearer_auth(api_key)
            .json(&sim::trivial_job(seed, TASKS_PER_JOB, 2))
            .send()
            .await?;
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
        for (index, result) in state.store.results(*id, 0, TASKS_PER_JOB)? {
            tasks += 1;
            match result.outcome {
                Outcome::Completed => {
                    let got = u32s(&result.outputs[0].data.0).next();
                    if got != Some(sim::trivial_input(*seed, index).wrapping_add(1)) {
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
    relay.stop().await;
    let scenario_name = if scenario.behaviour == Behaviour::Honest {
        "none".to_owned()
    } else {
        format!("{:.0} % {}", scenario.share * 100.0, scenario.behaviour.name())
    };
    Ok(Outcomes {
        scenario: scenario_name,
        tasks,
        failed,
        wrong_accepted,
        replication: results.load(Ordering::Relaxed) as f64 / tasks.max(1) as f64,
        caught_after: (!caught.is_empty()).then(|| caught.iter().sum::<u64>() as f64 / caught.len() as f64),
        never_caught,
        honest_lost: honest_rejected as f64 / honest_judged.max(1) as f64,
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
    results: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut socket = sim::login(addr, &key, 1).await?;
    let mut sent = 0u64;
    let mut last = None;
    while let Some(message) = socket.next().await {
        let Message::Binary(bytes) = message? else { continue };
        match ToWorker::decode(&bytes)? {
            ToWorker::Task(task) => {
                let right = sim::trivial_task_input(&task)?.wrapping_add(1);
                let answer = match behaviour {
                    Behaviour::Honest => right,
                    Behaviour::Noise => right.wrapping_add(rand::thread_rng().gen_range(1..u32::MAX)),
                    Behaviour::Colluding => right.wrapping_add(1),
                    Behaviour::Lazy => last.unwrap_or(right),
                    Behaviour::Turncoat if sent < TURN_AFTER => right,
                    Behaviour::Turncoat => right.wrapping_add(1),
                };
                last = Some(answer);
                sent += 1;
                results.fetch_add(1, Ordering::Relaxed);
                socket.send(sim::answer(&task, answer)).await?;
            }
            ToWorker::Ping { nonce } => socket.send(Message::Binary(ToRelay::Pong { nonce }.encode().into())).await?,
            _ => {}
        }
    }
    Ok(())
}
