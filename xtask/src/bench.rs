//! `cargo xtask bench <what>`: measurements printed with their baseline, never asserted in tests.

use anyhow::bail;
use xshell::{Shell, cmd};

use crate::step;

pub fn run(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("relay") => {
            step("relay: verified tasks/s and dispatch latency with simulated workers");
            let rest = &args[1..];
            cmd!(sh, "cargo run --locked --release -p hyphae-tests --bin bench-relay -- {rest...}").run()?;
            Ok(())
        }
        _ => bail!("usage: cargo xtask bench relay [--workers N,…] [--seconds S]"),
    }
}
