//! Checks shared by the end-to-end tests: results against the CPU references, receipts against
//! the relay's key and an independent Ethereum library, balances against receipts.

use std::collections::BTreeMap;

use hyphae_proto::api::{JobResults, RelayInfo, TaskStatus};
use hyphae_proto::tensor::{f32s, u32s};
use hyphae_proto::{Address, Credits, SignedReceipt};
use hyphae_shaders::reference;
use hyphae_tests::harness::{Client, MatmulCase};

pub fn assert_collatz_results(results: &JobResults, inputs: &[Vec<u32>]) {
    assert_eq!(results.tasks.len(), inputs.len());
    for (task, input) in results.tasks.iter().zip(inputs) {
        assert_eq!(task.status, TaskStatus::Completed, "task {}: {:?}", task.index, task.error);
        let got: Vec<u32> = u32s(&task.outputs[0].data.0).collect();
        assert_eq!(got, reference::collatz::collatz(input), "task {}", task.index);
    }
}

pub fn assert_matmul_results(results: &JobResults, cases: &[MatmulCase]) {
    assert_eq!(results.tasks.len(), cases.len());
    for (task, c) in results.tasks.iter().zip(cases) {
        assert_eq!(task.status, TaskStatus::Completed, "task {}: {:?}", task.index, task.error);
        let got: Vec<f32> = f32s(&task.outputs[0].data.0).collect();
        let want = reference::matmul::matmul(&c.a, &c.b, c.m, c.n, c.k);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "task {} element {i}: {g} vs {w}", task.index);
        }
    }
}

/// Every task was verified by at least `redundancy` distinct workers (1 where trusted workers'
/// tasks may run once), none of them in `never`.
pub fn assert_verified_by_distinct_workers(results: &JobResults, redundancy: usize, never: &[Address]) {
    for task in &results.tasks {
        let mut by = task.verified_by.clone();
        by.sort();
        by.dedup();
        assert!(by.len() >= redundancy, "task {} verified by {:?}", task.index, task.verified_by);
        assert_eq!(by.len(), task.verified_by.len(), "task {} verified twice by one worker", task.index);
        assert_eq!(task.receipts.len(), task.verified_by.len());
        for liar in never {
            assert!(!by.contains(liar), "task {} accepted a result from {liar}", task.index);
        }
    }
}

/// Every receipt of `beneficiary` verifies (our verifier and alloy's), and the account's balance
/// is their sum. Returns the receipts.
pub async fn assert_receipts_pay_balance(client: &Client, beneficiary: Address) -> Vec<SignedReceipt> {
    let relay: RelayInfo = client.get("/v1/relay").await;
    let receipts = client.receipts(beneficiary).await;
    for r in &receipts {
        r.verify(Some(relay.address)).unwrap_or_else(|e| panic!("receipt {} does not verify: {e}", r.id()));
        assert_eq!(recovered_independently(r), relay.address.to_string(), "receipt {}", r.id());
        assert_eq!(r.payload.beneficiary, beneficiary);
    }
    let sum: Credits = receipts.iter().map(|r| r.payload.credits).sum();
    let account = client.account(beneficiary).await;
    assert_eq!(account.balance, sum, "balance of {beneficiary} is not the sum of its receipts");
    assert_eq!(account.verified_tasks, receipts.len() as u64);
    receipts
}

/// The address `receipt`'s signature recovers to, worked out from its wire JSON with alloy and
/// sha2 alone (README, "Receipts"): over the canonical payload, or for a receipt signed in a
/// batch, over `hyphae receipt batch <root>` of the Merkle path it carries.
pub fn recovered_independently(receipt: &SignedReceipt) -> String {
    use sha2::Digest as _;
    let wire: serde_json::Value = serde_json::to_value(receipt).unwrap();
    // serde_json's maps are sorted and print without spaces: the canonical form.
    let canonical = serde_json::to_string(&wire["payload"]).unwrap();
    let message = match wire.get("batch") {
        None => canonical,
        Some(batch) => {
            let hex32 = |v: &serde_json::Value| -> [u8; 32] {
                hex::decode(v.as_str().unwrap().trim_start_matches("sha256:")).unwrap().try_into().unwrap()
            };
            let (mut index, mut width) = (batch["index"].as_u64().unwrap(), batch["leaves"].as_u64().unwrap());
            let mut node: [u8; 32] = sha2::Sha256::new().chain_update([0u8]).chain_update(&canonical).finalize().into();
            let mut path = batch["path"].as_array().unwrap().iter();
            while width > 1 {
                if !(index == width - 1 && width % 2 == 1) {
                    let sibling = hex32(path.next().expect("path too short"));
                    let (left, right) = if index % 2 == 0 { (node, sibling) } else { (sibling, node) };
                    node = sha2::Sha256::new()
                        .chain_update([1u8])
                        .chain_update(left)
                        .chain_update(right)
                        .finalize()
                        .into();
                }
                index /= 2;
                width = width.div_ceil(2);
            }
            assert!(path.next().is_none(), "path too long");
            format!("hyphae receipt batch {}", hex::encode(node))
        }
    };
    let theirs = alloy_primitives::Signature::from_raw(&receipt.signature.0).unwrap();
    theirs.recover_address_from_msg(message).unwrap().to_checksum(None)
}

/// Receipts grouped by task, to check no task pays one worker twice.
pub fn receipts_by_task(receipts: &[SignedReceipt]) -> BTreeMap<String, Vec<Address>> {
    let mut by_task: BTreeMap<String, Vec<Address>> = BTreeMap::new();
    for r in receipts {
        by_task.entry(r.payload.task.to_string()).or_default().push(r.payload.worker);
    }
    by_task
}

/// The value of an unlabelled metric in a Prometheus exposition (0 when absent).
pub fn metric(exposition: &str, name: &str) -> f64 {
    exposition.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}
