//! Workers that lie: their results must never be accepted and must earn nothing.

use std::time::Duration;

use hyphae_node::executor::GpuExecutor;
use hyphae_proto::SecretKey;
use hyphae_proto::api::JobStatus;
use hyphae_tests::harness::{Grid, InProcessWorker, Lying, collatz_job, matmul_job};

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
    assert_verified_by_distinct_workers(&u32_results, 2, &[liar.address]);
    assert_verified_by_distinct_workers(&f32_results, 2, &[liar.address]);

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
