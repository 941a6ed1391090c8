//! `cargo xtask bench browser`: what the browser worker costs and delivers on this machine.
//!
//! - the wasm worker's size, raw and gzipped (target: < 1.5 MB gzipped);
//! - time from the consent click to the first task executed, with work waiting on a warm relay
//!   (target: < 3 s), median of several fresh browser profiles;
//! - the same matmul job's throughput on one browser worker (Chromium, WebGPU on SwiftShader)
//!   and on one native worker (Vulkan on lavapipe), each alone on the grid, end to end.
//!
//! Needs what `cargo xtask bench browser` provides: release binaries, the assembled site
//! (`HYPHAE_SITE_DIR`) and playwright-core (`HYPHAE_NODE_MODULES`).

use std::time::{Duration, Instant};

use hyphae_proto::api::JobStatus;
use hyphae_tests::harness::browser::site_dir;
use hyphae_tests::harness::{Browser, Client, NodeProcess, RelayProcess, collatz_job, matmul_job};

const RUNS: usize = 3;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let site = site_dir();
    let wasm = site.join("pkg").join("hyphae_node_bg.wasm");
    let raw = std::fs::metadata(&wasm)?.len();
    let gz = std::process::Command::new("gzip").arg("-9").arg("-c").arg(&wasm).output()?.stdout.len() as u64;

    let site_arg = site.display().to_string();
    let relay = RelayProcess::start(&["--site", &site_arg]);
    let client = Client::new(&relay.url, &relay.api_key);

    // Consent to first task, with a job already waiting.
    let (waiting, _) = collatz_job(2000, 1024, 1, 31);
    client.submit(&waiting).await;
    let mut first_task = Vec::new();
    for _ in 0..RUNS {
        let mut browser = Browser::launch().await;
        browser.goto(&relay.url).await;
        browser.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(30)).await;
        browser.click("#contribute").await;
        browser.wait_for("document.querySelector('#consent-yes') !== null", Duration::from_secs(10)).await;
        browser
            .eval(
                "(() => { window.benchClick = performance.now(); \
                 window.hyphaeGrid.on('task', () => { window.benchFirstTask ??= performance.now(); }); })()",
            )
            .await;
        browser.click("#consent-yes").await;
        browser.wait_for("window.benchFirstTask !== undefined", Duration::from_secs(60)).await;
        let ms = browser.eval("window.benchFirstTask - window.benchClick").await.as_f64().unwrap_or(f64::NAN);
        eprintln!("consent → first task: {ms:.0} ms");
        first_task.push(ms);
        browser.eval("window.hyphaeGrid.stop()").await;
        browser.close().await;
    }
    first_task.sort_by(f64::total_cmp);
    let median_first = first_task[first_task.len() / 2];
    drop(relay);

    // One job of equal matmuls, on one worker of each kind alone.
    let side = 256;
    let tasks = 24;
    let flops = 2.0 * (side * side * side) as f64 * tasks as f64;
    let browser_rate = {
        let relay = RelayProcess::start(&["--site", &site_arg]);
        let client = Client::new(&relay.url, &relay.api_key);
        let mut browser = Browser::launch().await;
        browser.goto(&relay.url).await;
        browser.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(30)).await;
        browser.click("#contribute").await;
        browser.wait_for("document.querySelector('#consent-yes') !== null", Duration::from_secs(10)).await;
        browser.click("#consent-yes").await;
        browser.wait_for("window.hyphaeGrid.state === 'running'", Duration::from_secs(60)).await;
        let rate = run_job(&client, tasks, side).await;
        let stats = browser.eval("window.hyphaeGrid.stats()").await;
        let busy_ms = stats["busyMs"].as_f64().unwrap_or(f64::NAN) / stats["tasksDone"].as_f64().unwrap_or(f64::NAN);
        browser.close().await;
        (rate, busy_ms)
    };
    let (browser_rate, browser_task_ms) = browser_rate;
    let native_rate = {
        let relay = RelayProcess::start(&[]);
        let client = Client::new(&relay.url, &relay.api_key);
        let dir = tempfile::tempdir()?;
        let _node = NodeProcess::start(&relay, dir.path(), "native", None);
        client.wait_for_workers(1, Duration::from_secs(60)).await;
        run_job(&client, tasks, side).await
    };

    println!("\nbrowser worker benchmark (this machine: {} cores)", std::thread::available_parallelism()?.get());
    println!(
        "  wasm worker        {:>8} KiB raw  {:>6} KiB gzipped   ({:.2}x of the 1.5 MB gz budget)",
        raw / 1024,
        gz / 1024,
        gz as f64 / 1.5e6
    );
    println!(
        "  consent → 1st task {:>8.0} ms median of {RUNS} fresh profiles ({:.2}x of the 3 s target; all: {first_task:.0?})",
        median_first,
        median_first / 3000.0
    );
    println!("  matmul {side}³ × {tasks} tasks, one worker alone, end to end:");
    println!(
        "    browser (Chromium WebGPU, SwiftShader) {:>8.2} tasks/s  {:>6.2} GFLOP/s",
        browser_rate,
        browser_rate * flops / tasks as f64 / 1e9
    );
    println!(
        "    native  (Vulkan, lavapipe)             {:>8.2} tasks/s  {:>6.2} GFLOP/s",
        native_rate,
        native_rate * flops / tasks as f64 / 1e9
    );
    println!("    browser / native                       {:>8.2}x", browser_rate / native_rate);
    println!(
        "    browser GPU time per task {browser_task_ms:.0} ms ({:.2} GFLOP/s in the kernel alone); the rest is transport",
        2.0 * (side * side * side) as f64 / browser_task_ms / 1e6
    );
    Ok(())
}

/// Submits `tasks` matmuls of `side`³ and returns tasks per second from submission to completion.
async fn run_job(client: &Client, tasks: usize, side: usize) -> f64 {
    let (job, _) = matmul_job(tasks, side..=side, 1, 32);
    let start = Instant::now();
    let created = client.submit(&job).await;
    let info = client.wait(created.id, Duration::from_secs(600)).await;
    assert_eq!(info.status, JobStatus::Completed, "{info:?}");
    tasks as f64 / start.elapsed().as_secs_f64()
}
