//! The `hyphae` command line as a developer uses it: submit a kernel with files, wait, fetch the
//! results, verify a receipt offline.

use std::process::Command;
use std::time::Duration;

use hyphae_proto::api::{ErrorCode, JobStatus};
use hyphae_proto::tensor::{to_bytes, u32s};
use hyphae_proto::{Address, Credits, SignedReceipt};
use hyphae_shaders::{kernels, reference};
use hyphae_tests::harness::{Client, Grid, NodeProcess, RelayProcess, bin, collatz_job};

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
        .args(["job", "results", &id, "--relay", &relay.url, "--api-key", &relay.api_key, "--out"])
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

/// `--matmul-check` asks the relay to check each result as a matrix product itself: one worker's
/// result per task is then enough, and it is the right product.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_asks_the_relay_to_check_a_matmul_itself() {
    let grid = Grid::start(&["--replication", "fixed", "--canary-rate", "0"], 2).await;
    let (relay, client, dir) = (&grid.relay, &grid.client, &grid.dir);
    let (m, n, k) = (24usize, 20usize, 16usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
    let file = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let shader = file("matmul.wgsl", kernels::MATMUL.source.as_bytes().to_vec());
    let dims = file("dims.bin", to_bytes(&[m as u32, n as u32, k as u32], u32::to_le_bytes));
    let (a_file, b_file) =
        (file("a.bin", to_bytes(&a, f32::to_le_bytes)), file("b.bin", to_bytes(&b, f32::to_le_bytes)));
    let tile = kernels::MATMUL_TILE as usize;
    let submit = Command::new(bin("hyphae"))
        .args(["job", "submit", "--relay", &relay.url, "--api-key", &relay.api_key, "--shader", &shader])
        .args([
            "--input",
            &format!("0:u32={dims}"),
            "--input",
            &format!("1={a_file}"),
            "--input",
            &format!("2={b_file}"),
        ])
        .args(["--output", &format!("3:f32:{}", m * n * 4)])
        .args(["--workgroups", &format!("{},{}", n.div_ceil(tile), m.div_ceil(tile))])
        .args(["--redundancy", "2", "--matmul-check", "a=1,b=2,c=3,dims=0", "--wait"])
        .output()
        .unwrap();
    assert!(submit.status.success(), "{}", String::from_utf8_lossy(&submit.stderr));
    let id: hyphae_proto::JobId =
        String::from_utf8_lossy(&submit.stdout).lines().last().unwrap().trim().parse().unwrap();
    let results = client.completed_results(id, std::time::Duration::from_secs(60)).await;
    assert_eq!(results.tasks[0].verified_by.len(), 1, "checked by the relay, run once even at redundancy 2");
    let got: Vec<f32> = hyphae_proto::tensor::f32s(&results.tasks[0].outputs[0].data.0).collect();
    assert_eq!(got, reference::matmul::matmul(&a, &b, m, n, k));
}

/// Credits as a commons: a key's jobs are paid from its account, a job the balance cannot pay is
/// refused with 402 and nothing of it is kept, and `hyphae audit` finds every receipt valid and
/// every balance equal to receipts + grants - spending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_spend_credits_a_short_balance_gets_402_and_the_audit_adds_up() {
    let data = tempfile::tempdir().unwrap();
    let hyphae = |args: &[&str]| {
        let output = Command::new(bin("hyphae")).args(args).arg("--data").arg(data.path()).output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };
    let (status, stdout, stderr) = hyphae(&["keys", "create", "--name", "poor", "--grant", "3"]);
    assert_eq!(status, Some(0), "{stderr}");
    let key = stdout.lines().last().unwrap().trim().to_owned();
    let account: Address = stderr
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no account in {stderr:?}"));

    let mut relay = RelayProcess::start_in(data.path(), &[]);
    let nodes: Vec<NodeProcess> =
        (0..2).map(|i| NodeProcess::start(&relay, data.path(), &format!("worker-{i}"), None)).collect();
    let client = Client::new(&relay.url, &key);
    client.wait_for_workers(2, Duration::from_secs(60)).await;

    // Two tasks at the default 1 credit each: 3 - 2 leaves 1.
    let (job, inputs) = collatz_job(2, 64, 2, 7);
    let paid = client.submit(&job).await;
    assert_eq!(client.account(account).await.balance, Credits::whole(1));
    let (status, body) = client.submit_raw(&serde_json::to_string(&job).unwrap(), Some(&key)).await;
    let error = body.expect("an error body").error;
    assert_eq!((status, error.code), (402, ErrorCode::InsufficientCredits), "{}", error.message);
    assert!(error.message.contains(&account.to_string()), "{}", error.message);
    let after = client.account(account).await;
    assert_eq!((after.balance, after.granted, after.spent), (Credits::whole(1), Credits::whole(3), Credits::whole(2)));

    assert_eq!(client.wait(paid.id, Duration::from_secs(120)).await.status, JobStatus::Completed);
    let results = client.results(paid.id).await;
    assert_eq!(results.tasks.len(), inputs.len());
    drop(nodes);
    relay.kill();

    let (status, stdout, _) = hyphae(&["credits", "grant", "--account", &account.to_string(), "--amount", "2.5"]);
    assert_eq!(status, Some(0));
    assert!(stdout.contains("its balance is 3.5"), "{stdout}");
    let (status, stdout, _) = hyphae(&["audit"]);
    assert_eq!(status, Some(0), "{stdout}");
    assert!(stdout.contains("ok:"), "{stdout}");
}
