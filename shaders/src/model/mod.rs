//! Model runtimes split into pipeline shards. Today: BERT encoders such as all-MiniLM-L6-v2
//! (DESIGN.md §5), run as a pipeline of layer-range shards so the relay can spread one model
//! over several workers and verify every shard boundary on its own.
//!
//! - [`config`]: [`BertConfig`], read from a Hugging Face `config.json` and checked.
//! - [`plan`]: [`ShardPlan`]s (which layers, and whether the embeddings or the pooling, each
//!   shard holds), the FLOPs a shard costs, and [`shard_weights`], the safetensors file of one
//!   shard cut out of the full model.
//! - [`weights`]: the tensors a shard needs, checked by name, dtype and shape.
//! - [`bert`]: [`LoadedShard`] (weights uploaded to the GPU once), [`run_shard`] (one program of
//!   dispatches, one readback) and [`reference_shard`], its CPU reference built from the
//!   kernels' references.
//!
//! Not here: tokenization and fetching weights (the worker and the relay do those), and any
//! wire type (activations cross the wire as `proto` tensors).

pub mod bert;
pub mod config;
pub mod plan;
pub mod weights;

pub use bert::{LoadedShard, ShardInput, reference_shard, run_shard};
pub use config::BertConfig;
pub use plan::{ShardPlan, plan, shard_flops, shard_weights};
pub use weights::ShardWeights;

use crate::ExecError;

/// Why a model could not be planned, loaded or run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// `config.json` is not a JSON object.
    #[error("config.json is not a json object: {0}")]
    ConfigJson(String),
    /// A field of `config.json` is missing or out of range.
    #[error("config field `{field}`: {message}")]
    Config { field: &'static str, message: String },
    /// A valid config this runtime cannot run (another activation, heads too wide, …).
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The model cannot be split into this many shards (1 ≤ shards ≤ layers).
    #[error("cannot split {layers} layers into {shards} shards")]
    Shards { layers: u32, shards: u32 },
    /// A plan that does not belong to the config (layers past the model's).
    #[error("invalid shard plan: {0}")]
    Plan(String),
    /// The weights are not a readable safetensors file.
    #[error("invalid safetensors: {0}")]
    Safetensors(String),
    #[error("tensor `{name}` is missing")]
    MissingTensor { name: String },
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor `{name}` is {found}, expected F32")]
    TensorDtype { name: String, found: String },
    /// The inputs of a run do not fit the shard (wrong kind, length, token id or shape).
    #[error("invalid shard input: {0}")]
    Input(String),
    #[error(transparent)]
    Exec(#[from] ExecError),
}
