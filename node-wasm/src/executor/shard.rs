//! Model shards on the worker's GPU: weights are uploaded once per shard and kept (a small LRU by
//! blob id), so a worker that runs the same shard again only moves activations.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use hyphae_proto::BlobId;
use hyphae_proto::frame::{FailureKind, TaskFailure};
use hyphae_proto::tensor::{f32s, to_bytes, u32s};
use hyphae_shaders::Gpu;
use hyphae_shaders::model::{BertConfig, LoadedShard, ModelError, ShardInput, ShardPlan, run_shard};

use super::{ShardTask, failure};

/// Shards loaded at once. MiniLM's three shards take about 90 MB of GPU memory together.
pub const CAPACITY: usize = 4;

/// Shards on the GPU by weights blob, most recently used last.
type Loaded = VecDeque<(BlobId, Arc<LoadedShard>)>;

/// Loaded shards. Shared, so the task loop can ask whether weights are held without touching
/// the GPU.
#[derive(Default, Clone)]
pub struct ShardCache {
    loaded: Arc<Mutex<Loaded>>,
}

impl ShardCache {
    pub fn holds(&self, id: &BlobId) -> bool {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|(b, _)| b == id)
    }

    fn get(&self, id: &BlobId) -> Option<Arc<LoadedShard>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let at = loaded.iter().position(|(b, _)| b == id)?;
        let entry = loaded.remove(at).expect("found");
        let shard = entry.1.clone();
        loaded.push_back(entry);
        Some(shard)
    }

    fn insert(&self, id: BlobId, shard: Arc<LoadedShard>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.retain(|(b, _)| *b != id);
        loaded.push_back((id, shard));
        while loaded.len() > CAPACITY {
            loaded.pop_front();
        }
    }

    /// Runs a shard task on `gpu`, loading its weights first if needed.
    pub async fn run(&self, gpu: &Gpu, task: ShardTask) -> Result<Vec<Vec<u8>>, TaskFailure> {
        let model = |e: ModelError| failure(model_failure_kind(&e), e.to_string());
        let config = BertConfig::from_json(&task.config).map_err(model)?;
        let plan = ShardPlan::from(&task.spec);
        let shard = match (self.get(&task.weights), &task.weights_bytes) {
            (Some(shard), _) => shard,
            (None, Some(bytes)) => {
                let shard = Arc::new(LoadedShard::load(gpu, &config, &plan, bytes).await.map_err(model)?);
                self.insert(task.weights, shard.clone());
                shard
            }
            (None, None) => {
                return Err(failure(
                    FailureKind::MissingBlob,
                    format!("weights {} were unloaded meanwhile", task.weights),
                ));
            }
        };
        let output = if plan.embeddings {
            let tokens: Vec<u32> = u32s(&task.input).collect();
            run_shard(gpu, &shard, task.batch, task.seq, &task.mask, ShardInput::Tokens(&tokens)).await
        } else {
            let hidden: Vec<f32> = f32s(&task.input).collect();
            run_shard(gpu, &shard, task.batch, task.seq, &task.mask, ShardInput::Hidden(&hidden)).await
        }
        .map_err(model)?;
        let bytes = to_bytes(&output, f32::to_le_bytes);
        if bytes.len() as u64 != task.output_size {
            return Err(failure(
                FailureKind::InvalidShader,
                format!("the shard produced {} bytes, the task expects {}", bytes.len(), task.output_size),
            ));
        }
        Ok(vec![bytes])
    }
}

fn model_failure_kind(e: &ModelError) -> FailureKind {
    match e {
        ModelError::Exec(e) => e.failure_kind(),
        _ => FailureKind::InvalidShader,
    }
}
