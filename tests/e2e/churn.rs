//! Workers that vanish or stall: their leases go back to the queue and the job completes anyway.

use std::time::{Duration, Instant};

use hyphae_proto::Address;
use hyphae_tests::harness::{Client, Grid, matmul_job};

use crate::support::*;

/// Waits until `worker` holds at least one lease.
async fn holds_leases(client: &Client, worker: Address) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let workers = client.workers().await.workers;
        if workers.iter().any(|w| w.address == worker && w.in_flight > 0) {
            return;
        }
        assert!(Instant::now() < deadline, "the worker never held a task: {workers:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_does_not_stop_the_job() {
    let mut grid = Grid::start(&[], 3).await;
    let client = &grid.client;
    let victim = grid.nodes[0].address();

    // Frozen, the victim takes its share of the job and cannot answer: it is caught mid-task.
    grid.nodes[0].freeze();
    let (matmul, cases) = matmul_job(24, 1..=96, 2, 5);
    let job = client.submit(&matmul).await;
    holds_leases(client, victim).await;
    grid.nodes[0].kill();

    let results = client.completed_results(job.id, Duration::from_secs(300)).await;
    assert_matmul_results(&results, &cases);
    assert_verified_by_distinct_workers(&results, 1, &[victim]);
    let workers = client.workers().await.workers;
    assert!(workers.iter().all(|w| w.address != victim), "the killed worker is still listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_loses_its_leases_at_their_deadline_and_its_late_answers_are_ignored() {
    let grid = Grid::start(&["--lease-timeout", "2"], 3).await;
    let client = &grid.client;
    let stalled = grid.nodes[0].address();

    grid.nodes[0].freeze();
    let (matmul, cases) = matmul_job(24, 1..=96, 2, 6);
    let job = client.submit(&matmul).await;
    holds_leases(client, stalled).await;

    // Its socket stays open, so only the lease deadline can free its tasks.
    let results = client.completed_results(job.id, Duration::from_secs(300)).await;
    assert_matmul_results(&results, &cases);
    assert_verified_by_distinct_workers(&results, 1, &[stalled]);

    // Thawed, it answers leases that are long gone: nothing of it counts, and it is free again.
    grid.nodes[0].thaw();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let workers = client.workers().await.workers;
        let w = workers.iter().find(|w| w.address == stalled).expect("still connected");
        if w.in_flight == 0 {
            assert_eq!((w.accepted, w.rejected), (0, 0), "a late answer was judged: {w:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the stalled worker still holds leases: {w:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expired = metric(&client.metrics().await, "hyphae_leases_expired_total");
    assert!(expired >= 1.0, "no lease expired");
}
