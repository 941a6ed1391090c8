//! Every type that crosses a process boundary in hyphae: HTTP bodies, worker frames, ids, keys,
//! Ethereum-style addresses and signed credit receipts.
//!
//! **Architecture invariant:** this crate does no I/O (no sockets, files, clocks or randomness; the
//! caller passes those in) and compiles to `wasm32-unknown-unknown`, so the browser worker, the
//! native worker, the relay and outside tools all share one definition of each message.

pub mod api;
pub mod credits;
pub mod digest;
pub mod error;
pub mod frame;
pub mod ids;
pub mod keys;
pub mod openai;
pub mod peer;
pub mod receipt;
pub mod tensor;

pub use credits::Credits;
pub use digest::Sha256;
pub use error::ProtoError;
pub use ids::{BlobId, JobId, LeaseId, ReceiptId, TaskId};
pub use keys::{Address, SecretKey, Signature};
pub use receipt::{BatchProof, Issued, ReceiptPayload, SignedReceipt, batch_message, sign_receipts};
pub use tensor::Dtype;

/// Version of the worker protocol spoken over `GET /v1/workers/ws`. Bumped on any incompatible
/// change to [`frame`]; the relay refuses workers that speak another one.
pub const PROTOCOL_VERSION: u32 = 6;
