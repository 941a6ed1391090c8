//! `cargo xtask`: the project's two commands and its benchmarks.
//!
//! - `cargo xtask serve [--listen ADDR]`: install what is missing, build, start the relay with two
//!   native workers, print where to go and what to paste.
//! - `cargo xtask test`: every check CI runs (format, lints, wasm32 build, all tests).
//! - `cargo xtask site`: the wasm worker, the SDK and the site, assembled for the relay to serve.
//! - `cargo xtask bench relay|browser|models|p2p`: measurements, printed with their baseline.

mod bench;
mod browser_tests;
mod deps;
mod serve;
mod test;
#[cfg(test)]
mod tidy;
mod wasm;

use std::path::PathBuf;

use anyhow::bail;
use xshell::Shell;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sh = shell()?;
    match args.first().map(String::as_str) {
        Some("serve") => serve::run(&sh, &args[1..]),
        Some("test") => test::run(&sh, &args[1..]),
        Some("bench") => bench::run(&sh, &args[1..]),
        Some("site") => wasm::build_site(&sh).map(|dist| println!("{}", dist.display())),
        _ => bail!("usage: cargo xtask <serve [--listen ADDR] | test | site | bench relay|browser|models|p2p>"),
    }
}

/// The workspace root.
fn root() -> PathBuf {
    // Read at run time (`cargo run` sets it): the build cache is shared between clones, so this
    // binary may have been built in another clone, whose path `env!` would have baked in.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest_dir.parent().expect("xtask lives in the workspace").to_owned()
}

/// A shell at the workspace root, with build caches kept outside the clone so a fresh clone
/// builds warm.
fn shell() -> anyhow::Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(root());
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        sh.set_var("CARGO_TARGET_DIR", cache_dir().join("target"));
    }
    Ok(sh)
}

/// `$HOME/.cache/hyphae`: build outputs, installed tools and downloads.
fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("hyphae")
}

/// Where cargo puts this shell's build outputs.
fn target_dir(sh: &Shell) -> PathBuf {
    match sh.var("CARGO_TARGET_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => root().join("target"),
    }
}

/// Prints a step header, so a long run's log reads as a list of what happened.
fn step(title: &str) {
    eprintln!("\n==> {title}");
}
