//! Kernel jobs on native workers: the whole path from `POST /v1/jobs` to verified results and
//! signed receipts.

use std::time::Duration;

use hyphae_proto::SecretKey;
use hyphae_proto::api::JobStatus;
use hyphae_tests::harness::{Client, NodeProcess, RelayProcess, collatz_job, matmul_job};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u32_and_f32_jobs_of_64_tasks_complete_on_three_honest_workers() {
    let relay = RelayProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let beneficiaries: Vec<_> = (0..3).map(|_| SecretKey::random(&mut rand::thread_rng()).address()).collect();
    let _nodes: Vec<NodeProcess> = beneficiaries
        .iter()
        .enumerate()
        .map(|(i, b)| NodeProcess::start(&relay, dir.path(), &format!("worker-{i}"), Some(*b)))
        .collect();
    let client = Client::new(&relay.url, &relay.api_key);
    client.wait_for_workers(3, Duration::from_secs(60)).await;

    let (collatz, inputs) = collatz_job(64, 300, 2, 1);
    let (matmul, cases) = matmul_job(64, 40, 2, 2);
    let u32_job = client.submit(&collatz).await;
    let f32_job = client.submit(&matmul).await;
    assert_eq!((u32_job.tasks, f32_job.tasks), (64, 64));

    for id in [u32_job.id, f32_job.id] {
        let info = client.wait(id, Duration::from_secs(300)).await;
        assert_eq!(info.status, JobStatus::Completed, "{info:?}");
        assert_eq!(info.tasks.completed, 64);
    }
    let u32_results = client.results(u32_job.id).await;
    let f32_results = client.results(f32_job.id).await;
    assert_collatz_results(&u32_results, &inputs);
    assert_matmul_results(&f32_results, &cases);
    assert_verified_by_distinct_workers(&u32_results, 2, &[]);
    assert_verified_by_distinct_workers(&f32_results, 2, &[]);

    let mut paid = 0;
    for b in &beneficiaries {
        let receipts = assert_receipts_pay_balance(&client, *b).await;
        for workers in receipts_by_task(&receipts).values() {
            assert_eq!(workers.len(), 1, "one worker paid twice for a task");
        }
        paid += receipts.len();
    }
    // Every task paid exactly its two verifiers.
    assert_eq!(paid, 2 * 128);
}
