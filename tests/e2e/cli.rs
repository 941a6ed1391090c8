//! The `hyphae` command line as a developer uses it: submit a kernel with files, wait, fetch the
//! results, verify a receipt offline.

use std::process::Command;

use hyphae_proto::SignedReceipt;
use hyphae_proto::tensor::{to_bytes, u32s};
use hyphae_shaders::{kernels, reference};
use hyphae_tests::harness::{Grid, bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_submits_waits_fetches_results_and_verifies_a_receipt() {
    let grid = Grid::start(&[], 2).await;
    let (relay, client, dir) = (&grid.relay, &grid.client, &grid.dir);

    let input: Vec<u32> = (1..=1000).collect();
    let (shader, x, out) = (dir.path().join("collatz.wgsl"), dir.path().join("x.bin"), dir.path().join("out"));
    std::fs::write(&shader, kernels::COLLATZ.source).unwrap();
    std::fs::write(&x, to_bytes(&input, u32::to_le_bytes)).unwrap();

    let submit = Command::new(bin("hyphae"))
        .args(["job", "submit", "--relay", &relay.url, "--api-key", &relay.api_key, "--shader"])
        .arg(&shader)
        .arg("--input")
        .arg(format!("0={}", x.display()))
        .args(["--output", "1:u32:4000", "--workgroups", "16", "--wait"])
        .output()
        .unwrap();
    assert!(submit.status.success(), "{}", String::from_utf8_lossy(&submit.stderr));
    let id = String::from_utf8_lossy(&submit.stdout).lines().last().unwrap().trim().to_owned();
    assert!(id.starts_with("job_"), "{id}");

    let results = Command::new(bin("hyphae"))
        .args(["job", "results", &id, "--relay", &relay.url, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(results.status.success(), "{}", String::from_utf8_lossy(&results.stderr));
    let got: Vec<u32> = u32s(&std::fs::read(out.join("0").join("1.bin")).unwrap()).collect();
    assert_eq!(got, reference::collatz::collatz(&input));

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let receipt_id = summary["tasks"]["0"]["receipts"][0].as_str().unwrap().to_owned();
    let receipt: SignedReceipt = client.get(&format!("/v1/receipts/{receipt_id}")).await;
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, serde_json::to_string_pretty(&receipt).unwrap()).unwrap();
    let verify = Command::new(bin("hyphae")).args(["receipt", "verify"]).arg(&file).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("valid:"));

    let mut forged = receipt.clone();
    forged.payload.credits = "1000000".parse().unwrap();
    std::fs::write(&file, serde_json::to_string(&forged).unwrap()).unwrap();
    let verify = Command::new(bin("hyphae")).args(["receipt", "verify"]).arg(&file).output().unwrap();
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("invalid:"));
}
