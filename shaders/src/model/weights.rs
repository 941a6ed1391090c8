//! The tensors a shard needs, under Hugging Face's BERT names, and their checks: present, F32,
//! and of the shape the config says. [`LoadedShard::load`](super::LoadedShard::load) and
//! [`shard_weights`](super::shard_weights) read safetensors through [`checked_tensors`];
//! [`ShardWeights`] holds them as f32 for the CPU reference.

use std::collections::HashMap;

use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use super::{BertConfig, ModelError, ShardPlan};

/// One tensor a shard needs: its name in the model file and its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";
pub const POSITION_EMBEDDINGS: &str = "embeddings.position_embeddings.weight";
pub const TOKEN_TYPE_EMBEDDINGS: &str = "embeddings.token_type_embeddings.weight";
pub const EMBEDDINGS_LN_WEIGHT: &str = "embeddings.LayerNorm.weight";
pub const EMBEDDINGS_LN_BIAS: &str = "embeddings.LayerNorm.bias";

/// The parts of encoder layer `i`, in the order [`layer_tensors`] lists them.
pub fn layer_tensor_name(layer: u32, part: &str) -> String {
    format!("encoder.layer.{layer}.{part}")
}

/// Parts of one encoder layer and whether each is `[rows, cols]` or a vector, as
/// `(suffix, shape)` for hidden size `h` and intermediate size `i`.
fn layer_parts(h: usize, i: usize) -> [(&'static str, Vec<usize>); 16] {
    [
        ("attention.self.query.weight", vec![h, h]),
        ("attention.self.query.bias", vec![h]),
        ("attention.self.key.weight", vec![h, h]),
        ("attention.self.key.bias", vec![h]),
        ("attention.self.value.weight", vec![h, h]),
        ("attention.self.value.bias", vec![h]),
        ("attention.output.dense.weight", vec![h, h]),
        ("attention.output.dense.bias", vec![h]),
        ("attention.output.LayerNorm.weight", vec![h]),
        ("attention.output.LayerNorm.bias", vec![h]),
        ("intermediate.dense.weight", vec![i, h]),
        ("intermediate.dense.bias", vec![i]),
        ("output.dense.weight", vec![h, i]),
        ("output.dense.bias", vec![h]),
        ("output.LayerNorm.weight", vec![h]),
        ("output.LayerNorm.bias", vec![h]),
    ]
}

/// The embedding tensors (the first shard's).
pub fn embedding_tensors(config: &BertConfig) -> Vec<TensorSpec> {
    let h = config.hidden_size as usize;
    [
        (WORD_EMBEDDINGS, vec![config.vocab_size as usize, h]),
        (POSITION_EMBEDDINGS, vec![config.max_position_embeddings as usize, h]),
        (TOKEN_TYPE_EMBEDDINGS, vec![config.type_vocab_size as usize, h]),
        (EMBEDDINGS_LN_WEIGHT, vec![h]),
        (EMBEDDINGS_LN_BIAS, vec![h]),
    ]
    .into_iter()
    .map(|(name, shape)| TensorSpec { name: name.to_owned(), shape })
    .collect()
}

/// The tensors of encoder layer `layer`.
pub fn layer_tensors(config: &BertConfig, layer: u32) -> Vec<TensorSpec> {
    layer_parts(config.hidden_size as usize, config.intermediate_size as usize)
        .into_iter()
        .map(|(part, shape)| TensorSpec { name: layer_tensor_name(layer, part), shape })
        .collect()
}

/// Every tensor `plan`'s shard needs, embeddings first, then its layers in order. Pooling and
/// normalization have no weights.
pub fn shard_tensors(config: &BertConfig, plan: &ShardPlan) -> Vec<TensorSpec> {
    let mut specs = if plan.embeddings { embedding_tensors(config) } else { Vec::new() };
    for layer in plan.layers.clone() {
        specs.extend(layer_tensors(config, layer));
    }
    specs
}

/// Checks that `plan` fits `config` (layers within the model, embeddings only with layer 0).
pub fn check_plan(config: &BertConfig, plan: &ShardPlan) -> Result<(), ModelError> {
    config.validate()?;
    if plan.layers.end > config.num_hidden_layers || plan.layers.start > plan.layers.end {
        return Err(ModelError::Plan(format!(
            "layers {:?} of a model with {} layers",
            plan.layers, config.num_hidden_layers
        )));
    }
    if plan.embeddings && plan.layers.start != 0 {
        return Err(ModelError::Plan(format!("embeddings before layer {} instead of layer 0", plan.layers.start)));
    }
    if plan.pooling && plan.layers.end != config.num_hidden_layers && !plan.layers.is_empty() {
        return Err(ModelError::Plan(format!(
            "pooling after layer {} of {}",
            plan.layers.end, config.num_hidden_layers
        )));
    }
    Ok(())
}

/// Reads `safetensors` and returns every tensor of `specs`, in order, checked: present, F32,
/// and of the expected shape. Other tensors in the file are ignored.
pub fn checked_tensors<'a>(file: &SafeTensors<'a>, specs: &[TensorSpec]) -> Result<Vec<TensorView<'a>>, ModelError> {
    specs
        .iter()
        .map(|spec| {
            let view = file.tensor(&spec.name).map_err(|_| ModelError::MissingTensor { name: spec.name.clone() })?;
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(ModelError::TensorDtype { name: spec.name.clone(), found: format!("{:?}", view.dtype()) });
            }
            if view.shape() != spec.shape.as_slice() {
                return Err(ModelError::TensorShape {
                    name: spec.name.clone(),
                    expected: spec.shape.clone(),
                    found: view.shape().to_vec(),
                });
            }
            Ok(view)
        })
        .collect()
}

pub fn parse(safetensors: &[u8]) -> Result<SafeTensors<'_>, ModelError> {
    SafeTensors::deserialize(safetensors).map_err(|e| ModelError::Safetensors(e.to_string()))
}

/// Little-endian f32 bytes as values (safetensors data need not be 4-byte aligned).
pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A shard's tensors as f32, checked: what [`reference_shard`](super::reference_shard) reads.
#[derive(Clone, Debug)]
pub struct ShardWeights {
    tensors: HashMap<String, Vec<f32>>,
}

impl ShardWeights {
    /// Every tensor `plan` needs from `safetensors` (a shard's file or the whole model's).
    pub fn parse(config: &BertConfig, plan: &ShardPlan, safetensors: &[u8]) -> Result<ShardWeights, ModelError> {
        check_plan(config, plan)?;
        let file = parse(safetensors)?;
        let specs = shard_tensors(config, plan);
        let views = checked_tensors(&file, &specs)?;
        let tensors = specs.into_iter().zip(views).map(|(spec, view)| (spec.name, f32_values(view.data()))).collect();
        Ok(ShardWeights { tensors })
    }

    /// The tensor called `name`. Panics if the shard does not hold it: callers ask only for
    /// the names [`shard_tensors`] lists, which `parse` checked.
    pub fn get(&self, name: &str) -> &[f32] {
        match self.tensors.get(name) {
            Some(values) => values,
            None => panic!("shard weights hold no tensor `{name}`"),
        }
    }

    /// Names of the tensors held.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }
}
