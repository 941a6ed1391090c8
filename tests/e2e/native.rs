//! Kernel jobs on native workers: the whole path from `POST /v1/jobs` to verified results and
//! signed receipts.

use std::time::Duration;

use hyphae_proto::api::{BindingSpec, JobRequest, JobStatus, WgslJob, Workgroups};
use hyphae_proto::tensor::{Data, to_bytes};
use hyphae_proto::{Dtype, SecretKey};
use hyphae_shaders::kernels;
use hyphae_tests::harness::{Client, Grid, NodeProcess, RelayProcess, collatz_job, matmul_job};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fixed_replication_u32_and_f32_jobs_of_64_tasks_are_each_verified_by_two_of_three_workers() {
    let verifiers = jobs_of_64_tasks_complete_on_three_honest_workers("fixed").await;
    assert_eq!(verifiers, 2 * 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_adaptive_replication_tasks_of_trusted_workers_mostly_run_once() {
    let verifiers = jobs_of_64_tasks_complete_on_three_honest_workers("adaptive").await;
    // Each worker's first ten results are checked by a second worker, then fewer and fewer.
    assert!((128..2 * 128 * 9 / 10).contains(&verifiers), "{verifiers} verifiers for 128 tasks");
}

/// Runs a u32 and an f32 job of 64 tasks (redundancy 2) on three honest workers and checks
/// results, receipts, balances and the dashboard's feed. Returns how many workers verified them.
async fn jobs_of_64_tasks_complete_on_three_honest_workers(replication: &str) -> usize {
    let beneficiaries: Vec<_> = (0..3).map(|_| SecretKey::random(&mut rand::thread_rng()).address()).collect();
    let args = ["--replication", replication];
    let grid = Grid::start_paying(&args, &beneficiaries.iter().copied().map(Some).collect::<Vec<_>>()).await;
    let client = &grid.client;

    let (collatz, inputs) = collatz_job(64, 300, 2, 1);
    let (matmul, cases) = matmul_job(64, 1..=40, 2, 2);
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
    assert_verified_by_distinct_workers(&u32_results, 1, &[]);
    assert_verified_by_distinct_workers(&f32_results, 1, &[]);
    let verifiers: usize =
        [&u32_results, &f32_results].iter().flat_map(|results| &results.tasks).map(|task| task.verified_by.len()).sum();

    let mut paid = 0;
    for b in &beneficiaries {
        let receipts = assert_receipts_pay_balance(client, *b).await;
        for workers in receipts_by_task(&receipts).values() {
            assert_eq!(workers.len(), 1, "one worker paid twice for a task");
        }
        paid += receipts.len();
    }
    // Once the grid is idle, no answer waits for verification.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = client.metrics().await;
        assert!(metrics.contains("\nhyphae_answers_awaiting_verification "), "no such metric:\n{metrics}");
        if metric(&metrics, "hyphae_answers_awaiting_verification") == 0.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "answers still await verification on an idle grid");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every task paid exactly its verifiers, and every canary passed its worker (canaries are
    // real work, paid like any, so no worker can tell them by going unpaid).
    let metrics = client.metrics().await;
    assert_eq!(metric(&metrics, "hyphae_canaries_failed_total"), 0.0, "an honest worker failed a canary");
    let canaries = metric(&metrics, "hyphae_canaries_passed_total") as usize;
    assert_eq!(paid, verifiers + canaries);

    // The dashboard's feed agrees.
    let stats: hyphae_proto::api::Stats = client.get("/v1/stats").await;
    assert_eq!((stats.jobs.completed, stats.tasks.completed, stats.workers.native), (2, 128, 3));
    assert_eq!(stats.results_accepted, (verifiers + canaries) as u64);
    assert_eq!(stats.verified_history.len(), hyphae_proto::api::Stats::HISTORY);
    assert_eq!(stats.recent_jobs.len(), 2);
    assert!(stats.recent_jobs.iter().all(|j| j.status == JobStatus::Completed && j.completed == 64), "{stats:?}");
    let mut top: Vec<_> = stats.top_beneficiaries.iter().map(|e| e.address).collect();
    top.sort();
    let mut expected = beneficiaries.clone();
    expected.sort();
    assert_eq!(top, expected);
    verifiers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reading_its_input_from_a_blob_completes() {
    let grid = Grid::start(&[], 2).await;
    let client = &grid.client;

    let input: Vec<u32> = (1..=65_536).collect();
    let blob = upload(client, to_bytes(&input, u32::to_le_bytes)).await;
    let job = JobRequest::Wgsl(WgslJob {
        shader: kernels::COLLATZ.source.into(),
        entry_point: "main".into(),
        workgroups: Some(Workgroups([65_536 / kernels::COLLATZ.workgroup_size[0], 1, 1])),
        bindings: vec![
            BindingSpec { binding: 0, dtype: Dtype::U32, data: Some(Data::Blob { blob }), output: false, size: None },
            BindingSpec { binding: 1, dtype: Dtype::U32, data: None, output: true, size: Some(4 * 65_536) },
        ],
        tasks: Vec::new(),
        redundancy: Some(2),
        tolerance: None,
        credits_per_task: None,
        verify: None,
    });
    let created = client.submit(&job).await;
    assert_collatz_results(&client.completed_results(created.id, Duration::from_secs(120)).await, &[input]);
}

// A task that no worker can run is not retried forever: once two distinct workers report that
// they cannot run it, the task and its job fail, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_no_worker_can_run_fails_its_job_with_the_workers_reasons() {
    let relay = RelayProcess::start(&[]);
    let client = Client::new(&relay.url, &relay.api_key);
    let input: Vec<u32> = (1..=1024).collect();
    let blob = upload(&client, to_bytes(&input, u32::to_le_bytes)).await;
    let (job, _) = collatz_job(1, 1024, 2, 11);
    let JobRequest::Wgsl(mut job) = job;
    job.tasks.clear();
    job.bindings[0].data = Some(Data::Blob { blob });
    let created = client.submit(&JobRequest::Wgsl(job)).await;

    // The blob is lost from the relay's disk before any worker fetches it.
    let hex = blob.0.to_hex();
    std::fs::remove_file(relay.data.join("blobs").join(&hex[..2]).join(&hex)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _nodes: Vec<NodeProcess> =
        (0..2).map(|i| NodeProcess::start(&relay, dir.path(), &format!("worker-{i}"), None)).collect();

    let info = client.wait(created.id, Duration::from_secs(120)).await;
    assert_eq!(info.status, JobStatus::Failed, "{info:?}");
    let error = info.error.unwrap_or_default();
    assert!(error.contains("MissingBlob") && error.contains("404"), "{error}");
    let results = client.results(created.id).await;
    assert_eq!(results.tasks[0].status, hyphae_proto::api::TaskStatus::Failed);
    assert!(results.tasks[0].receipts.is_empty());
}

async fn upload(client: &Client, bytes: Vec<u8>) -> hyphae_proto::BlobId {
    let response = client
        .http
        .post(format!("{}/v1/blobs", client.url))
        .bearer_auth(&client.api_key)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<hyphae_proto::api::BlobCreated>().await.unwrap().id
}
