//! The HTTP API (DESIGN.md §2), one module per resource. **API boundary:** this is the only code
//! that knows HTTP; it converts between wire bodies (`hyphae_proto::api`) and the scheduler,
//! store and ledger.

mod accounts;
mod blobs;
pub mod error;
pub mod extract;
mod jobs;
mod openai;
mod receipts;
mod relay;
mod workers;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(relay::health))
        .route("/metrics", get(relay::metrics))
        .route("/v1/relay", get(relay::info))
        .route("/v1/stats", get(workers::stats))
        .route("/v1/workers", get(workers::list))
        .route("/v1/workers/ws", get(crate::ws::upgrade))
        .route("/v1/blobs", post(blobs::upload))
        .route("/v1/blobs/{id}", get(blobs::download))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/jobs", post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::status))
        .route("/v1/jobs/{id}/results", get(jobs::results))
        .route("/v1/accounts/{address}", get(accounts::account))
        .route("/v1/receipts", get(receipts::list))
        .route("/v1/receipts/{id}", get(receipts::one))
}
