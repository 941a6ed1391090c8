//! `kill -9` of the relay loses nothing it acknowledged: jobs it answered 201 for, receipts it
//! sent to workers, balances.

use std::collections::BTreeSet;
use std::time::Duration;

use hyphae_node::Event;
use hyphae_node::executor::GpuExecutor;
use hyphae_proto::api::JobStatus;
use hyphae_proto::{ReceiptId, SignedReceipt};
use hyphae_tests::harness::{Client, InProcessWorker, NodeProcess, RelayProcess, collatz_job};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_right_after_a_201_completes_the_job_after_restart_and_loses_no_receipt() {
    hyphae_tests::harness::init_tracing();
    let mut relay = RelayProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&relay, dir.path(), "worker-0", None);
    let mut watched = InProcessWorker::start(&relay.url, GpuExecutor::new().unwrap());
    let client = Client::new(&relay.url, &relay.api_key);
    client.wait_for_workers(2, Duration::from_secs(60)).await;

    // A first job completes: its receipts and balances are acknowledged.
    let (first, first_inputs) = collatz_job(16, 128, 2, 7);
    let first = client.submit(&first).await;
    assert_eq!(client.wait(first.id, Duration::from_secs(120)).await.status, JobStatus::Completed);
    let before = assert_receipts_pay_balance(&client, watched.beneficiary).await;
    assert_eq!(before.len(), 16);

    // A second job is acknowledged, and the relay dies at once.
    let (second, second_inputs) = collatz_job(32, 4096, 2, 8);
    let second = client.submit(&second).await;
    relay.kill();
    relay.restart();

    let info = client.wait(second.id, Duration::from_secs(180)).await;
    assert_eq!(info.status, JobStatus::Completed, "{info:?}");
    assert_collatz_results(&client.results(first.id).await, &first_inputs);
    assert_collatz_results(&client.results(second.id).await, &second_inputs);

    // Every receipt a worker was sent, before or after the crash, is still there.
    let mut sent: BTreeSet<ReceiptId> = BTreeSet::new();
    while let Ok(event) = watched.events.try_recv() {
        if let Event::Receipt(r) = event {
            sent.insert(r.id());
        }
    }
    assert!(sent.len() >= 16, "the watched worker saw {} receipts", sent.len());
    for id in &sent {
        let stored: SignedReceipt = client.get(&format!("/v1/receipts/{id}")).await;
        assert_eq!(stored.id(), *id);
    }
    let after = assert_receipts_pay_balance(&client, watched.beneficiary).await;
    let after_ids: BTreeSet<ReceiptId> = after.iter().map(|r| r.id()).collect();
    assert!(before.iter().all(|r| after_ids.contains(&r.id())), "a receipt from before the crash is gone");
    assert!(sent.is_subset(&after_ids));
    let worker0 = node.address();
    let _ = assert_receipts_pay_balance(&client, worker0).await;
}
