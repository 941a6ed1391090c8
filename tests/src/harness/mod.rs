//! Starting the grid for a test: [`RelayProcess`] (the real `hyphae serve`), [`NodeProcess`] (the
//! real `hyphae-node`), [`InProcessWorker`] (the node library with an executor a test chooses),
//! and [`Client`] (the HTTP API).

pub mod browser;
mod client;
mod grid;
mod jobs;
mod lan;
mod process;
pub mod sim;
mod worker;

use std::path::PathBuf;

pub use browser::Browser;
pub use client::Client;
pub use grid::Grid;
pub use jobs::{MatmulCase, collatz_job, matmul_job, perturb};
pub use lan::Lan;
pub use process::{NodeProcess, RelayProcess};
pub use worker::{InProcessWorker, Lying, Noise, Stale, Turncoat};

/// The directory holding this workspace's binaries: tests run from `<target>/debug/deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let mut dir = exe.parent().expect("in a directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A binary of this workspace, which `cargo xtask test` builds before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test`, or `cargo build --workspace --bins` before `cargo test`",
        path.display()
    );
    path
}

/// This crate's directory (its test data, the browser driver), looked up when the test runs:
/// build caches are shared between clones, so a test binary may have been built in another one.
/// `cargo test` names it in `CARGO_MANIFEST_DIR`; a benchmark started by xtask inherits xtask's
/// own, hence the check.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.join("e2e").join("main.rs").is_file())
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// Logs from in-process code (relay library, workers) go to the test's output.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wgpu_core=warn,wgpu_hal=warn,naga=warn")),
        )
        .with_test_writer()
        .try_init();
}
