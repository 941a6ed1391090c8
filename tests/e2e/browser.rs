//! Browsers join the grid: the donate page, the consent prompt, the wasm worker in a Web Worker
//! computing beside a native worker, and the SDK's controls, in Debian's headless Chromium
//! (WebGPU on SwiftShader).

use std::time::{Duration, Instant};

use hyphae_proto::Address;
use hyphae_proto::frame::Platform;
use hyphae_tests::harness::browser::site_dir;
use hyphae_tests::harness::{Browser, Client, Grid, collatz_job};

use crate::support::*;

fn site_args() -> Vec<String> {
    vec!["--site".into(), site_dir().display().to_string()]
}

async fn browser_workers(client: &Client) -> Vec<hyphae_proto::api::WorkerInfo> {
    client.workers().await.workers.into_iter().filter(|w| w.platform == Platform::Browser).collect()
}

/// Waits until the relay lists exactly `n` browser workers.
async fn wait_browser_workers(client: &Client, n: usize) -> Vec<hyphae_proto::api::WorkerInfo> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let workers = browser_workers(client).await;
        if workers.len() == n {
            return workers;
        }
        assert!(Instant::now() < deadline, "expected {n} browser workers, the relay lists {}", workers.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the donate page and says yes to the consent prompt.
async fn consent(browser: &mut Browser, url: &str, screenshots: bool) {
    browser.goto(url).await;
    browser.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(20)).await;
    if screenshots {
        browser.screenshot("donate-before-consent").await;
    }
    browser.click("#contribute").await;
    browser.wait_for("document.querySelector('#consent-yes') !== null", Duration::from_secs(10)).await;
    if screenshots {
        browser.screenshot("donate-consent-prompt").await;
    }
    browser.click("#consent-yes").await;
    browser.wait_for("window.hyphaeGrid.state === 'running'", Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_consents_computes_its_share_beside_a_native_worker_and_earns_receipts() {
    let args = site_args();
    let grid = Grid::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1).await;
    let client = &grid.client;
    let mut browser = Browser::launch().await;

    browser.goto(&grid.relay.url).await;
    browser.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(20)).await;
    // Before the visitor says yes, this page is not a worker: the relay has nothing to lease it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(browser_workers(client).await.is_empty(), "the page joined the grid before consent");
    consent(&mut browser, &grid.relay.url, true).await;
    let workers = wait_browser_workers(client, 1).await;
    let browser_address = workers[0].address;
    assert_eq!(
        browser.eval("window.hyphaeGrid.stats().worker").await.as_str(),
        Some(browser_address.to_string().as_str())
    );

    // Redundancy 2 on a grid of one native and one browser worker: every task needs the browser.
    let (job, inputs) = collatz_job(6, 512, 2, 21);
    let created = client.submit(&job).await;
    let results = client.completed_results(created.id, Duration::from_secs(180)).await;
    assert_collatz_results(&results, &inputs);
    assert!(
        results.tasks.iter().all(|t| t.verified_by.contains(&browser_address)),
        "the browser did not verify every task"
    );

    let beneficiary: Address =
        browser.eval("window.hyphaeGrid.stats().beneficiary").await.as_str().expect("a beneficiary").parse().unwrap();
    let receipts = assert_receipts_pay_balance(client, beneficiary).await;
    assert_eq!(receipts.len(), 6);
    assert!(receipts.iter().all(|r| r.payload.worker == browser_address));

    // The page shows it: tasks done and credits from the receipts its worker was sent.
    browser.wait_for("window.hyphaeGrid.stats().tasksDone >= 6", Duration::from_secs(30)).await;
    browser.wait_for("window.hyphaeGrid.stats().credits === '6'", Duration::from_secs(30)).await;
    browser.screenshot("donate-running").await;
    browser.viewport(390, 844).await;
    browser.screenshot("donate-running-phone").await;
    browser.color_scheme("dark").await;
    browser.screenshot("donate-running-phone-dark").await;
    browser.viewport(1280, 800).await;
    browser.color_scheme("light").await;

    let mut dashboard = Browser::launch().await;
    dashboard.goto(&format!("{}/dashboard/", grid.relay.url)).await;
    dashboard
        .wait_for(
            "document.body.innerText.includes('browser') || document.body.innerText.includes('Browser')",
            Duration::from_secs(20),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    dashboard.screenshot("dashboard").await;
    dashboard.color_scheme("dark").await;
    dashboard.screenshot("dashboard-dark").await;
    dashboard.close().await;
    browser.close().await;
}

/// Busy time over wall time while running, from the SDK's own counters, across `window`.
async fn duty_cycle(browser: &mut Browser, window: Duration) -> f64 {
    let read = |v: serde_json::Value| (v["busyMs"].as_f64().unwrap_or(0.0), v["activeMs"].as_f64().unwrap_or(0.0));
    let (busy0, active0) = read(browser.eval("window.hyphaeGrid.stats()").await);
    tokio::time::sleep(window).await;
    let (busy1, active1) = read(browser.eval("window.hyphaeGrid.stats()").await);
    (busy1 - busy0) / (active1 - active0).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_pauses_resumes_throttles_stops_and_forgets_consent() {
    let args = site_args();
    let grid = Grid::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), 0).await;
    let client = &grid.client;
    let mut browser = Browser::launch().await;
    consent(&mut browser, &grid.relay.url, false).await;
    wait_browser_workers(client, 1).await;

    // A steady stream of work for the browser alone (redundancy 1).
    let (job, _) = collatz_job(400, 16_384, 1, 22);
    client.submit(&job).await;
    browser.wait_for("window.hyphaeGrid.stats().tasksDone >= 3", Duration::from_secs(60)).await;

    browser.eval("window.hyphaeGrid.setMaxUtilization(1)").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full = duty_cycle(&mut browser, Duration::from_secs(3)).await;
    browser.eval("window.hyphaeGrid.setMaxUtilization(0.25)").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let quarter = duty_cycle(&mut browser, Duration::from_secs(3)).await;
    eprintln!("duty cycle: {full:.2} at maxUtilization 1, {quarter:.2} at 0.25");
    assert!(quarter <= 0.25 + 0.05, "duty cycle {quarter:.2} exceeds the 0.25 cap");
    assert!(quarter < full, "throttling did not lower the duty cycle ({full:.2} → {quarter:.2})");

    // Pause: the worker leaves the relay, so its tasks go elsewhere at once; resume: it is back.
    browser.eval("window.hyphaeGrid.pause()").await;
    browser.wait_for("window.hyphaeGrid.state === 'paused'", Duration::from_secs(10)).await;
    wait_browser_workers(client, 0).await;
    browser.eval("window.hyphaeGrid.resume()").await;
    browser.wait_for("window.hyphaeGrid.state === 'running'", Duration::from_secs(30)).await;
    wait_browser_workers(client, 1).await;

    // Stop: gone.
    browser.eval("window.hyphaeGrid.stop()").await;
    browser.wait_for("window.hyphaeGrid.state === 'stopped'", Duration::from_secs(10)).await;
    wait_browser_workers(client, 0).await;

    // The yes is remembered for this site: starting again asks nothing.
    browser.eval("window.hyphaeGrid.start()").await;
    browser.wait_for("window.hyphaeGrid.state === 'running'", Duration::from_secs(60)).await;
    wait_browser_workers(client, 1).await;

    // Revoking consent stops the work and forgets the yes: the next start asks again.
    browser.eval("window.hyphaeGrid.revokeConsent()").await;
    wait_browser_workers(client, 0).await;
    browser.goto(&grid.relay.url).await;
    browser.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(20)).await;
    browser.click("#contribute").await;
    browser.wait_for("document.querySelector('#consent-yes') !== null", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(browser_workers(client).await.is_empty(), "the page rejoined before a new yes");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_webgpu_is_told_it_cannot_contribute_and_never_joins() {
    let args = site_args();
    let grid = Grid::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), 0).await;
    let mut browser = Browser::launch_without_webgpu().await;
    browser.goto(&grid.relay.url).await;
    browser.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(20)).await;
    browser.wait_for("window.hyphaeGrid.state === 'unsupported'", Duration::from_secs(20)).await;
    let shown = browser.eval("document.querySelector('#state').dataset.state").await;
    assert_eq!(shown.as_str(), Some("unsupported"));
    browser.screenshot("donate-unsupported").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(browser_workers(&grid.client).await.is_empty());
    browser.close().await;
}

// A site owner's page on another origin embeds the SDK with one tag; its visitors' credits go
// to the site owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_tag_embed_on_another_origin_computes_for_the_site_owner() {
    let args = site_args();
    let grid = Grid::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1).await;
    let owner: Address = "0x8ba1f109551bD432803012645Ac136ddd64DBA72".parse().unwrap();
    let other_site = tempfile::tempdir().unwrap();
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Another site</title></head>\
         <body><h1>Another site</h1><script type=\"module\" src=\"{relay}/sdk/embed.js\" data-relay=\"{relay}\" \
         data-beneficiary=\"{owner}\"></script></body></html>",
        relay = grid.relay.url
    );
    std::fs::write(other_site.path().join("index.html"), page).unwrap();
    // A second relay process serves only that page: a different origin (another port).
    let other = hyphae_tests::harness::RelayProcess::start(&["--site", &other_site.path().display().to_string()]);

    let mut browser = Browser::launch().await;
    browser.goto(&other.url).await;
    browser.wait_for("document.querySelector('[data-hyphae=start]') !== null", Duration::from_secs(20)).await;
    browser.click("[data-hyphae=start]").await;
    browser.wait_for("document.querySelector('#consent-yes') !== null", Duration::from_secs(10)).await;
    browser.click("#consent-yes").await;
    browser.wait_for("window.hyphaeGrid.state === 'running'", Duration::from_secs(60)).await;
    let workers = wait_browser_workers(&grid.client, 1).await;
    assert_eq!(workers[0].beneficiary, owner);
    assert!(browser_workers(&hyphae_tests::harness::Client::new(&other.url, &other.api_key)).await.is_empty());

    let (job, inputs) = collatz_job(4, 256, 2, 23);
    let created = grid.client.submit(&job).await;
    assert_collatz_results(&grid.client.completed_results(created.id, Duration::from_secs(180)).await, &inputs);
    let receipts = assert_receipts_pay_balance(&grid.client, owner).await;
    assert_eq!(receipts.len(), 4);
    browser
        .wait_for("document.querySelector('[data-hyphae=tasks]').textContent === '4'", Duration::from_secs(30))
        .await;
    browser.screenshot("embed-cross-origin-running").await;
    browser.close().await;
}
