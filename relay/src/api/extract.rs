//! Our extractors: `Json` whose rejections come out in the API's error shape, path ids parsed with
//! a clear message, and the API-key check.

use axum::extract::rejection::{JsonRejection, MissingJsonContentType};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use hyphae_proto::api::ErrorCode;
use hyphae_proto::{Address, Sha256};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::AppState;

/// `axum::Json`, but a bad body is a `400 invalid_json` (or `413`, `415`) in our error shape.
pub struct Json<T>(pub T);

/// Bodies parsed on the blocking pool from this size: a job of thousands of tasks is a
/// megabyte of JSON, milliseconds that would otherwise stall one of the threads that hand out
/// tasks to workers.
const PARSE_APART: usize = 64 << 10;

impl<T: DeserializeOwned + Send + 'static, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(is_json) {
            return Err(json_rejection(MissingJsonContentType::default().into()));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| json_rejection(e.into()))?;
        let parsed = if bytes.len() < PARSE_APART {
            axum::Json::<T>::from_bytes(&bytes)
        } else {
            tokio::task::spawn_blocking(move || axum::Json::<T>::from_bytes(&bytes))
                .await
                .map_err(ApiError::internal)?
        };
        parsed.map(|axum::Json(value)| Json(value)).map_err(json_rejection)
    }
}

/// `application/json` or `application/…+json`, with any parameters (what `axum::Json` takes).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|subtype| subtype == "json" || (subtype.ends_with("+json") && !subtype.contains('/')))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "request body exceeds the relay's limit; upload big inputs with POST /v1/blobs",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(ErrorCode::UnsupportedMediaType, "expected Content-Type: application/json")
        }
        _ => ApiError::new(ErrorCode::InvalidJson, rejection.body_text()),
    }
}

/// Parses an id from the path, answering `400` with the id's own complaint when malformed.
pub fn parse_id<T: std::str::FromStr<Err = hyphae_proto::ProtoError>>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|e: hyphae_proto::ProtoError| ApiError::invalid(e.to_string()))
}

/// The caller's API key, checked: its name. Keys are stored as their SHA-256 only.
pub struct ApiKey {
    pub name: String,
    /// The account the key's jobs are paid from.
    pub account: Address,
}

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing Authorization: Bearer <api key>"))?;
        let key = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "expected Authorization: Bearer <api key>"))?;
        let hash = Sha256::of(key.as_bytes());
        match state.store.api_key(&hash)? {
            Some(record) => Ok(ApiKey { name: record.name, account: state.store.api_key_account(&hash)? }),
            None => Err(ApiError::new(ErrorCode::Unauthorized, "unknown API key")),
        }
    }
}

/// `axum::extract::Query`, with a bad query string answered in our error shape.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| Query(q))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_told_from_others_as_axum_does() {
        for json in
            ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"]
        {
            assert!(is_json(json), "{json}");
        }
        for other in ["text/plain", "application/jsonx", "application/x-www-form-urlencoded", "json", ""] {
            assert!(!is_json(other), "{other}");
        }
    }
}
