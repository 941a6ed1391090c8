//! `hyphae model add`: plans a model into pipeline shards and stores each shard's weights as a
//! content-addressed blob, so a worker fetches (and caches) only the shard it runs.

use hyphae_proto::frame::ShardSpec;
use hyphae_shaders::model::{BertConfig, ShardPlan, plan, shard_weights};

use super::ModelError;
use super::files::ModelFiles;
use crate::store::blobs::BlobStore;
use crate::store::records::{ModelRecord, ShardRecord};

/// Plans `files` into `shards` shards, stores their weights in `blobs`, and returns the record to
/// commit.
pub async fn import(
    files: ModelFiles,
    name: Option<String>,
    shards: u32,
    blobs: &BlobStore,
) -> Result<ModelRecord, ModelError> {
    let config = BertConfig::from_json(&files.config).map_err(|e| ModelError::Invalid(format!("config.json: {e}")))?;
    let name = name
        .or(files.title.clone())
        .ok_or_else(|| ModelError::Invalid("the model has no title in README.md; name it with --name".into()))?;
    let max_seq_length =
        files.max_seq_length.unwrap_or(config.max_position_embeddings).min(config.max_position_embeddings);
    // The tokenizer must load before anything is stored.
    super::tokenizer::TextTokenizer::new(&files.tokenizer, max_seq_length)?;
    let plans = plan(&config, shards).map_err(|e| ModelError::Invalid(e.to_string()))?;
    let mut records = Vec::with_capacity(plans.len());
    for p in &plans {
        let weights = shard_weights(&files.safetensors, &config, p).map_err(|e| ModelError::Invalid(e.to_string()))?;
        let id = blobs.put(&weights).await.map_err(|e| ModelError::Io(e.to_string()))?;
        records.push(ShardRecord {
            spec: spec_of(p),
            weights: id,
            weights_size: weights.len() as u64,
            largest_tensor: largest_tensor(&config, p),
        });
    }
    let aliases = if name.contains('/') { Vec::new() } else { vec![format!("sentence-transformers/{name}")] };
    Ok(ModelRecord {
        name,
        aliases,
        source: files.source,
        config: files.config,
        tokenizer: files.tokenizer,
        max_seq_length,
        dimensions: config.hidden_size,
        shards: records,
        created_at: crate::unix_ms(),
    })
}

pub fn spec_of(plan: &ShardPlan) -> ShardSpec {
    ShardSpec {
        index: plan.index,
        count: plan.count,
        layers: [plan.layers.start, plan.layers.end],
        embeddings: plan.embeddings,
        pooling: plan.pooling,
    }
}

/// The biggest tensor a shard holds: the word embeddings for the first shard, else a
/// feed-forward matrix.
fn largest_tensor(config: &BertConfig, plan: &ShardPlan) -> u64 {
    let f32s = |n: u32| u64::from(n) * 4;
    let ffn = f32s(config.intermediate_size) * u64::from(config.hidden_size);
    let words = if plan.embeddings { f32s(config.vocab_size) * u64::from(config.hidden_size) } else { 0 };
    ffn.max(words)
}
