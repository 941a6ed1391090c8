//! About the relay itself: `GET /health`, `GET /v1/relay`, `GET /metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use hyphae_proto::api::RelayInfo;

use crate::app::AppState;

pub async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

pub async fn info(State(app): State<AppState>) -> axum::Json<RelayInfo> {
    axum::Json(RelayInfo {
        name: "hyphae".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        address: app.scheduler.relay_address(),
        protocol: hyphae_proto::PROTOCOL_VERSION,
        max_blob_bytes: app.config.max_blob_bytes,
        max_request_bytes: app.config.max_request_bytes,
        max_binding_bytes: app.config.job_limits.max_binding_bytes,
    })
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.render())
}
