//! The OpenAI-compatible endpoints: `POST /v1/embeddings` and `GET /v1/models`, with OpenAI's
//! error shape, so that OpenAI client libraries work against the grid unchanged.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hyphae_proto::Address;
use hyphae_proto::openai::{
    Embedding, EmbeddingInput, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, ErrorBody,
    ErrorDetail, Model, ModelList, Usage,
};
use hyphae_proto::tensor::to_bytes;

use super::extract::ApiKey;
use crate::app::AppState;
use crate::models::EmbeddingError;

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
pub struct OpenAiError {
    status: StatusCode,
    body: ErrorBody,
}

impl OpenAiError {
    fn new(
        status: StatusCode,
        kind: &str,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        OpenAiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    message: message.into(),
                    kind: kind.into(),
                    param: param.map(str::to_owned),
                    code: code.map(str::to_owned),
                },
            },
        }
    }

    fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        OpenAiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message, param, None)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<EmbeddingError> for OpenAiError {
    fn from(e: EmbeddingError) -> OpenAiError {
        let message = e.to_string();
        match e {
            EmbeddingError::UnknownModel(_) => OpenAiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                message,
                Some("model"),
                Some("model_not_found"),
            ),
            EmbeddingError::Invalid { param, .. } => OpenAiError::invalid(message, param),
            EmbeddingError::Unavailable(_) => OpenAiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                message,
                None,
                Some("grid_unavailable"),
            ),
            EmbeddingError::InsufficientCredits { .. } => OpenAiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                message,
                None,
                Some("insufficient_credits"),
            ),
            EmbeddingError::Failed(_) => {
                OpenAiError::new(StatusCode::BAD_GATEWAY, "server_error", message, None, Some("verification_failed"))
            }
            EmbeddingError::Internal(detail) => {
                tracing::error!(%detail, "embeddings failed");
                OpenAiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error", None, None)
            }
        }
    }
}

/// The caller's API key (the account that pays), with failures in OpenAI's shape.
pub struct Key(pub Address);

impl FromRequestParts<AppState> for Key {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        ApiKey::from_request_parts(parts, state).await.map(|key| Key(key.account)).map_err(|e| {
            OpenAiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                e.message,
                None,
                Some("invalid_api_key"),
            )
        })
    }
}

/// JSON bodies, with rejections in OpenAI's shape.
pub struct Json<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = OpenAiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state).await.map(|axum::Json(v)| Json(v)).map_err(|r: JsonRejection| match r
            .status()
        {
            StatusCode::PAYLOAD_TOO_LARGE => OpenAiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request body too large",
                None,
                None,
            ),
            _ => OpenAiError::invalid(r.body_text(), None),
        })
    }
}

pub async fn embeddings(
    State(app): State<AppState>,
    Key(payer): Key,
    Json(request): Json<EmbeddingsRequest>,
) -> Result<axum::Json<EmbeddingsResponse>, OpenAiError> {
    let inputs = match request.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
        EmbeddingInput::Tokens(_) | EmbeddingInput::ManyTokens(_) => {
            return Err(OpenAiError::invalid(
                "token arrays are not accepted: token ids differ between models; send text",
                Some("input"),
            ));
        }
    };
    let served = app.embeddings.models().into_iter().find(|m| {
        m.name.eq_ignore_ascii_case(&request.model) || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(&request.model))
    });
    if let (Some(model), Some(dimensions)) = (served, request.dimensions)
        && dimensions != model.dimensions
    {
        return Err(OpenAiError::invalid(
            format!("{} embeds into {} dimensions and cannot shorten them", model.name, model.dimensions),
            Some("dimensions"),
        ));
    }
    let embedded = app.embeddings.embed(&request.model, inputs, payer).await?;
    let format = request.encoding_format.unwrap_or_default();
    let data = embedded
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| Embedding {
            object: "embedding".into(),
            index: index as u32,
            embedding: match format {
                EncodingFormat::Float => EmbeddingVector::Float(vector),
                EncodingFormat::Base64 => EmbeddingVector::Base64(
                    base64::engine::general_purpose::STANDARD.encode(to_bytes(&vector, f32::to_le_bytes)),
                ),
            },
        })
        .collect();
    let tokens = embedded.tokens as u32;
    Ok(axum::Json(EmbeddingsResponse {
        object: "list".into(),
        data,
        model: embedded.model,
        usage: Usage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}

pub async fn models(State(app): State<AppState>) -> axum::Json<ModelList> {
    let data = app
        .embeddings
        .models()
        .into_iter()
        .map(|m| Model {
            id: m.name.clone(),
            object: "model".into(),
            created: m.created_at / 1000,
            owned_by: "hyphae".into(),
        })
        .collect();
    axum::Json(ModelList { object: "list".into(), data })
}
