//! `liars`: cheating workers joined to a live relay from outside, to watch the relay catch them.
//!
//! ```sh
//! cargo run -p hyphae-tests --bin liars -- --relay http://127.0.0.1:8080 --behaviour colluding --count 2
//! ```
//!
//! Each liar is the real node (a key and a beneficiary of its own, the real protocol, the GPU or
//! lavapipe) with an executor that cheats:
//! - `colluding`: computes, then flips the same bits every time, so liars agree with each other;
//! - `noise`: random bytes of the right sizes, no work done;
//! - `lazy`: its first result again for every later task of the same shape;
//! - `turncoat`: honest for `--honest-for` tasks (long enough to be trusted), then colluding.
//!
//! Every 5 s it prints what the relay says of each liar (results accepted and rejected, when it
//! was caught) and what its beneficiary holds; at the end (`--seconds`, or Ctrl-C) the totals.
//! A liar's accepted results are its honest ones (a lazy worker's first, a turncoat's early ones)
//! plus any lie that got through: with the relay's rechecks, a lie accepted for a while is
//! replaced and its credit never issued twice. `hyphae audit --data DIR` on the relay's data
//! afterwards checks that every receipt is valid and every balance adds up.

use std::time::{Duration, Instant};

use anyhow::Context;
use hyphae_node::executor::GpuExecutor;
use hyphae_proto::api::{Account, WorkerList};
use hyphae_tests::harness::{InProcessWorker, Lying, Noise, Stale, Turncoat};

const USAGE: &str = "usage: liars --relay URL [--count N] [--behaviour colluding|noise|lazy|turncoat] \
                     [--honest-for TASKS] [--seconds S]";

fn main() -> anyhow::Result<()> {
    let (mut relay, mut count, mut behaviour, mut honest_for, mut seconds) =
        (None, 2usize, "colluding".to_owned(), 15usize, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--relay" => relay = Some(value()?.trim_end_matches('/').to_owned()),
            "--count" => count = value()?.parse()?,
            "--behaviour" | "--behavior" => behaviour = value()?,
            "--honest-for" => honest_for = value()?.parse()?,
            "--seconds" => seconds = Some(Duration::from_secs(value()?.parse()?)),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let relay = relay.with_context(|| format!("--relay is required; {USAGE}"))?;
    let liars = (0..count)
        .map(|_| {
            let executor = GpuExecutor::new().context("no GPU adapter (install mesa-vulkan-drivers for lavapipe)")?;
            Ok(match behaviour.as_str() {
                "colluding" => InProcessWorker::start(&relay, Lying(executor)),
                "noise" => InProcessWorker::start(&relay, Noise(executor)),
                "lazy" => InProcessWorker::start(&relay, Stale::new(executor)),
                "turncoat" => InProcessWorker::start(&relay, Turncoat::new(executor, honest_for)),
                other => anyhow::bail!("unknown behaviour {other}; {USAGE}"),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for liar in &liars {
        println!("{behaviour} liar {} paying {}", liar.address, liar.beneficiary);
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            let out_of_time = async {
                match seconds {
                    Some(limit) => tokio::time::sleep(limit.saturating_sub(started.elapsed())).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = out_of_time => break,
            }
            match report(&http, &relay, &liars).await {
                Ok(lines) => println!("after {} s\n{lines}", started.elapsed().as_secs()),
                Err(e) => eprintln!("could not ask the relay: {e:#}"),
            }
        }
        let lines = report(&http, &relay, &liars).await?;
        println!("final\n{lines}");
        anyhow::Ok(())
    })?;
    // Dropping the workers closes their connections and joins their threads.
    drop(liars);
    Ok(())
}

/// A line per liar and one of totals, from the relay's public worker list and accounts.
async fn report(http: &reqwest::Client, relay: &str, liars: &[InProcessWorker]) -> anyhow::Result<String> {
    let list: WorkerList = http.get(format!("{relay}/v1/workers")).send().await?.error_for_status()?.json().await?;
    let mut lines = String::new();
    let (mut accepted, mut rejected, mut earned) = (0, 0, hyphae_proto::Credits::ZERO);
    for liar in liars {
        let account: Account = http
            .get(format!("{relay}/v1/accounts/{}", liar.beneficiary))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        earned += account.earned;
        match list.workers.iter().find(|w| w.address == liar.address) {
            Some(w) => {
                accepted += w.accepted;
                rejected += w.rejected;
                let caught = w.caught_after.map_or("never caught".to_owned(), |n| format!("caught after {n} valid"));
                lines += &format!(
                    "  {}: {} accepted, {} rejected, {caught}; beneficiary earned {}\n",
                    liar.address, w.accepted, w.rejected, account.earned
                );
            }
            None => lines += &format!("  {}: not connected; beneficiary earned {}\n", liar.address, account.earned),
        }
    }
    lines += &format!("  all {} liars: {accepted} accepted, {rejected} rejected, earned {earned}", liars.len());
    Ok(lines)
}
