//! Workers that vanish: a worker killed in the middle of its tasks does not stop the job.

use std::time::{Duration, Instant};

use hyphae_proto::api::JobStatus;
use hyphae_tests::harness::{Client, NodeProcess, RelayProcess, matmul_job};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_does_not_stop_the_job() {
    let relay = RelayProcess::start(&["--lease-timeout", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<NodeProcess> =
        (0..3).map(|i| NodeProcess::start(&relay, dir.path(), &format!("worker-{i}"), None)).collect();
    let client = Client::new(&relay.url, &relay.api_key);
    client.wait_for_workers(3, Duration::from_secs(60)).await;
    let victim = nodes[0].address();

    // Tasks big enough on lavapipe that the victim is caught holding leases.
    let (matmul, cases) = matmul_job(24, 160, 2, 5);
    let job = client.submit(&matmul).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let workers = client.workers().await.workers;
        if workers.iter().any(|w| w.address == victim && w.in_flight > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the victim never held a task");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[0].kill();

    let info = client.wait(job.id, Duration::from_secs(300)).await;
    assert_eq!(info.status, JobStatus::Completed, "{info:?}");
    let results = client.results(job.id).await;
    assert_matmul_results(&results, &cases);
    assert_verified_by_distinct_workers(&results, 2, &[]);
    let workers = client.workers().await.workers;
    assert!(workers.iter().all(|w| w.address != victim), "the killed worker is still listed");
}
