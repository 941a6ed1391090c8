//! Models the relay serves through OpenAI-compatible endpoints: reading and planning them into
//! shards (`files`, `import`), tokenizing on the relay (`tokenizer`), and turning embedding
//! requests into verified shard jobs (`embeddings`).

pub mod embeddings;
pub mod files;
pub mod import;
pub mod tokenizer;

pub use embeddings::{EmbeddingError, EmbeddingService};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}
