//! Model shards on the GPU against the CPU reference, on small random BERTs (no model files:
//! [`random_model`] writes a safetensors file of any [`BertConfig`]): each shard matches its
//! reference, 1, 2 and 3 shards chained give the embeddings of the unsplit model, padding
//! changes nothing, bad weights and inputs are typed errors, and a second run of the same
//! shape allocates nothing.

use std::collections::BTreeMap;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::{Failure, Lcg, Tolerance, compare_f32_values, unexpected};
use crate::executor::Gpu;
use crate::matmul::{CANDIDATES, Layout, Scheme};
use crate::model::weights::{TensorSpec, embedding_tensors, layer_tensors};
use crate::model::{
    BertConfig, LoadedShard, ModelError, ShardInput, ShardPlan, ShardWeights, plan, reference_shard, run_shard,
    shard_weights,
};

/// Hidden states and embeddings of a shard against its reference.
pub const SHARD_TOLERANCE: Tolerance = Tolerance { abs: 1e-4, rel: 1e-4 };

/// A small BERT: hidden 32 in 4 heads of 8, FFN 64, 3 layers, vocabulary 50.
pub fn small_config() -> BertConfig {
    BertConfig {
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        num_hidden_layers: 3,
        vocab_size: 50,
        max_position_embeddings: 64,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
    }
}

/// A safetensors file of every tensor of `config`'s model under Hugging Face's names, random
/// and deterministic in `seed`: weights scaled like a trained model's (about 1/√fan-in),
/// LayerNorm gains near 1, plus an I64 `embeddings.position_ids` that loaders must ignore.
pub fn random_model(config: &BertConfig, seed: u64) -> Vec<u8> {
    let mut rng = Lcg::new(seed);
    let mut specs: Vec<TensorSpec> = embedding_tensors(config);
    for layer in 0..config.num_hidden_layers {
        specs.extend(layer_tensors(config, layer));
    }
    let mut data: BTreeMap<String, (Vec<usize>, Vec<u8>)> = specs
        .into_iter()
        .map(|spec| {
            let len: usize = spec.shape.iter().product();
            let (scale, offset) = match spec.shape.as_slice() {
                [_, fan_in] if spec.name.starts_with("encoder") => (1.5 / (*fan_in as f32).sqrt(), 0.0),
                [_, _] => (1.0, 0.0),
                _ if spec.name.ends_with("LayerNorm.weight") => (0.2, 1.0),
                _ => (0.1, 0.0),
            };
            let bytes = (0..len).flat_map(|_| (rng.uniform(scale) + offset).to_le_bytes()).collect();
            (spec.name, (spec.shape, bytes))
        })
        .collect();
    let positions = config.max_position_embeddings as usize;
    let ids: Vec<u8> = (0..positions as i64).flat_map(i64::to_le_bytes).collect();
    data.insert("embeddings.position_ids".into(), (vec![1, positions], ids));
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(name, (shape, bytes))| {
            let dtype = if name.ends_with("position_ids") { Dtype::I64 } else { Dtype::F32 };
            let view = TensorView::new(dtype, shape.clone(), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap_or_else(|e| panic!("serializing a random model: {e}"))
}

fn model(case: &str) -> impl FnOnce(ModelError) -> Failure + '_ {
    move |error| unexpected(case, format!("model error: {error}"))
}

/// A batch of `lengths.len()` sequences padded to `seq`: random ids (CLS-like 1 first) for the
/// real tokens, 0 after, and the mask.
fn batch_of(rng: &mut Lcg, config: &BertConfig, seq: usize, lengths: &[usize]) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for &len in lengths {
        for s in 0..seq {
            let real = s < len;
            ids.push(match (real, s) {
                (false, _) => 0,
                (true, 0) => 1,
                (true, _) => 2 + rng.next_u32() % (config.vocab_size - 2),
            });
            mask.push(u32::from(real));
        }
    }
    (ids, mask)
}

/// The model's shards for `plans`, each loaded from its own cut-out file.
async fn load_shards(
    gpu: &Gpu,
    config: &BertConfig,
    plans: &[ShardPlan],
    model_file: &[u8],
    case: &str,
) -> Result<Vec<(LoadedShard, ShardWeights)>, Failure> {
    let mut shards = Vec::new();
    for p in plans {
        let file = shard_weights(model_file, config, p).map_err(model(case))?;
        let loaded = LoadedShard::load(gpu, config, p, &file).await.map_err(model(case))?;
        let weights = ShardWeights::parse(config, p, &file).map_err(model(case))?;
        shards.push((loaded, weights));
    }
    Ok(shards)
}

/// `batch` token sequences padded to `seq`, and their mask.
struct Batch<'a> {
    batch: u32,
    seq: u32,
    ids: &'a [u32],
    mask: &'a [u32],
}

/// Runs `shards` in a chain on the GPU, checking each shard against its reference on the same
/// input; returns the last output.
async fn run_chain(
    gpu: &Gpu,
    config: &BertConfig,
    shards: &[(LoadedShard, ShardWeights)],
    input: Batch<'_>,
    case: &str,
) -> Result<Vec<f32>, Failure> {
    let Batch { batch, seq, ids, mask } = input;
    let mut hidden: Vec<f32> = Vec::new();
    for (loaded, weights) in shards {
        let p = loaded.plan();
        let input = if p.embeddings { ShardInput::Tokens(ids) } else { ShardInput::Hidden(&hidden) };
        let got = run_shard(gpu, loaded, batch, seq, mask, input).await.map_err(model(case))?;
        let want = reference_shard(config, p, weights, batch, seq, mask, input).map_err(model(case))?;
        let shard_case = format!("{case}, shard {} of {} (layers {:?})", p.index, p.count, p.layers);
        if got.iter().any(|v| !v.is_finite()) {
            return Err(unexpected(&shard_case, "non-finite values in the output"));
        }
        compare_f32_values(&shard_case, &got, &want, SHARD_TOLERANCE)?;
        hidden = got;
    }
    Ok(hidden)
}

/// Split into 1, 2 and 3 shards and chained, the GPU gives the unsplit reference's sentence
/// embeddings; every shard matches its own reference on the way.
pub async fn sharded_model_matches_the_unsplit_reference(gpu: &Gpu) -> Result<(), Failure> {
    let config = small_config();
    let model_file = random_model(&config, 21);
    let mut rng = Lcg::new(22);
    let (batch, seq) = (3u32, 11u32);
    let (ids, mask) = batch_of(&mut rng, &config, seq as usize, &[11, 4, 2]);
    let whole = plan(&config, 1).map_err(model("plan"))?;
    let all_weights = ShardWeights::parse(&config, &whole[0], &model_file).map_err(model("weights"))?;
    let want = reference_shard(&config, &whole[0], &all_weights, batch, seq, &mask, ShardInput::Tokens(&ids))
        .map_err(model("reference"))?;
    for shards in 1..=3 {
        let case = format!("{shards} shards");
        let plans = plan(&config, shards).map_err(model(&case))?;
        let loaded = load_shards(gpu, &config, &plans, &model_file, &case).await?;
        let got = run_chain(gpu, &config, &loaded, Batch { batch, seq, ids: &ids, mask: &mask }, &case).await?;
        compare_f32_values(&case, &got, &want, SHARD_TOLERANCE)?;
        for row in got.chunks(config.hidden_size as usize) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if (norm - 1.0).abs() > 1e-5 {
                return Err(unexpected(&case, format!("an embedding has norm {norm}")));
            }
        }
    }
    Ok(())
}

/// A sequence's embedding does not depend on the padding around it: each sequence of a padded
/// batch (lengths 1 to seq, seq 1 included) embeds as it does alone and unpadded. Also runs a
/// longer batch (seq 40) through GPU and reference.
pub async fn padding_does_not_change_embeddings(gpu: &Gpu) -> Result<(), Failure> {
    let config = small_config();
    let model_file = random_model(&config, 23);
    let mut rng = Lcg::new(24);
    let plans = plan(&config, 2).map_err(model("plan"))?;
    let shards = load_shards(gpu, &config, &plans, &model_file, "load").await?;
    let hidden = config.hidden_size as usize;

    let lengths = [5usize, 1, 3, 2];
    let seq = 5u32;
    let (ids, mask) = batch_of(&mut rng, &config, seq as usize, &lengths);
    let case = "padded batch";
    let padded = Batch { batch: lengths.len() as u32, seq, ids: &ids, mask: &mask };
    let batched = run_chain(gpu, &config, &shards, padded, case).await?;
    for (b, &len) in lengths.iter().enumerate() {
        let case = format!("sequence {b} of length {len} alone");
        let alone_ids = &ids[b * seq as usize..b * seq as usize + len];
        let ones = vec![1; len];
        let single = Batch { batch: 1, seq: len as u32, ids: alone_ids, mask: &ones };
        let alone = run_chain(gpu, &config, &shards, single, &case).await?;
        compare_f32_values(&case, &batched[b * hidden..(b + 1) * hidden], &alone, SHARD_TOLERANCE)?;
    }

    let (ids, mask) = batch_of(&mut rng, &config, 40, &[40, 17, 2]);
    run_chain(gpu, &config, &shards, Batch { batch: 3, seq: 40, ids: &ids, mask: &mask }, "seq 40").await?;
    Ok(())
}

/// Weights without a tensor the shard needs, or with one misshapen, are refused by name before
/// anything is uploaded.
pub async fn loading_refuses_missing_or_misshapen_tensors(gpu: &Gpu) -> Result<(), Failure> {
    let config = small_config();
    let model_file = random_model(&config, 25);
    let plans = plan(&config, 3).map_err(model("plan"))?;
    let second = shard_weights(&model_file, &config, &plans[1]).map_err(model("shard_weights"))?;

    let case = "the second shard's file loaded as the third";
    match LoadedShard::load(gpu, &config, &plans[2], &second).await {
        Err(ModelError::MissingTensor { name }) if name == "encoder.layer.2.attention.self.query.weight" => {}
        other => return Err(unexpected(case, format!("want MissingTensor, got {other:?}"))),
    }
    let case = "a config with a wider FFN";
    let wider = BertConfig { intermediate_size: config.intermediate_size * 2, ..config.clone() };
    match LoadedShard::load(gpu, &wider, &plans[1], &second).await {
        Err(ModelError::TensorShape { name, .. }) if name == "encoder.layer.1.intermediate.dense.weight" => {}
        other => return Err(unexpected(case, format!("want TensorShape, got {other:?}"))),
    }
    let case = "not a safetensors file";
    match LoadedShard::load(gpu, &config, &plans[1], b"{}").await {
        Err(ModelError::Safetensors(_)) => Ok(()),
        other => Err(unexpected(case, format!("want Safetensors, got {other:?}"))),
    }
}

/// Inputs that do not fit the shard are `ModelError::Input`; the shard still runs afterwards,
/// and its second run of a shape allocates no buffer.
pub async fn shard_inputs_are_checked_and_buffers_reused(gpu: &Gpu) -> Result<(), Failure> {
    let config = small_config();
    let model_file = random_model(&config, 26);
    let plans = plan(&config, 2).map_err(model("plan"))?;
    let shards = load_shards(gpu, &config, &plans, &model_file, "load").await?;
    let (first, last) = (&shards[0].0, &shards[1].0);
    let hidden = vec![0.5f32; 2 * 3 * 32];
    type BadInput<'a> = (&'a str, &'a LoadedShard, u32, u32, Vec<u32>, ShardInput<'a>);
    let bad: Vec<BadInput> = vec![
        ("hidden states into the first shard", first, 2, 3, vec![1; 6], ShardInput::Hidden(&hidden)),
        ("token ids into a later shard", last, 2, 3, vec![1; 6], ShardInput::Tokens(&[1; 6])),
        ("a token past the vocabulary", first, 2, 3, vec![1; 6], ShardInput::Tokens(&[1, 2, 50, 3, 4, 5])),
        ("a short mask", first, 2, 3, vec![1; 5], ShardInput::Tokens(&[1; 6])),
        ("too few ids", first, 2, 3, vec![1; 6], ShardInput::Tokens(&[1; 5])),
        ("too few hidden values", last, 2, 3, vec![1; 6], ShardInput::Hidden(&hidden[1..])),
        ("an empty batch", first, 0, 3, vec![], ShardInput::Tokens(&[])),
        ("longer than the positions", first, 1, 65, vec![1; 65], ShardInput::Tokens(&[1; 65])),
    ];
    for (case, shard, batch, seq, mask, input) in bad {
        match run_shard(gpu, shard, batch, seq, &mask, input).await {
            Err(ModelError::Input(_)) => {}
            other => return Err(unexpected(case, format!("want ModelError::Input, got {other:?}"))),
        }
    }

    let case = "the same shape twice";
    let ids = [1, 5, 9, 1, 7, 0];
    let mask = [1, 1, 1, 1, 1, 0];
    let once = run_shard(gpu, first, 2, 3, &mask, ShardInput::Tokens(&ids)).await.map_err(model(case))?;
    let created = gpu.stats().buffers.created;
    let twice = run_shard(gpu, first, 2, 3, &mask, ShardInput::Tokens(&ids)).await.map_err(model(case))?;
    if gpu.stats().buffers.created != created {
        return Err(unexpected(case, "the second run of a shape allocated buffers"));
    }
    if once != twice {
        return Err(unexpected(case, "two runs of the same input differ"));
    }
    let want_len = first.output_len(2, 3);
    if once.len() != want_len {
        return Err(Failure::Length { case: case.to_owned(), want: want_len, got: once.len() });
    }
    Ok(())
}

/// Workers that tuned differently agree: the whole model gives the same bits of every
/// embedding whichever matmul scheme its linear layers run. The config mixes shapes where K
/// and N are multiples of 4 (vec4 variants: the QKV and attention-output projections) with
/// ones where they are not (scalar variants: FFN width 70).
pub async fn every_matmul_scheme_gives_the_same_embedding_bits(gpu: &Gpu) -> Result<(), Failure> {
    let config = BertConfig { hidden_size: 36, intermediate_size: 70, ..small_config() };
    let model_file = random_model(&config, 27);
    let mut rng = Lcg::new(28);
    let (batch, seq) = (3u32, 9u32);
    let (ids, mask) = batch_of(&mut rng, &config, seq as usize, &[9, 5, 1]);
    let whole = plan(&config, 1).map_err(model("plan"))?;
    let mut first: Option<(Scheme, Vec<f32>)> = None;
    for scheme in CANDIDATES.into_iter().filter(|s| s.fits(&gpu.limits())) {
        let case = format!("linear layers on {}", scheme.name());
        gpu.use_matmul_scheme(Layout::Linear, scheme);
        let shards = load_shards(gpu, &config, &whole, &model_file, &case).await?;
        let got = run_chain(gpu, &config, &shards, Batch { batch, seq, ids: &ids, mask: &mask }, &case).await?;
        match &first {
            None => first = Some((scheme, got)),
            Some((reference, want)) => {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                if let Some(index) = bits(&got).iter().zip(bits(want)).position(|(g, w)| *g != w) {
                    return Err(Failure::Mismatch {
                        case: format!("{case}: not bitwise equal to {}", reference.name()),
                        index,
                        got: format!("{:e}", got[index]),
                        want: format!("{:e}", want[index]),
                    });
                }
            }
        }
    }
    Ok(())
}
