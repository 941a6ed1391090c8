//! The browser build: the worker crate compiled to wasm32, bound with the wasm-bindgen CLI at the
//! lockfile's version, shrunk with binaryen's wasm-opt (npm's; Debian's v108 emits broken wasm),
//! and assembled with the SDK and the site into the directory the relay serves:
//!
//! ```text
//! <target>/site/           site/ (donate page, dashboard/, embed/, assets/)
//! <target>/site/sdk/       sdk-js/src/*.js and sdk-js/hyphae.d.ts
//! <target>/site/pkg/       hyphae_node.js and hyphae_node_bg.wasm
//! ```

use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

use crate::{deps, root, target_dir};

/// Features Rust's wasm32 target emits by default; wasm-opt must accept exactly these.
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-bulk-memory-opt",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// Builds the wasm worker and the site; returns the directory to serve.
pub fn build_site(sh: &Shell) -> anyhow::Result<PathBuf> {
    deps::ensure_rust_target(sh, "wasm32-unknown-unknown")?;
    let bindgen = deps::ensure_wasm_bindgen(sh)?.join("wasm-bindgen");
    let node_modules = deps::ensure_npm_tools(sh)?;
    let wasm_opt = node_modules.join("binaryen").join("bin").join("wasm-opt");

    cmd!(
        sh,
        "cargo rustc --locked -p hyphae-node --lib --target wasm32-unknown-unknown --profile wasm-release --crate-type cdylib"
    )
    .run()?;
    let target = target_dir(sh);
    let wasm = target.join("wasm32-unknown-unknown").join("wasm-release").join("hyphae_node.wasm");

    let dist = target.join("site");
    if dist.exists() {
        std::fs::remove_dir_all(&dist)?;
    }
    let pkg = dist.join("pkg");
    cmd!(sh, "{bindgen} --target web --no-typescript --out-dir {pkg} {wasm}").run()?;
    let bound = pkg.join("hyphae_node_bg.wasm");
    let features = WASM_FEATURES;
    cmd!(sh, "node {wasm_opt} -Oz {features...} {bound} -o {bound}").run()?;

    copy_dir(&root().join("site"), &dist)?;
    let sdk = dist.join("sdk");
    copy_dir(&root().join("sdk-js").join("src"), &sdk)?;
    let types = root().join("sdk-js").join("hyphae.d.ts");
    if types.exists() {
        std::fs::copy(&types, sdk.join("hyphae.d.ts"))?;
    }
    let raw = std::fs::metadata(&bound)?.len();
    let gz = cmd!(sh, "gzip -9 -c {bound}").quiet().output()?.stdout.len();
    eprintln!("wasm worker: {} KiB raw, {} KiB gzipped ({})", raw / 1024, gz / 1024, bound.display());
    eprintln!("site assembled in {}", dist.display());
    Ok(dist)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(&path, to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
