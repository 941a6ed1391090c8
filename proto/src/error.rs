//! Errors of parsing and checking wire values. Receipt verification has its own
//! [`crate::receipt::ReceiptError`] because its callers act on each cause differently.

/// A wire value that could not be parsed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId { kind: &'static str, value: String, reason: &'static str },
    #[error("invalid address {value:?}: {reason}")]
    InvalidAddress { value: String, reason: &'static str },
    #[error("invalid signature: {0}")]
    InvalidSignature(&'static str),
    #[error("invalid secret key")]
    InvalidSecretKey,
    #[error("invalid credit amount {value:?}: {reason}")]
    InvalidCredits { value: String, reason: &'static str },
    #[error("invalid hex digest {value:?}")]
    InvalidDigest { value: String },
    #[error("malformed frame: {0}")]
    Frame(String),
}
