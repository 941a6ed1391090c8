//! The OpenAI-compatible bodies the relay serves (`POST /v1/embeddings`, `GET /v1/models`), shaped
//! exactly as OpenAI's API documents them so existing client libraries work unchanged, errors
//! included (`{"error":{"message","type","param","code"}}`).

use serde::{Deserialize, Serialize};

/// `POST /v1/embeddings`. Unknown fields are ignored, as client libraries send extras.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub input: EmbeddingInput,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// One text, several, or (as OpenAI also allows) pre-tokenized inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Little-endian f32s, base64: a quarter of the JSON of floats.
    Base64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    pub index: u32,
    pub embedding: EmbeddingVector,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}

/// `GET /v1/models`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Model>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    pub owned_by: String,
}

/// OpenAI's error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `server_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_from_openai_clients_parse() {
        let one: EmbeddingsRequest =
            serde_json::from_str(r#"{"input":"hello","model":"all-MiniLM-L6-v2","user":"x","extra":1}"#).unwrap();
        assert_eq!(one.input, EmbeddingInput::One("hello".into()));
        let many: EmbeddingsRequest =
            serde_json::from_str(r#"{"input":["a","b"],"model":"m","encoding_format":"base64"}"#).unwrap();
        assert_eq!(many.input, EmbeddingInput::Many(vec!["a".into(), "b".into()]));
        assert_eq!(many.encoding_format, Some(EncodingFormat::Base64));
        let tokens: EmbeddingsRequest = serde_json::from_str(r#"{"input":[1,2,3],"model":"m"}"#).unwrap();
        assert_eq!(tokens.input, EmbeddingInput::Tokens(vec![1, 2, 3]));
    }

    #[test]
    fn error_body_has_openais_shape() {
        let body = ErrorBody {
            error: ErrorDetail {
                message: "The model `x` does not exist".into(),
                kind: "invalid_request_error".into(),
                param: Some("model".into()),
                code: Some("model_not_found".into()),
            },
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#
        );
    }
}
