//! `POST /v1/blobs` (raw bytes up to the configured size) and `GET /v1/blobs/{id}`. Blobs are
//! content-addressed, so a download is immutable and cacheable forever.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use hyphae_proto::BlobId;
use hyphae_proto::api::{BlobCreated, ErrorCode};

use super::error::ApiError;
use super::extract::{ApiKey, parse_id};
use crate::app::AppState;

pub async fn upload(
    State(app): State<AppState>,
    _key: ApiKey,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let limit = app.config.max_blob_bytes;
    let too_large =
        || ApiError::new(ErrorCode::PayloadTooLarge, format!("blob exceeds the relay's limit of {limit} bytes"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit as usize).await.map_err(|_| too_large())?;
    let id = app.blobs.put(&bytes).await?;
    Ok((StatusCode::CREATED, axum::Json(BlobCreated { id, size: bytes.len() as u64 })))
}

pub async fn download(State(app): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id: BlobId = parse_id(&id)?;
    let bytes = app.blobs.get(&id).await?.ok_or_else(|| ApiError::not_found(format!("no blob {id}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    ))
}
