//! The grid's live state: `GET /v1/workers` and `GET /v1/stats`.

use axum::extract::State;
use hyphae_proto::api::{Stats, WorkerList};

use crate::app::AppState;

pub async fn list(State(app): State<AppState>) -> axum::Json<WorkerList> {
    axum::Json(WorkerList { workers: app.scheduler.workers() })
}

pub async fn stats(State(app): State<AppState>) -> axum::Json<Stats> {
    axum::Json(app.scheduler.stats())
}
