//! The one error type of the HTTP API. Every failure becomes `{"error":{"code","message"}}` with
//! the status its [`ErrorCode`] names. Internal details never reach the client: they ride along as
//! a response extension for the logging middleware in `app.rs`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyphae_proto::api::{ErrorBody, ErrorCode};

use crate::job::JobError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For the log only.
    internal: Option<String>,
}

/// The cause of an internal error, for `app::log_internal_errors`.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), internal: None }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError {
            code: ErrorCode::Internal,
            message: "internal error; the relay logged the details".into(),
            internal: Some(detail.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if let Some(detail) = self.internal {
            response.extensions_mut().insert(InternalDetail(detail));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::InsufficientCredits { account, balance, needed } => ApiError::new(
                ErrorCode::InsufficientCredits,
                format!(
                    "account {account} has {balance} credits and this job costs {needed}: earn credits by \
                     contributing compute (a worker paying {account}), or ask the relay's operator for a grant"
                ),
            ),
            e => ApiError::internal(e),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> ApiError {
        let code = match e {
            JobError::InvalidWgsl(_) => ErrorCode::InvalidWgsl,
            JobError::BindingMismatch(_) => ErrorCode::BindingMismatch,
            JobError::Invalid(_) => ErrorCode::InvalidRequest,
        };
        ApiError::new(code, e.to_string())
    }
}
