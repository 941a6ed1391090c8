//! One pipeline shard of a BERT encoder on the GPU: [`LoadedShard`] uploads the shard's
//! weights once, [`run_shard`] runs the shard on a batch as one [`Program`] (every dispatch in
//! one submit, activations never leaving the GPU, one readback), and [`reference_shard`] is
//! the same computation on the CPU from the kernels' references.
//!
//! Per encoder layer, with T = batch·seq tokens and hidden states `h` [T, H]:
//! ```text
//! qkv = h·Wqkvᵀ + bqkv            linear       (Q, K, V weights concatenated at load: one matmul)
//! ctx = attention(qkv, mask)      attention    (fused layout: Q, K, V side by side per token)
//! h1  = LN(ctx·Woᵀ + bo + h)      linear, layernorm with residual
//! g   = GELU(h1·Wiᵀ + bi)         linear, gelu
//! h   = LN(g·Wo2ᵀ + bo2 + h1)     linear, layernorm with residual
//! ```
//! where `linear` is the `matmul_bias` product in the variant tuned for this adapter
//! ([`Gpu::matmul_plan`] with [`Layout::Linear`]).
//! preceded, in the first shard, by `h = LN(embeddings(ids))` and followed, in the last, by
//! `l2_normalize(mean_pool(h, mask))`.
//!
//! Buffers: the activations of one shape (batch, seq) and the program that binds them form a
//! workspace, built on the first run of that shape and kept for the next, so repeated runs of
//! the same shape allocate nothing and only write their inputs. A new shape replaces it; its
//! buffers go back to the pool.

use std::sync::Mutex;

use hyphae_proto::tensor::{f32s, to_bytes};

use super::weights::{
    EMBEDDINGS_LN_BIAS, EMBEDDINGS_LN_WEIGHT, POSITION_EMBEDDINGS, ShardWeights, TOKEN_TYPE_EMBEDDINGS,
    WORD_EMBEDDINGS, check_plan, checked_tensors, layer_tensor_name, parse, shard_tensors,
};
use super::{BertConfig, ModelError, ShardPlan};
use crate::executor::{Gpu, GpuBuffer, Pipeline, Program};
use crate::kernels::{self, QkvLayout};
use crate::matmul::Layout;
use crate::reference;

/// One dispatch of a layer: pipeline, `(binding, buffer)`s, workgroups.
type Step<'a> = (&'a Pipeline, Vec<(u32, &'a GpuBuffer)>, [u32; 3]);

/// What goes into a shard: token ids [batch, seq] for the first shard (the one with the
/// embeddings), hidden states [batch, seq, hidden] for the others.
#[derive(Clone, Copy, Debug)]
pub enum ShardInput<'a> {
    Tokens(&'a [u32]),
    Hidden(&'a [f32]),
}

struct EmbeddingWeights {
    word: GpuBuffer,
    position: GpuBuffer,
    token_type: GpuBuffer,
    ln_weight: GpuBuffer,
    ln_bias: GpuBuffer,
}

struct LayerWeights {
    /// [3H, H]: query, key and value weights stacked, so one matmul projects all three.
    qkv_weight: GpuBuffer,
    qkv_bias: GpuBuffer,
    attention_out_weight: GpuBuffer,
    attention_out_bias: GpuBuffer,
    attention_ln_weight: GpuBuffer,
    attention_ln_bias: GpuBuffer,
    intermediate_weight: GpuBuffer,
    intermediate_bias: GpuBuffer,
    output_weight: GpuBuffer,
    output_bias: GpuBuffer,
    output_ln_weight: GpuBuffer,
    output_ln_bias: GpuBuffer,
}

struct Pipelines {
    layernorm: Pipeline,
    gelu: Pipeline,
    attention: Pipeline,
    embeddings: Pipeline,
    mean_pool: Pipeline,
    l2_normalize: Pipeline,
}

/// A shard's weights on the GPU (uploaded once, by [`LoadedShard::load`]), its pipelines, and
/// the workspace of the last shape it ran.
pub struct LoadedShard {
    config: BertConfig,
    plan: ShardPlan,
    embeddings: Option<EmbeddingWeights>,
    layers: Vec<LayerWeights>,
    pipelines: Pipelines,
    weight_bytes: u64,
    workspace: Mutex<Option<Workspace>>,
}

impl std::fmt::Debug for LoadedShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedShard")
            .field("plan", &self.plan)
            .field("weight_bytes", &self.weight_bytes)
            .finish_non_exhaustive()
    }
}

/// The buffers and recorded program for one (batch, seq).
struct Workspace {
    batch: u32,
    seq: u32,
    program: Program,
    /// Token ids (first shard) or hidden states (others): written by each run.
    input: GpuBuffer,
    mask: GpuBuffer,
    output: GpuBuffer,
}

impl LoadedShard {
    /// Checks `safetensors` (the shard's file, or any file holding at least its tensors) for
    /// every tensor `plan` needs, F32 and of the right shape, then uploads them and builds the
    /// pipelines. Nothing is uploaded unless every tensor checks out.
    pub async fn load(
        gpu: &Gpu,
        config: &BertConfig,
        plan: &ShardPlan,
        safetensors: &[u8],
    ) -> Result<LoadedShard, ModelError> {
        check_plan(config, plan)?;
        let file = parse(safetensors)?;
        let specs = shard_tensors(config, plan);
        let views = checked_tensors(&file, &specs)?;
        let data = |name: &str| -> &[u8] {
            // Every name asked for below is one of `specs`, all checked above.
            let index = specs.iter().position(|s| s.name == name).unwrap_or_else(|| panic!("{name} not in specs"));
            views[index].data()
        };
        let mut weight_bytes = 0u64;
        let mut upload = async |bytes: &[u8]| -> Result<GpuBuffer, ModelError> {
            weight_bytes += bytes.len() as u64;
            Ok(gpu.upload(bytes).await?)
        };

        let embeddings = if plan.embeddings {
            Some(EmbeddingWeights {
                word: upload(data(WORD_EMBEDDINGS)).await?,
                position: upload(data(POSITION_EMBEDDINGS)).await?,
                token_type: upload(data(TOKEN_TYPE_EMBEDDINGS)).await?,
                ln_weight: upload(data(EMBEDDINGS_LN_WEIGHT)).await?,
                ln_bias: upload(data(EMBEDDINGS_LN_BIAS)).await?,
            })
        } else {
            None
        };
        let mut layers = Vec::with_capacity(plan.layers.len());
        for layer in plan.layers.clone() {
            let part = |suffix: &str| data(&layer_tensor_name(layer, suffix));
            let stacked = |kind: &str| -> Vec<u8> {
                ["query", "key", "value"]
                    .iter()
                    .flat_map(|which| part(&format!("attention.self.{which}.{kind}")).iter().copied())
                    .collect()
            };
            layers.push(LayerWeights {
                qkv_weight: upload(&stacked("weight")).await?,
                qkv_bias: upload(&stacked("bias")).await?,
                attention_out_weight: upload(part("attention.output.dense.weight")).await?,
                attention_out_bias: upload(part("attention.output.dense.bias")).await?,
                attention_ln_weight: upload(part("attention.output.LayerNorm.weight")).await?,
                attention_ln_bias: upload(part("attention.output.LayerNorm.bias")).await?,
                intermediate_weight: upload(part("intermediate.dense.weight")).await?,
                intermediate_bias: upload(part("intermediate.dense.bias")).await?,
                output_weight: upload(part("output.dense.weight")).await?,
                output_bias: upload(part("output.dense.bias")).await?,
                output_ln_weight: upload(part("output.LayerNorm.weight")).await?,
                output_ln_bias: upload(part("output.LayerNorm.bias")).await?,
            });
        }
        let pipelines = Pipelines {
            layernorm: gpu.kernel_pipeline(&kernels::LAYERNORM).await?,
            gelu: gpu.kernel_pipeline(&kernels::GELU).await?,
            attention: gpu.kernel_pipeline(&kernels::ATTENTION).await?,
            embeddings: gpu.kernel_pipeline(&kernels::EMBEDDINGS).await?,
            mean_pool: gpu.kernel_pipeline(&kernels::MEAN_POOL).await?,
            l2_normalize: gpu.kernel_pipeline(&kernels::L2_NORMALIZE).await?,
        };
        Ok(LoadedShard {
            config: config.clone(),
            plan: plan.clone(),
            embeddings,
            layers,
            pipelines,
            weight_bytes,
            workspace: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn plan(&self) -> &ShardPlan {
        &self.plan
    }

    /// Bytes of weights uploaded (by `load`, once).
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Elements of the output of a run on `batch`×`seq`.
    pub fn output_len(&self, batch: u32, seq: u32) -> usize {
        let hidden = self.config.hidden_size as usize;
        if self.plan.pooling { batch as usize * hidden } else { batch as usize * seq as usize * hidden }
    }

    /// Records the program for (batch, seq) and allocates its activations.
    async fn workspace(&self, gpu: &Gpu, batch: u32, seq: u32) -> Result<Workspace, ModelError> {
        let c = &self.config;
        let p = &self.pipelines;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let tokens = batch * seq;
        let t = u64::from(tokens);
        let f32s = |n: u64| n * 4;
        let params = async |values: &[u32]| gpu.upload(&to_bytes(values, u32::to_le_bytes)).await;
        let mut program = Program::new();

        let mask = gpu.buffer(f32s(t)).await?;
        let mut hidden = gpu.buffer(f32s(t * u64::from(h))).await?;
        let input = if let Some(e) = &self.embeddings {
            let ids = gpu.buffer(f32s(t)).await?;
            let summed = gpu.buffer(f32s(t * u64::from(h))).await?;
            let embed = params(&kernels::embeddings_params(batch, seq, h, c.vocab_size)).await?;
            program
                .dispatch(
                    gpu,
                    &p.embeddings,
                    &[(0, &embed), (1, &ids), (2, &e.word), (3, &e.position), (4, &e.token_type), (5, &summed)],
                    kernels::linear_workgroups(t * u64::from(h), kernels::EMBEDDINGS.workgroup_size[0]),
                )
                .await?;
            let ln = params(&kernels::layernorm_params(tokens, h, false, c.layer_norm_eps)).await?;
            program
                .dispatch(
                    gpu,
                    &p.layernorm,
                    &[(0, &ln), (1, &summed), (2, &summed), (3, &e.ln_weight), (4, &e.ln_bias), (5, &hidden)],
                    kernels::row_workgroups(t),
                )
                .await?;
            ids
        } else {
            hidden.clone()
        };

        if !self.layers.is_empty() {
            let qkv = gpu.buffer(f32s(t * 3 * u64::from(h))).await?;
            let context = gpu.buffer(f32s(t * u64::from(h))).await?;
            let projected = gpu.buffer(f32s(t * u64::from(h))).await?;
            let attended = gpu.buffer(f32s(t * u64::from(h))).await?;
            let intermediate = gpu.buffer(f32s(t * u64::from(i))).await?;
            let activated = gpu.buffer(f32s(t * u64::from(i))).await?;
            let qkv_params = params(&kernels::matmul_bias_params(tokens, 3 * h, h, true)).await?;
            let square_params = params(&kernels::matmul_bias_params(tokens, h, h, true)).await?;
            let up_params = params(&kernels::matmul_bias_params(tokens, i, h, true)).await?;
            let down_params = params(&kernels::matmul_bias_params(tokens, h, i, true)).await?;
            let attention_params = params(&kernels::attention_params(
                batch,
                seq,
                c.num_attention_heads,
                c.head_dim(),
                QkvLayout::fused(h),
            ))
            .await?;
            let ln_params = params(&kernels::layernorm_params(tokens, h, true, c.layer_norm_eps)).await?;
            // The linear layers run the matmul variant tuned for this adapter (every variant
            // gives the same bits, so workers that tuned differently still agree).
            let qkv_plan = gpu.matmul_plan(Layout::Linear, tokens, 3 * h, h).await?;
            let square_plan = gpu.matmul_plan(Layout::Linear, tokens, h, h).await?;
            let up_plan = gpu.matmul_plan(Layout::Linear, tokens, i, h).await?;
            let down_plan = gpu.matmul_plan(Layout::Linear, tokens, h, i).await?;
            let rows = kernels::row_workgroups(t);
            for l in &self.layers {
                let steps: [Step; 7] = [
                    (
                        &qkv_plan.pipeline,
                        vec![(0, &qkv_params), (1, &hidden), (2, &l.qkv_weight), (3, &l.qkv_bias), (4, &qkv)],
                        qkv_plan.workgroups,
                    ),
                    (
                        &p.attention,
                        vec![(0, &attention_params), (1, &qkv), (2, &qkv), (3, &qkv), (4, &mask), (5, &context)],
                        kernels::attention_workgroups(batch, seq, c.num_attention_heads),
                    ),
                    (
                        &square_plan.pipeline,
                        vec![
                            (0, &square_params),
                            (1, &context),
                            (2, &l.attention_out_weight),
                            (3, &l.attention_out_bias),
                            (4, &projected),
                        ],
                        square_plan.workgroups,
                    ),
                    (
                        &p.layernorm,
                        vec![
                            (0, &ln_params),
                            (1, &projected),
                            (2, &hidden),
                            (3, &l.attention_ln_weight),
                            (4, &l.attention_ln_bias),
                            (5, &attended),
                        ],
                        rows,
                    ),
                    (
                        &up_plan.pipeline,
                        vec![
                            (0, &up_params),
                            (1, &attended),
                            (2, &l.intermediate_weight),
                            (3, &l.intermediate_bias),
                            (4, &intermediate),
                        ],
                        up_plan.workgroups,
                    ),
                    (
                        &p.gelu,
                        vec![(0, &intermediate), (1, &activated)],
                        kernels::linear_workgroups(t * u64::from(i), kernels::GELU.workgroup_size[0]),
                    ),
                    (
                        &down_plan.pipeline,
                        vec![
                            (0, &down_params),
                            (1, &activated),
                            (2, &l.output_weight),
                            (3, &l.output_bias),
                            (4, &projected),
                        ],
                        down_plan.workgroups,
                    ),
                ];
                for (pipeline, buffers, workgroups) in &steps {
                    program.dispatch(gpu, pipeline, buffers, *workgroups).await?;
                }
                // The layer's output overwrites its input, which nothing reads any more.
                program
                    .dispatch(
                        gpu,
                        &p.layernorm,
                        &[
                            (0, &ln_params),
                            (1, &projected),
                            (2, &attended),
                            (3, &l.output_ln_weight),
                            (4, &l.output_ln_bias),
                            (5, &hidden),
                        ],
                        rows,
                    )
                    .await?;
            }
        }

        if self.plan.pooling {
            let pooled = gpu.buffer(f32s(u64::from(batch * h))).await?;
            let normalized = gpu.buffer(f32s(u64::from(batch * h))).await?;
            let pool = params(&[batch, seq, h]).await?;
            program
                .dispatch(
                    gpu,
                    &p.mean_pool,
                    &[(0, &pool), (1, &hidden), (2, &mask), (3, &pooled)],
                    kernels::linear_workgroups(u64::from(batch * h), kernels::MEAN_POOL.workgroup_size[0]),
                )
                .await?;
            let norm = params(&[batch, h]).await?;
            program
                .dispatch(
                    gpu,
                    &p.l2_normalize,
                    &[(0, &norm), (1, &pooled), (2, &normalized)],
                    kernels::row_workgroups(u64::from(batch)),
                )
                .await?;
            hidden = normalized;
        }
        Ok(Workspace { batch, seq, program, input, mask, output: hidden })
    }
}

/// Runs `shard` on `batch` sequences of `seq` tokens: `mask` [batch·seq] (1 = real token,
/// 0 = padding) and `input` (token ids for the first shard, hidden states for the others).
/// Returns hidden states [batch·seq·hidden], or for the last shard the L2-normalized
/// mean-pooled embeddings [batch·hidden]. Inputs that do not fit the shard are
/// [`ModelError::Input`], checked before the GPU is touched.
pub async fn run_shard(
    gpu: &Gpu,
    shard: &LoadedShard,
    batch: u32,
    seq: u32,
    mask: &[u32],
    input: ShardInput<'_>,
) -> Result<Vec<f32>, ModelError> {
    check_input(&shard.config, &shard.plan, batch, seq, mask, input)?;
    // Taken out of the lock (never held across an await); put back after a successful run.
    let cached = take(&shard.workspace).filter(|w| (w.batch, w.seq) == (batch, seq));
    let workspace = match cached {
        Some(workspace) => workspace,
        None => shard.workspace(gpu, batch, seq).await?,
    };
    let input_bytes = match input {
        ShardInput::Tokens(ids) => to_bytes(ids, u32::to_le_bytes),
        ShardInput::Hidden(hidden) => to_bytes(hidden, f32::to_le_bytes),
    };
    let mask_bytes: Vec<u8> = mask.iter().flat_map(|&m| u32::from(m != 0).to_le_bytes()).collect();
    let outputs = gpu
        .execute(
            &workspace.program,
            &[(&workspace.input, &input_bytes), (&workspace.mask, &mask_bytes)],
            &[&workspace.output],
        )
        .await?;
    let output: Vec<f32> = outputs.first().map(|bytes| f32s(bytes).collect()).unwrap_or_default();
    *lock(&shard.workspace) = Some(workspace);
    Ok(output)
}

fn take(slot: &Mutex<Option<Workspace>>) -> Option<Workspace> {
    lock(slot).take()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn check_input(
    config: &BertConfig,
    plan: &ShardPlan,
    batch: u32,
    seq: u32,
    mask: &[u32],
    input: ShardInput<'_>,
) -> Result<(), ModelError> {
    if batch == 0 || seq == 0 {
        return Err(ModelError::Input(format!("batch {batch} × seq {seq} is empty")));
    }
    if seq > config.max_position_embeddings {
        return Err(ModelError::Input(format!(
            "seq {seq} is longer than the model's {} positions",
            config.max_position_embeddings
        )));
    }
    let tokens = batch as usize * seq as usize;
    if mask.len() != tokens {
        return Err(ModelError::Input(format!("mask has {} entries, want {batch}×{seq}", mask.len())));
    }
    match (plan.embeddings, input) {
        (true, ShardInput::Tokens(ids)) => {
            if ids.len() != tokens {
                return Err(ModelError::Input(format!("{} token ids, want {batch}×{seq}", ids.len())));
            }
            if let Some(&id) = ids.iter().find(|&&id| id >= config.vocab_size) {
                return Err(ModelError::Input(format!(
                    "token id {id} is past the vocabulary of {}",
                    config.vocab_size
                )));
            }
        }
        (false, ShardInput::Hidden(hidden)) => {
            let want = tokens * config.hidden_size as usize;
            if hidden.len() != want {
                return Err(ModelError::Input(format!(
                    "{} hidden values, want {batch}×{seq}×{}",
                    hidden.len(),
                    config.hidden_size
                )));
            }
        }
        (true, ShardInput::Hidden(_)) => {
            return Err(ModelError::Input("the first shard takes token ids, not hidden states".into()));
        }
        (false, ShardInput::Tokens(_)) => {
            return Err(ModelError::Input(format!("shard {} takes hidden states, not token ids", plan.index)));
        }
    }
    Ok(())
}

/// The CPU reference of [`run_shard`]: the same computation, kernel by kernel, from
/// [`crate::reference`] (Q, K and V projected separately, as the model file stores them).
/// Inputs that do not fit the shard are an error, as for [`run_shard`]: the relay runs it on
/// activations workers sent. `weights` must hold the shard's tensors ([`ShardWeights::parse`]
/// with the same plan checks that).
pub fn reference_shard(
    config: &BertConfig,
    plan: &ShardPlan,
    weights: &ShardWeights,
    batch: u32,
    seq: u32,
    mask: &[u32],
    input: ShardInput<'_>,
) -> Result<Vec<f32>, ModelError> {
    check_input(config, plan, batch, seq, mask, input)?;
    let (b, s) = (batch as usize, seq as usize);
    let (h, i) = (config.hidden_size as usize, config.intermediate_size as usize);
    let t = b * s;
    let heads = config.num_attention_heads as usize;
    let eps = config.layer_norm_eps;
    let mask: Vec<u32> = mask.iter().map(|&m| u32::from(m != 0)).collect();

    let mut hidden = match input {
        ShardInput::Tokens(ids) => {
            let summed = reference::embeddings::embeddings(
                ids,
                weights.get(WORD_EMBEDDINGS),
                weights.get(POSITION_EMBEDDINGS),
                weights.get(TOKEN_TYPE_EMBEDDINGS),
                s,
                h,
            );
            let (gamma, beta) = (weights.get(EMBEDDINGS_LN_WEIGHT), weights.get(EMBEDDINGS_LN_BIAS));
            reference::layernorm::layernorm(&summed, None, gamma, beta, t, h, eps)
        }
        ShardInput::Hidden(hidden) => hidden.to_vec(),
    };
    for layer in plan.layers.clone() {
        let w = |suffix: &str| weights.get(&layer_tensor_name(layer, suffix));
        let linear = |x: &[f32], name: &str, n: usize, k: usize| {
            reference::matmul_bias::matmul_bias(
                x,
                w(&format!("{name}.weight")),
                Some(w(&format!("{name}.bias"))),
                t,
                n,
                k,
            )
        };
        let q = linear(&hidden, "attention.self.query", h, h);
        let k = linear(&hidden, "attention.self.key", h, h);
        let v = linear(&hidden, "attention.self.value", h, h);
        let shape = reference::attention::Shape { batch: b, seq: s, heads, head_dim: h / heads };
        let context = reference::attention::attention(&q, &k, &v, &mask, shape);
        let projected = linear(&context, "attention.output.dense", h, h);
        let attended = reference::layernorm::layernorm(
            &projected,
            Some(&hidden),
            w("attention.output.LayerNorm.weight"),
            w("attention.output.LayerNorm.bias"),
            t,
            h,
            eps,
        );
        let intermediate = linear(&attended, "intermediate.dense", i, h);
        let activated = reference::gelu::gelu(&intermediate);
        let output = linear(&activated, "output.dense", h, i);
        hidden = reference::layernorm::layernorm(
            &output,
            Some(&attended),
            w("output.LayerNorm.weight"),
            w("output.LayerNorm.bias"),
            t,
            h,
            eps,
        );
    }
    if plan.pooling {
        let pooled = reference::mean_pool::mean_pool(&hidden, &mask, b, s, h);
        hidden = reference::l2_normalize::l2_normalize(&pooled, b, h);
    }
    Ok(hidden)
}

#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    // Native workers drive shards from a GPU thread of their own; a shard must be shareable.
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LoadedShard>();
};

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Compiles only while `run_shard`'s future is `Send`: it holds no lock across an await.
    fn run_shard_is_send<'a>(
        gpu: &'a Gpu,
        shard: &'a LoadedShard,
        mask: &'a [u32],
        input: ShardInput<'a>,
    ) -> impl Future<Output = Result<Vec<f32>, ModelError>> + Send + 'a {
        run_shard(gpu, shard, 1, 1, mask, input)
    }

    #[test]
    fn run_shard_future_is_send_on_native() {
        let _ = run_shard_is_send;
    }
}
