//! The hyphae relay: hands out tasks to workers, accepts a result only when independent workers
//! agree, and pays each verified contribution with a signed receipt.
//!
//! Map: `api/` (HTTP, the only code that knows it), `ws` (worker socket), `scheduler/` (leases,
//! queue, placement), `verify/` (pure quorum and tolerance rules), `trust/` (pure
//! standing of workers: adaptive replication, quotas), `job` (request validation),
//! `signer` (relay key, receipts), `store/` (sled, blobs), `models/` (model import, tokenizer,
//! the embeddings service), `metrics`, `cli/` (the `hyphae` binary's commands), `config`, `app`
//! (router and lifecycle).

pub mod api;
pub mod app;
mod background;
pub mod cli;
pub mod config;
pub mod job;
pub mod metrics;
pub mod models;
pub mod scheduler;
pub mod signer;
pub mod store;
pub mod trust;
pub mod verify;
pub mod ws;

pub use app::{AppState, Relay, app};
pub use config::Config;

/// Milliseconds since the Unix epoch: the timestamps of records and API bodies.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let relay = Relay::start(config).await?;
    tracing::info!(address = %relay.state().scheduler.relay_address(), listen = %relay.local_addr(), "relay ready");
    relay.serve(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
