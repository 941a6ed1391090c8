//! The `hyphae` command line: `serve`, `keys`, `model`, `job`, `receipt`, `credits`, `audit`. Flags are parsed here into
//! [`Args`]; `serve` resolves them into a [`Config`] once.

mod audit;
mod credits;
mod job;
mod keys;
mod model;
mod receipt;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(name = "hyphae", version, about = "Volunteer compute grid relay and client")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay: HTTP API, worker socket, scheduler, verifier and store.
    Serve(ServeArgs),
    /// Manage API keys (needs the data directory; stop the relay first).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage the models served at /v1/embeddings (needs the data directory; stop the relay first).
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Submit jobs and read their results from a running relay.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Check receipts offline.
    #[command(subcommand)]
    Receipt(receipt::ReceiptCommand),
    /// Grant and inspect credit balances (needs the data directory; stop the relay first).
    #[command(subcommand)]
    Credits(credits::CreditsCommand),
    /// Re-verify every receipt and balance in a data directory, offline.
    Audit(audit::AuditArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data directory: the store, blobs and the relay's signing key.
    #[arg(long = "data", default_value = "hyphae-data")]
    pub data_dir: PathBuf,
    /// Largest blob upload, in bytes.
    #[arg(long)]
    pub max_blob_bytes: Option<u64>,
    /// Largest JSON request, in bytes.
    #[arg(long)]
    pub max_request_bytes: Option<u64>,
    /// Seconds a worker has to return a task before it goes to another worker.
    #[arg(long, default_value_t = 60)]
    pub lease_timeout: u64,
    /// Most tasks one worker holds at once.
    #[arg(long, default_value_t = 4)]
    pub max_in_flight: u32,
    /// Seconds between pings to each worker.
    #[arg(long, default_value_t = 15)]
    pub heartbeat: u64,
    /// Directory of the static site served at `/`.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Independent workers that must agree on each model shard before its activations move on.
    /// 1 trusts a single worker: for a grid of your own machines, never an open one.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub model_redundancy: u32,
    /// Send model activations through the relay instead of between workers (workers then
    /// answer shard tasks with their full outputs). For comparison and for grids whose workers
    /// cannot reach each other at all.
    #[arg(long)]
    pub activations_via_relay: bool,
    /// Check each model shard's result by recomputing this many of its batch's sequences on the
    /// relay's CPU, drawn after the result is in: one worker's result is then enough when it
    /// passes (a second worker runs the shard only when it fails). The relay fetches the shard's
    /// activations to do so. 0 turns spot checks off.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub spot_check_sequences: u32,
    /// `adaptive`: trusted workers' tasks go out once, checked at random with a probability
    /// that falls as their record of valid results grows (BOINC's adaptive replication).
    /// `fixed`: every task gets its job's full redundancy.
    #[arg(long, value_enum, default_value_t = Replication::Adaptive)]
    pub replication: Replication,
    /// Valid results in a row (of a worker and of its beneficiary) before it is trusted.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub trusted_after: u64,
    /// The least probability that a trusted worker's task is checked, however long its record:
    /// a worker that turns is caught, on average, within 1 / this many wrong results.
    #[arg(long, default_value_t = 0.03, value_parser = parse_share)]
    pub min_check: f64,
    /// Share of dispatches that are canaries: tasks whose answer trusted workers already agreed
    /// on, sent like any replica to catch workers that lie, colluding ones included.
    #[arg(long, default_value_t = 0.02, value_parser = parse_share)]
    pub canary_rate: f64,
    /// A reverse proxy in front of the relay (repeat for several): workers connecting through
    /// it are known by the address in its `X-Forwarded-For`, so that replicas still go to
    /// workers of distinct addresses. From anyone else the header is ignored.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Replication {
    Adaptive,
    Fixed,
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a share between 0 and 1")),
    }
}

impl Config {
    pub fn from_args(args: &ServeArgs) -> Config {
        let mut config = Config::new(args.listen, args.data_dir.clone());
        if let Some(n) = args.max_blob_bytes {
            config.max_blob_bytes = n;
        }
        if let Some(n) = args.max_request_bytes {
            config.max_request_bytes = n;
        }
        config.scheduler.lease_timeout = Duration::from_secs(args.lease_timeout.max(1));
        config.scheduler.max_in_flight = args.max_in_flight.max(1);
        config.heartbeat = Duration::from_secs(args.heartbeat.max(1));
        config.site_dir = args.site.clone();
        config.embeddings.redundancy = args.model_redundancy;
        config.embeddings.hand_off = !args.activations_via_relay;
        config.embeddings.spot_check = args.spot_check_sequences;
        config.scheduler.trust.adaptive = args.replication == Replication::Adaptive;
        config.scheduler.trust.trusted_after = args.trusted_after;
        config.scheduler.trust.min_check = args.min_check;
        config.scheduler.trust.canary_rate = args.canary_rate;
        config.trusted_proxies = args.trusted_proxies.clone();
        config
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.command {
        Command::Serve(serve) => runtime.block_on(crate::serve(Config::from_args(&serve))).map(|()| ExitCode::SUCCESS),
        Command::Keys(cmd) => runtime.block_on(keys::run(cmd)),
        Command::Model(cmd) => runtime.block_on(model::run(cmd)),
        Command::Job(cmd) => runtime.block_on(job::run(cmd)),
        Command::Receipt(cmd) => receipt::run(cmd),
        Command::Credits(cmd) => runtime.block_on(credits::run(cmd)),
        Command::Audit(args) => audit::run(args),
    }
}
