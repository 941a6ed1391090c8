//! Splitting a BERT encoder into pipeline shards: [`plan`] (layer ranges, embeddings in the
//! first shard, pooling in the last), [`shard_flops`] (what a shard costs, for credits:
//! DESIGN.md §3) and [`shard_weights`] (the safetensors file holding exactly one shard's
//! tensors, which workers fetch and cache as a blob).

use std::ops::Range;

use hyphae_proto::frame::ShardSpec;
use safetensors::tensor::TensorView;

use super::weights::{check_plan, checked_tensors, parse, shard_tensors};
use super::{BertConfig, ModelError};

/// One pipeline shard: encoder layers `layers` (half-open), preceded by the embeddings
/// (token ids in) when `embeddings`, followed by mean pooling and L2 normalization (sentence
/// embeddings out) when `pooling`; otherwise hidden states [batch, seq, hidden] go in and out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    pub index: u32,
    pub count: u32,
    pub layers: Range<u32>,
    pub embeddings: bool,
    pub pooling: bool,
}

/// The wire's description of a shard (what a task names) is the plan it runs.
impl From<&ShardSpec> for ShardPlan {
    fn from(spec: &ShardSpec) -> ShardPlan {
        ShardPlan {
            index: spec.index,
            count: spec.count,
            layers: spec.layers[0]..spec.layers[1],
            embeddings: spec.embeddings,
            pooling: spec.pooling,
        }
    }
}

/// Splits `config`'s layers into `shards` consecutive ranges, as even as possible (sizes
/// differ by at most one; the earlier shards take the extra layers), the embeddings in the
/// first shard and pooling + normalization in the last. 1 ≤ shards ≤ layers.
pub fn plan(config: &BertConfig, shards: u32) -> Result<Vec<ShardPlan>, ModelError> {
    config.validate()?;
    let layers = config.num_hidden_layers;
    if shards == 0 || shards > layers {
        return Err(ModelError::Shards { layers, shards });
    }
    let (base, extra) = (layers / shards, layers % shards);
    let mut start = 0;
    Ok((0..shards)
        .map(|index| {
            let len = base + u32::from(index < extra);
            let plan = ShardPlan {
                index,
                count: shards,
                layers: start..start + len,
                embeddings: index == 0,
                pooling: index == shards - 1,
            };
            start += len;
            plan
        })
        .collect())
}

/// FLOPs of running `plan`'s shard on `batch` sequences of `seq` tokens (padding included:
/// the kernels run on the padded shape), counting a multiply-add as 2. Counted, per layer with
/// T = batch·seq tokens, hidden H, intermediate I: the Q, K, V and output projections
/// (4 · 2·T·H·H), the two feed-forward matmuls (2 · 2·T·H·I), the attention scores and the
/// weighted sums of values (2 · 2·batch·seq²·H over all heads). Not counted: bias adds,
/// softmax, LayerNorm, GELU, residual adds, the embeddings gather and the pooling, each linear
/// in T·H or T·I (for MiniLM at seq 128 together under 1% of the total).
pub fn shard_flops(config: &BertConfig, plan: &ShardPlan, batch: u32, seq: u32) -> u64 {
    let (b, s) = (u64::from(batch), u64::from(seq));
    let (h, i) = (u64::from(config.hidden_size), u64::from(config.intermediate_size));
    let t = b * s;
    let projections = 4 * 2 * t * h * h;
    let feed_forward = 2 * 2 * t * h * i;
    let attention = 2 * 2 * b * s * s * h;
    u64::from(plan.layers.end.saturating_sub(plan.layers.start)) * (projections + feed_forward + attention)
}

/// The safetensors file of `plan`'s shard, cut from `model` (the whole `model.safetensors`):
/// exactly the tensors the shard needs, names unchanged, F32, each checked for its shape.
pub fn shard_weights(model: &[u8], config: &BertConfig, plan: &ShardPlan) -> Result<Vec<u8>, ModelError> {
    check_plan(config, plan)?;
    let file = parse(model)?;
    let specs = shard_tensors(config, plan);
    let views = checked_tensors(&file, &specs)?;
    let tensors: Vec<(String, TensorView<'_>)> = specs.into_iter().map(|spec| spec.name).zip(views).collect();
    safetensors::serialize(tensors, None).map_err(|e| ModelError::Safetensors(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::{ShardWeights, TensorSpec, embedding_tensors, layer_tensors};
    use crate::testsuite::model::{random_model, small_config};

    fn minilm() -> BertConfig {
        BertConfig::from_json(crate::model::config::tests::MINILM).expect("MiniLM's config")
    }

    #[test]
    fn plans_spread_layers_evenly_with_embeddings_first_and_pooling_last() {
        let config = minilm();
        for shards in 1..=6 {
            let plans = plan(&config, shards).unwrap();
            assert_eq!(plans.len(), shards as usize);
            assert_eq!(plans[0].layers.start, 0);
            assert_eq!(plans.last().unwrap().layers.end, 6);
            let sizes: Vec<u32> = plans.iter().map(|p| p.layers.len() as u32).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            for (i, p) in plans.iter().enumerate() {
                assert_eq!((p.index, p.count), (i as u32, shards));
                assert_eq!(p.embeddings, i == 0);
                assert_eq!(p.pooling, i + 1 == shards as usize);
                if i > 0 {
                    assert_eq!(p.layers.start, plans[i - 1].layers.end);
                }
            }
        }
        let four: Vec<_> = plan(&config, 4).unwrap().into_iter().map(|p| p.layers).collect();
        assert_eq!(four, vec![0..2, 2..4, 4..5, 5..6]);
    }

    #[test]
    fn shard_counts_outside_one_to_layers_are_refused() {
        assert_eq!(plan(&minilm(), 0), Err(ModelError::Shards { layers: 6, shards: 0 }));
        assert_eq!(plan(&minilm(), 7), Err(ModelError::Shards { layers: 6, shards: 7 }));
    }

    #[test]
    fn flops_count_matmuls_and_attention() {
        let config = minilm();
        let whole = &plan(&config, 1).unwrap()[0];
        // One layer at batch 1, seq 128: 4·2·128·384² + 2·2·128·384·1536 + 2·2·128²·384.
        let layer = 4 * 2 * 128 * 384 * 384 + 2 * 2 * 128 * 384 * 1536 + 2 * 2 * 128 * 128 * 384;
        assert_eq!(shard_flops(&config, whole, 1, 128), 6 * layer);
        let halves = plan(&config, 2).unwrap();
        let split: u64 = halves.iter().map(|p| shard_flops(&config, p, 8, 64)).sum();
        assert_eq!(split, shard_flops(&config, whole, 8, 64));
        assert_eq!(shard_flops(&config, whole, 2, 64), 2 * shard_flops(&config, whole, 1, 64));
    }

    fn names(specs: &[TensorSpec]) -> Vec<String> {
        let mut names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        names.sort();
        names
    }

    #[test]
    fn shard_weights_hold_exactly_their_tensors_unchanged() {
        let config = small_config();
        let model = random_model(&config, 7);
        let full = parse(&model).unwrap();
        for shards in 1..=config.num_hidden_layers {
            let mut seen = Vec::new();
            for p in plan(&config, shards).unwrap() {
                let bytes = shard_weights(&model, &config, &p).unwrap();
                let file = parse(&bytes).unwrap();
                let mut want = if p.embeddings { embedding_tensors(&config) } else { vec![] };
                for layer in p.layers.clone() {
                    want.extend(layer_tensors(&config, layer));
                }
                let mut got: Vec<String> = file.names().into_iter().map(str::to_owned).collect();
                got.sort();
                assert_eq!(got, names(&want), "shard {} of {shards}", p.index);
                for (name, view) in file.tensors() {
                    let original = full.tensor(&name).unwrap();
                    assert_eq!(view.dtype(), safetensors::Dtype::F32);
                    assert_eq!((view.shape(), view.data()), (original.shape(), original.data()), "{name}");
                }
                // The shard's own file loads as that shard.
                ShardWeights::parse(&config, &p, &bytes).unwrap();
                seen.extend(got);
            }
            // Together the shards hold every tensor of the model once.
            seen.sort();
            let whole = plan(&config, 1).unwrap();
            assert_eq!(seen, names(&shard_tensors(&config, &whole[0])), "{shards} shards");
        }
    }

    #[test]
    fn missing_and_misshapen_tensors_are_named() {
        let config = small_config();
        let model = random_model(&config, 8);
        let first = &plan(&config, 2).unwrap()[0];
        let last = &plan(&config, 2).unwrap()[1];
        let second_half = shard_weights(&model, &config, last).unwrap();
        assert_eq!(
            shard_weights(&second_half, &config, first),
            Err(ModelError::MissingTensor { name: "embeddings.word_embeddings.weight".into() })
        );
        let wider = BertConfig { intermediate_size: config.intermediate_size + 1, ..config.clone() };
        match ShardWeights::parse(&wider, last, &second_half) {
            Err(ModelError::TensorShape { name, expected, found }) => {
                assert!(name.ends_with("intermediate.dense.weight"), "{name}");
                assert_eq!(expected, vec![65, 32]);
                assert_eq!(found, vec![64, 32]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(shard_weights(b"not safetensors", &config, first), Err(ModelError::Safetensors(_))));
        let beyond = ShardPlan { layers: 0..config.num_hidden_layers + 1, ..first.clone() };
        assert!(matches!(shard_weights(&model, &config, &beyond), Err(ModelError::Plan(_))));
    }
}
