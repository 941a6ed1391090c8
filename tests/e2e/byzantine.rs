//! Workers that lie: their results must never be accepted and must earn nothing.

use std::time::Duration;

use hyphae_node::executor::GpuExecutor;
use hyphae_proto::api::{Check, JobRequest, JobStatus, MatmulCheck};
use hyphae_proto::{Address, SecretKey};
use hyphae_tests::harness::{Grid, InProcessWorker, Lying, Stale, Turncoat, bin, collatz_job, matmul_job};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_worker_never_gets_a_result_accepted_and_earns_nothing() {
    hyphae_tests::harness::init_tracing();
    let honest: Vec<_> = (0..2).map(|_| SecretKey::random(&mut rand::thread_rng()).address()).collect();
    let grid = Grid::start_paying(&[], &honest.iter().copied().map(Some).collect::<Vec<_>>()).await;
    let client = &grid.client;
    let liar = InProcessWorker::start(&grid.relay.url, Lying(GpuExecutor::new().unwrap()));
    client.wait_for_workers(3, Duration::from_secs(60)).await;

    let (collatz, inputs) = collatz_job(48, 200, 2, 3);
    let (matmul, cases) = matmul_job(48, 1..=24, 2, 4);
    let u32_job = client.submit(&collatz).await;
    let f32_job = client.submit(&matmul).await;
    for id in [u32_job.id, f32_job.id] {
        let info = client.wait(id, Duration::from_secs(300)).await;
        assert_eq!(info.status, JobStatus::Completed, "{info:?}");
    }
    let u32_results = client.results(u32_job.id).await;
    let f32_results = client.results(f32_job.id).await;
    assert_collatz_results(&u32_results, &inputs);
    assert_matmul_results(&f32_results, &cases);
    assert_verified_by_distinct_workers(&u32_results, 1, &[liar.address]);
    assert_verified_by_distinct_workers(&f32_results, 1, &[liar.address]);

    // The liar did take work, and all of it was rejected.
    let workers = client.workers().await.workers;
    let liar_info = workers.iter().find(|w| w.address == liar.address).expect("the liar is connected");
    assert!(liar_info.rejected > 0, "the liar was never given a task: {liar_info:?}");
    assert_eq!(liar_info.accepted, 0);

    // It earned nothing; the honest workers' receipts verify and add up.
    assert!(client.receipts(liar.beneficiary).await.is_empty());
    assert_eq!(client.account(liar.beneficiary).await.balance, hyphae_proto::Credits::ZERO);
    for b in &honest {
        let receipts = assert_receipts_pay_balance(client, *b).await;
        assert!(!receipts.is_empty());
    }
}

/// Two liars that return the same wrong answer agree with each other, so replication alone would
/// accept their answer whenever both held a task. Canaries catch each on its own, and once caught
/// their agreement no longer makes a quorum. The liars join from outside, as the `liars` binary
/// anyone can point at a relay; afterwards `hyphae audit` finds the relay's books whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colluding_pair_agreeing_on_a_wrong_answer_is_caught_by_canaries_and_never_accepted() {
    hyphae_tests::harness::init_tracing();
    // Every dispatch that can be a canary is one, and two valid results make a worker trusted.
    let mut grid = Grid::start(&["--canary-rate", "1", "--trusted-after", "2"], 2).await;
    let client = &grid.client;
    // The honest workers agree on a first job: their answers become known answers.
    let (first, _) = collatz_job(16, 100, 2, 5);
    let first = client.submit(&first).await;
    assert_eq!(client.wait(first.id, Duration::from_secs(300)).await.status, JobStatus::Completed);

    let liars = Liars::start(&grid.relay.url, "colluding", 2);
    // An honest newcomer is tested with canaries too, and must pass them all.
    let newcomer = InProcessWorker::start(&grid.relay.url, GpuExecutor::new().unwrap());
    client.wait_for_workers(5, Duration::from_secs(60)).await;
    let (second, inputs) = collatz_job(32, 100, 2, 6);
    let second = client.submit(&second).await;
    let results = client.completed_results(second.id, Duration::from_secs(300)).await;
    assert_collatz_results(&results, &inputs);
    let liar_addresses: Vec<_> = liars.workers.iter().map(|(address, _)| *address).collect();
    assert_verified_by_distinct_workers(&results, 1, &liar_addresses);

    let workers = client.workers().await.workers;
    for (address, beneficiary) in &liars.workers {
        let info = workers.iter().find(|w| w.address == *address).expect("the liar is connected");
        assert!(info.rejected > 0 && info.accepted == 0, "{info:?}");
        assert!(client.receipts(*beneficiary).await.is_empty());
    }
    let metrics = client.metrics().await;
    let failed = metric(&metrics, "hyphae_canaries_failed_total");
    assert!(failed >= 2.0, "each liar failed a canary: {failed}");
    let newcomer = workers.iter().find(|w| w.address == newcomer.address).expect("the newcomer is connected");
    assert!(newcomer.accepted > 0 && newcomer.rejected == 0, "{newcomer:?}");
    assert!(metric(&metrics, "hyphae_canaries_passed_total") >= 1.0, "the newcomer was never tested");

    drop(liars);
    grid.relay.kill();
    let audit =
        std::process::Command::new(bin("hyphae")).arg("audit").arg("--data").arg(&grid.relay.data).output().unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "{stdout}{}", String::from_utf8_lossy(&audit.stderr));
    assert!(stdout.contains("ok:"), "{stdout}");
}

/// The `liars` binary as a child process: cheating workers joined from outside.
struct Liars {
    child: std::process::Child,
    /// Each liar's address and beneficiary, as it printed them.
    workers: Vec<(Address, Address)>,
}

impl Liars {
    fn start(relay: &str, behaviour: &str, count: usize) -> Liars {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin("liars"))
            .args(["--relay", relay, "--behaviour", behaviour, "--count", &count.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting liars");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let workers = (0..count)
            .map(|_| {
                let line = lines.next().expect("a line per liar").expect("readable");
                // "<behaviour> liar <address> paying <beneficiary>"
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    [_, "liar", address, "paying", beneficiary] => {
                        (address.parse().expect("an address"), beneficiary.parse().expect("an address"))
                    }
                    _ => panic!("unexpected line from liars: {line}"),
                }
            })
            .collect();
        // Its reports go nowhere; the test asks the relay itself.
        std::thread::spawn(move || lines.for_each(drop));
        Liars { child, workers }
    }
}

impl Drop for Liars {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A matmul job that asks for Freivalds' check needs one worker per task: the relay checks each
/// product itself, refuses a liar's and gives its task to another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checked_matmul_job_takes_one_result_per_task_and_the_check_refuses_a_liar() {
    let grid = Grid::start(&[], 2).await;
    let client = &grid.client;
    let liar = InProcessWorker::start(&grid.relay.url, Lying(GpuExecutor::new().unwrap()));
    client.wait_for_workers(3, Duration::from_secs(60)).await;

    let (mut job, cases) = matmul_job(24, 1..=40, 2, 9);
    let JobRequest::Wgsl(wgsl) = &mut job;
    let check = MatmulCheck { a: 1, b: 2, c: 3, dims: Some(0), m: None, k: None, n: None };
    wgsl.verify = Some(Check::Matmul(check));
    let created = client.submit(&job).await;
    let results = client.completed_results(created.id, Duration::from_secs(300)).await;
    assert_matmul_results(&results, &cases);
    assert_verified_by_distinct_workers(&results, 1, &[liar.address]);
    // Redundancy 2 without the check would make it exactly twice as many (a hedge for a slow
    // worker may still add one here and there).
    let replicas: usize = results.tasks.iter().map(|t| t.verified_by.len()).sum();
    assert!(replicas < 2 * cases.len(), "checked tasks were replicated: {replicas} results for {}", cases.len());

    let workers = client.workers().await.workers;
    let liar_info = workers.iter().find(|w| w.address == liar.address).expect("the liar is connected");
    assert!(liar_info.rejected > 0 && liar_info.accepted == 0, "{liar_info:?}");
}

/// A lazy worker answers with a stale result instead of computing: its answers disagree with the
/// honest replicas, are never accepted, and earn nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_worker_returning_stale_results_is_caught_and_earns_nothing() {
    let grid = Grid::start(&[], 2).await;
    let client = &grid.client;
    let lazy = InProcessWorker::start(&grid.relay.url, Stale::new(GpuExecutor::new().unwrap()));
    client.wait_for_workers(3, Duration::from_secs(60)).await;
    let (job, inputs) = collatz_job(32, 100, 2, 11);
    let created = client.submit(&job).await;
    let results = client.completed_results(created.id, Duration::from_secs(300)).await;
    assert_collatz_results(&results, &inputs);

    let workers = client.workers().await.workers;
    let info = workers.iter().find(|w| w.address == lazy.address).expect("the lazy worker is connected");
    // Its first answer was computed, and may have been right; every stale one after was not.
    assert!(info.rejected > 0 && info.accepted <= 1, "{info:?}");
    assert!(client.receipts(lazy.beneficiary).await.len() <= 1);
}

/// With adaptive replication a trusted worker's tasks often run once. One that turns liar once
/// trusted gets wrong results accepted until a check catches it; then every result it alone
/// vouched for is run again by independent workers, and the wrong ones are replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lies_once_trusted_is_caught_and_its_unchecked_results_are_redone() {
    // No canaries: the turncoat is caught by a random check, of its own tasks or of others'
    // tasks it is sent as a replica. At the default 3 % floor its own 40-odd lies would all go
    // unchecked about one run in four, leaving the catch to the replicas; at 25 % that takes
    // about one run in 100,000.
    let args = ["--trusted-after", "2", "--min-check", "0.25", "--canary-rate", "0"];
    let grid = Grid::start(&args, 2).await;
    let client = &grid.client;
    let turncoat = InProcessWorker::start(&grid.relay.url, Turncoat::new(GpuExecutor::new().unwrap(), 4));
    client.wait_for_workers(3, Duration::from_secs(60)).await;
    let (job, inputs) = collatz_job(160, 64, 2, 13);
    let created = client.submit(&job).await;
    let info = client.wait(created.id, Duration::from_secs(300)).await;
    assert_eq!(info.status, JobStatus::Completed, "{info:?}");

    // Checks run after the job finished may still be correcting it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let results = client.results(created.id).await;
        let wrong = results
            .tasks
            .iter()
            .zip(&inputs)
            .filter(|(task, input)| {
                let got: Vec<u32> = hyphae_proto::tensor::u32s(&task.outputs[0].data.0).collect();
                got != hyphae_shaders::reference::collatz::collatz(input)
            })
            .count();
        if wrong == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{wrong} wrong results were never redone");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let workers = client.workers().await.workers;
    let info = workers.iter().find(|w| w.address == turncoat.address).expect("the turncoat is connected");
    assert!(info.rejected > 0 && info.caught_after.is_some(), "{info:?}");
}
