//! The transformer kernels (`matmul_bias`, `layernorm`, `gelu`, `softmax`, `attention`,
//! `embeddings`, `mean_pool`, `l2_normalize`) against their CPU references on random data, with
//! ragged sizes around the tiles and workgroups, size-1 edges, padding masks (including fully
//! padded sequences), seq 1 and 256, and batches larger than one.
//!
//! Each check runs through [`Gpu::run`] (one launch each); the model checks run the same
//! kernels as multi-dispatch programs. Tolerances are per kernel, named below with the reason.

use hyphae_proto::frame::Access;
use hyphae_proto::tensor::{f32s, to_bytes};

use super::{Failure, Lcg, Tolerance, compare_f32_values, exec, single};
use crate::executor::{Contents, Gpu, Launch, LaunchBinding};
use crate::kernels::{self, Kernel, QkvLayout};
use crate::reference;

/// `matmul_bias` on dyadic data is exact in f32 whatever the summation order.
pub const MATMUL_BIAS_TOLERANCE: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };
/// Two reductions of up to 1000 values and a reciprocal square root in f32 against an f64
/// reference, on outputs of order 1.
pub const LAYERNORM_TOLERANCE: Tolerance = Tolerance { abs: 2e-5, rel: 2e-5 };
/// The erf approximation (≤ 1.4e-7 in f32) times |x|/2, plus rounding.
pub const GELU_TOLERANCE: Tolerance = Tolerance { abs: 2e-6, rel: 2e-6 };
/// exp and a sum of up to 300 terms in f32; outputs in [0, 1].
pub const SOFTMAX_TOLERANCE: Tolerance = Tolerance { abs: 1e-6, rel: 1e-5 };
/// Dot products of up to 32 terms, online softmax over up to 256 keys and weighted sums, in f32.
pub const ATTENTION_TOLERANCE: Tolerance = Tolerance { abs: 1e-5, rel: 1e-4 };
/// The same additions in the same order: exact.
pub const EMBEDDINGS_TOLERANCE: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };
/// Sums of up to 256 values and one division, in f32.
pub const MEAN_POOL_TOLERANCE: Tolerance = Tolerance { abs: 1e-6, rel: 1e-5 };
pub const L2_NORMALIZE_TOLERANCE: Tolerance = Tolerance { abs: 1e-6, rel: 1e-5 };

/// Runs a built-in kernel whose last binding is its only output: `inputs` are the other
/// bindings' bytes in binding order; returns the output's values.
async fn run_kernel(
    gpu: &Gpu,
    case: &str,
    kernel: &Kernel,
    workgroups: [u32; 3],
    inputs: &[&[u8]],
    output_elements: usize,
) -> Result<Vec<u8>, Failure> {
    let mut bindings: Vec<LaunchBinding> = inputs
        .iter()
        .enumerate()
        .map(|(i, bytes)| LaunchBinding { binding: i as u32, access: Access::Read, contents: Contents::Bytes(bytes) })
        .collect();
    bindings.push(LaunchBinding {
        binding: inputs.len() as u32,
        access: Access::ReadWrite,
        contents: Contents::Zeros(output_elements as u64 * 4),
    });
    let launch = Launch { shader: kernel.source, entry_point: kernel.entry_point, workgroups, bindings };
    let outputs = gpu.run(&launch).await.map_err(exec(case))?;
    single(case, outputs)
}

fn floats(values: &[f32]) -> Vec<u8> {
    to_bytes(values, f32::to_le_bytes)
}

fn words(values: &[u32]) -> Vec<u8> {
    to_bytes(values, u32::to_le_bytes)
}

fn values(bytes: &[u8]) -> Vec<f32> {
    f32s(bytes).collect()
}

fn random(rng: &mut Lcg, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(scale)).collect()
}

/// A padding mask for `batch` sequences of `seq` slots with these real lengths (cycled).
fn padding_mask(batch: usize, seq: usize, lengths: &[usize]) -> Vec<u32> {
    (0..batch).flat_map(|b| (0..seq).map(move |s| u32::from(s < lengths[b % lengths.len()]))).collect()
}

/// M×N×K: size-1 edges, K not a multiple of the 16-wide K tile, M and N around the 64×64
/// tile, a batch of 7 sequences of 9 tokens flattened to 63 rows, and MiniLM's FFN shape.
pub const MATMUL_BIAS_SHAPES: &[(u32, u32, u32)] =
    &[(1, 1, 1), (3, 5, 7), (64, 64, 16), (65, 130, 33), (100, 3, 257), (7 * 9, 96, 32), (128, 1536, 384)];

pub async fn matmul_bias_matches_reference_on_ragged_shapes(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(11);
    for (index, &(m, n, k)) in MATMUL_BIAS_SHAPES.iter().enumerate() {
        let has_bias = index % 3 != 1;
        let case = format!("matmul_bias {m}×{n}×{k} bias {has_bias}");
        let (mu, nu, ku) = (m as usize, n as usize, k as usize);
        let x: Vec<f32> = (0..mu * ku).map(|_| rng.dyadic()).collect();
        let w: Vec<f32> = (0..nu * ku).map(|_| rng.dyadic()).collect();
        let bias: Vec<f32> = (0..nu).map(|_| rng.dyadic()).collect();
        let want = reference::matmul_bias::matmul_bias(&x, &w, has_bias.then_some(bias.as_slice()), mu, nu, ku);
        let params = words(&kernels::matmul_bias_params(m, n, k, has_bias));
        let (x, w) = (floats(&x), floats(&w));
        // Without a bias, the weights stand in for the unread bias binding.
        let bias = if has_bias { floats(&bias) } else { w.clone() };
        let got = run_kernel(
            gpu,
            &case,
            &kernels::MATMUL_BIAS,
            kernels::matmul_bias_workgroups(m, n),
            &[&params, &x, &w, &bias],
            mu * nu,
        )
        .await?;
        compare_f32_values(&case, &values(&got), &want, MATMUL_BIAS_TOLERANCE)?;
    }
    Ok(())
}

pub async fn layernorm_matches_reference(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(12);
    let shapes: &[(u32, u32, bool, f32)] = &[
        (1, 1, false, 1e-12),
        (1, 1, true, 1e-5),
        (3, 32, true, 1e-12),
        (5, 384, false, 1e-12),
        (70, 100, true, 1e-5),
        (2, 1000, true, 1e-12),
        (4, 64, false, 1e-12),
    ];
    for &(rows, cols, has_residual, eps) in shapes {
        let case = format!("layernorm {rows}×{cols} residual {has_residual} eps {eps}");
        let (r, c) = (rows as usize, cols as usize);
        // An offset keeps the mean away from zero, as real activations have.
        let x: Vec<f32> = random(&mut rng, r * c, 3.0).into_iter().map(|v| v + 0.5).collect();
        let residual = random(&mut rng, r * c, 1.0);
        let gamma: Vec<f32> = random(&mut rng, c, 0.5).into_iter().map(|v| v + 1.0).collect();
        let beta = random(&mut rng, c, 0.5);
        let want =
            reference::layernorm::layernorm(&x, has_residual.then_some(residual.as_slice()), &gamma, &beta, r, c, eps);
        let params = words(&kernels::layernorm_params(rows, cols, has_residual, eps));
        let got = run_kernel(
            gpu,
            &case,
            &kernels::LAYERNORM,
            kernels::row_workgroups(u64::from(rows)),
            &[&params, &floats(&x), &floats(&residual), &floats(&gamma), &floats(&beta)],
            r * c,
        )
        .await?;
        compare_f32_values(&case, &values(&got), &want, LAYERNORM_TOLERANCE)?;
    }
    Ok(())
}

pub async fn gelu_matches_reference(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(13);
    // Both sides of the series/erfc switch at |x/√2| = 0.5, zero, and the far tails.
    let switch = 0.5 * std::f32::consts::SQRT_2;
    let mut edges = vec![0.0f32, 1e-7, -1e-7, switch - 1e-4, switch + 1e-4, -switch + 1e-4, -switch - 1e-4];
    edges.extend([1.0, -1.0, 6.0, -6.0, 12.0, -12.0]);
    edges.extend(random(&mut rng, 987, 8.0));
    for len in [1usize, 63, 65, 1000] {
        let case = format!("gelu len {len}");
        let x = &edges[..len];
        let want = reference::gelu::gelu(x);
        let got = run_kernel(
            gpu,
            &case,
            &kernels::GELU,
            kernels::linear_workgroups(len as u64, kernels::GELU.workgroup_size[0]),
            &[&floats(x)],
            len,
        )
        .await?;
        compare_f32_values(&case, &values(&got), &want, GELU_TOLERANCE)?;
    }
    Ok(())
}

pub async fn softmax_matches_reference_with_masks(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(14);
    // rows, cols, rows per mask row, real lengths of the mask rows (0: fully masked).
    let cases: &[(u32, u32, u32, &[usize])] =
        &[(1, 1, 1, &[]), (3, 7, 1, &[]), (8, 65, 4, &[65, 3]), (12, 256, 6, &[1, 0]), (5, 300, 5, &[299])];
    for &(rows, cols, per_mask_row, lengths) in cases {
        let has_mask = !lengths.is_empty();
        let case = format!("softmax {rows}×{cols} mask {lengths:?}");
        let (r, c) = (rows as usize, cols as usize);
        let x = random(&mut rng, r * c, 20.0);
        let mask = if has_mask { padding_mask(r / per_mask_row as usize, c, lengths) } else { vec![1] };
        let want = reference::softmax::softmax(&x, r, c, has_mask.then_some((mask.as_slice(), per_mask_row as usize)));
        let params = words(&kernels::softmax_params(rows, cols, per_mask_row, has_mask));
        let got = run_kernel(
            gpu,
            &case,
            &kernels::SOFTMAX,
            kernels::row_workgroups(u64::from(rows)),
            &[&params, &floats(&x), &words(&mask)],
            r * c,
        )
        .await?;
        let got = values(&got);
        if got.iter().any(|v| v.is_nan()) {
            return Err(super::unexpected(&case, "NaN in the output"));
        }
        compare_f32_values(&case, &got, &want, SOFTMAX_TOLERANCE)?;
    }
    Ok(())
}

/// One `attention` check.
#[derive(Clone, Copy, Debug)]
pub struct AttentionCase {
    pub batch: u32,
    pub seq: u32,
    pub heads: u32,
    pub head_dim: u32,
    /// Real lengths per sequence, cycled; 0 is a fully padded sequence.
    pub lengths: &'static [usize],
    /// Q, K and V side by side in one buffer, as a fused projection writes them.
    pub fused: bool,
}

const fn attention_case(
    (batch, seq, heads, head_dim): (u32, u32, u32, u32),
    lengths: &'static [usize],
    fused: bool,
) -> AttentionCase {
    AttentionCase { batch, seq, heads, head_dim, lengths, fused }
}

/// Size-1 edges, seq around the 64-query workgroup, seq 256 and 512 (BERT's longest), fully
/// padded sequences, MiniLM's 12 heads of 32 and the largest head the kernel takes.
pub const ATTENTION_CASES: &[AttentionCase] = &[
    attention_case((1, 1, 1, 1), &[1], false),
    attention_case((2, 7, 4, 8), &[7, 2], false),
    attention_case((3, 65, 2, 16), &[65, 2, 0], true),
    attention_case((1, 256, 4, 8), &[256], true),
    attention_case((2, 256, 2, 32), &[200, 2], false),
    attention_case((1, 512, 2, 8), &[509], true),
    attention_case((4, 9, 12, 32), &[9, 1, 5, 2], true),
    attention_case((1, 3, 1, 64), &[3], false),
];

pub async fn attention_matches_reference_with_padding(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(15);
    for &AttentionCase { batch, seq, heads, head_dim, lengths, fused } in ATTENTION_CASES {
        let case =
            format!("attention batch {batch} seq {seq} heads {heads}×{head_dim} lengths {lengths:?} fused {fused}");
        let (b, s, h, d) = (batch as usize, seq as usize, heads as usize, head_dim as usize);
        let width = h * d;
        let q = random(&mut rng, b * s * width, 2.0);
        let k = random(&mut rng, b * s * width, 2.0);
        let v = random(&mut rng, b * s * width, 2.0);
        let mask = padding_mask(b, s, lengths);
        let shape = reference::attention::Shape { batch: b, seq: s, heads: h, head_dim: d };
        let want = reference::attention::attention(&q, &k, &v, &mask, shape);

        let got = if fused {
            let qkv: Vec<f32> = (0..b * s)
                .flat_map(|t| {
                    let row = t * width..(t + 1) * width;
                    q[row.clone()].iter().chain(&k[row.clone()]).chain(&v[row]).copied().collect::<Vec<_>>()
                })
                .collect();
            let params = words(&kernels::attention_params(batch, seq, heads, head_dim, QkvLayout::fused(width as u32)));
            let qkv = floats(&qkv);
            run_kernel(
                gpu,
                &case,
                &kernels::ATTENTION,
                kernels::attention_workgroups(batch, seq, heads),
                &[&params, &qkv, &qkv, &qkv, &words(&mask)],
                b * s * width,
            )
            .await?
        } else {
            let params =
                words(&kernels::attention_params(batch, seq, heads, head_dim, QkvLayout::separate(width as u32)));
            run_kernel(
                gpu,
                &case,
                &kernels::ATTENTION,
                kernels::attention_workgroups(batch, seq, heads),
                &[&params, &floats(&q), &floats(&k), &floats(&v), &words(&mask)],
                b * s * width,
            )
            .await?
        };
        let got = values(&got);
        if got.iter().any(|v| v.is_nan()) {
            return Err(super::unexpected(&case, "NaN in the output"));
        }
        compare_f32_values(&case, &got, &want, ATTENTION_TOLERANCE)?;
    }
    Ok(())
}

pub async fn embeddings_match_reference(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(16);
    // batch, seq, hidden, vocab
    for &(batch, seq, hidden, vocab) in &[(1u32, 1u32, 1u32, 1u32), (3, 7, 32, 50), (2, 256, 24, 100), (1, 5, 384, 7)] {
        let case = format!("embeddings batch {batch} seq {seq} hidden {hidden} vocab {vocab}");
        let (b, s, h, v) = (batch as usize, seq as usize, hidden as usize, vocab as usize);
        let ids: Vec<u32> = (0..b * s).map(|_| rng.next_u32() % vocab).collect();
        let word = random(&mut rng, v * h, 1.0);
        let position = random(&mut rng, (s + 3) * h, 1.0);
        let token_type = random(&mut rng, 2 * h, 1.0);
        let want = reference::embeddings::embeddings(&ids, &word, &position, &token_type, s, h);
        let params = words(&kernels::embeddings_params(batch, seq, hidden, vocab));
        let got = run_kernel(
            gpu,
            &case,
            &kernels::EMBEDDINGS,
            kernels::linear_workgroups((b * s * h) as u64, kernels::EMBEDDINGS.workgroup_size[0]),
            &[&params, &words(&ids), &floats(&word), &floats(&position), &floats(&token_type)],
            b * s * h,
        )
        .await?;
        compare_f32_values(&case, &values(&got), &want, EMBEDDINGS_TOLERANCE)?;
    }
    Ok(())
}

pub async fn mean_pool_matches_reference_with_padding(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(17);
    // batch, seq, hidden, real lengths (0: no real token, pools to zeros)
    let cases: &[(u32, u32, u32, &[usize])] =
        &[(1, 1, 1, &[1]), (3, 7, 32, &[7, 2, 0]), (2, 256, 65, &[256, 1]), (5, 3, 384, &[1, 2, 3])];
    for &(batch, seq, hidden, lengths) in cases {
        let case = format!("mean_pool batch {batch} seq {seq} hidden {hidden} lengths {lengths:?}");
        let (b, s, h) = (batch as usize, seq as usize, hidden as usize);
        let x = random(&mut rng, b * s * h, 4.0);
        let mask = padding_mask(b, s, lengths);
        let want = reference::mean_pool::mean_pool(&x, &mask, b, s, h);
        let got = run_kernel(
            gpu,
            &case,
            &kernels::MEAN_POOL,
            kernels::linear_workgroups((b * h) as u64, kernels::MEAN_POOL.workgroup_size[0]),
            &[&words(&[batch, seq, hidden]), &floats(&x), &words(&mask)],
            b * h,
        )
        .await?;
        compare_f32_values(&case, &values(&got), &want, MEAN_POOL_TOLERANCE)?;
    }
    Ok(())
}

pub async fn l2_normalize_matches_reference_and_keeps_zero_rows(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(18);
    for &(rows, cols) in &[(1u32, 1u32), (3, 384), (70, 33), (2, 1000)] {
        let case = format!("l2_normalize {rows}×{cols}");
        let (r, c) = (rows as usize, cols as usize);
        let mut x = random(&mut rng, r * c, 2.0);
        // The last row is zero and must stay zero (not NaN).
        x[(r - 1) * c..].fill(0.0);
        let want = reference::l2_normalize::l2_normalize(&x, r, c);
        let got = run_kernel(
            gpu,
            &case,
            &kernels::L2_NORMALIZE,
            kernels::row_workgroups(u64::from(rows)),
            &[&words(&[rows, cols]), &floats(&x)],
            r * c,
        )
        .await?;
        compare_f32_values(&case, &values(&got), &want, L2_NORMALIZE_TOLERANCE)?;
    }
    Ok(())
}
