//! The built-in kernels: name → WGSL source (from `wgsl/*.wgsl`, one kernel per file), what
//! each binding holds, and how many workgroups a problem needs. The CPU reference of each lives
//! in [`crate::reference`] under the same name.
//!
//! Workgroup sizes are named constants at the top of each `.wgsl` file and mirrored here
//! ([`Kernel::workgroup_size`]); a test checks the two agree through naga's reflection. All are
//! at most 256 invocations, the WebGPU minimum every device accepts (SwiftShader's limit).

use hyphae_proto::Dtype;
use hyphae_proto::frame::Access;

/// A built-in kernel.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub entry_point: &'static str,
    pub description: &'static str,
    /// In binding order, all in `@group(0)`.
    pub bindings: &'static [KernelBinding],
    pub workgroup_size: [u32; 3],
}

#[derive(Clone, Copy, Debug)]
pub struct KernelBinding {
    pub binding: u32,
    pub name: &'static str,
    pub dtype: Dtype,
    pub access: Access,
    pub description: &'static str,
}

const fn input(binding: u32, name: &'static str, dtype: Dtype, description: &'static str) -> KernelBinding {
    KernelBinding { binding, name, dtype, access: Access::Read, description }
}

const fn output(binding: u32, name: &'static str, dtype: Dtype, description: &'static str) -> KernelBinding {
    KernelBinding { binding, name, dtype, access: Access::ReadWrite, description }
}

/// Rows (and columns) of C one matmul workgroup computes.
pub const MATMUL_TILE: u32 = 64;

pub const MATMUL: Kernel = Kernel {
    name: "matmul",
    source: include_str!("../wgsl/matmul.wgsl"),
    entry_point: "main",
    description: "f32 C[M×N] = A[M×K]·B[K×N], row-major, register-tiled 64×64 per workgroup",
    bindings: &[
        input(0, "dims", Dtype::U32, "[M, N, K]"),
        input(1, "a", Dtype::F32, "A, M·K elements, row-major"),
        input(2, "b", Dtype::F32, "B, K·N elements, row-major"),
        output(3, "c", Dtype::F32, "C, M·N elements, row-major"),
    ],
    workgroup_size: [16, 16, 1],
};

/// Steps after which `collatz` gives up (and outputs [`COLLATZ_DIVERGED`]).
pub const COLLATZ_MAX_STEPS: u32 = 10_000;
/// `collatz`'s output for 0, for overflow of `3n+1` in u32, and past [`COLLATZ_MAX_STEPS`].
pub const COLLATZ_DIVERGED: u32 = u32::MAX;

pub const COLLATZ: Kernel = Kernel {
    name: "collatz",
    source: include_str!("../wgsl/collatz.wgsl"),
    entry_point: "main",
    description: "u32 output[i] = Collatz steps from input[i] to 1 (u32::MAX: 0, overflow, or over 10000 steps)",
    bindings: &[
        input(0, "input", Dtype::U32, "starting values"),
        output(1, "output", Dtype::U32, "steps to reach 1, or 0xffffffff"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const VECTOR_ADD: Kernel = Kernel {
    name: "vector_add",
    source: include_str!("../wgsl/vector_add.wgsl"),
    entry_point: "main",
    description: "f32 c[i] = a[i] + b[i]",
    bindings: &[
        input(0, "a", Dtype::F32, "first addend"),
        input(1, "b", Dtype::F32, "second addend"),
        output(2, "c", Dtype::F32, "sum"),
    ],
    workgroup_size: [64, 1, 1],
};

/// Rows of Y one `matmul_bias` workgroup computes (`TILE_M` in the WGSL).
pub const MATMUL_BIAS_TILE_M: u32 = 64;
/// Columns of Y one `matmul_bias` workgroup computes (`TILE_N` in the WGSL).
pub const MATMUL_BIAS_TILE_N: u32 = 64;

pub const MATMUL_BIAS: Kernel = Kernel {
    name: "matmul_bias",
    source: include_str!("../wgsl/matmul_bias.wgsl"),
    entry_point: "main",
    description: "f32 Y[M×N] = X[M×K]·Wᵀ + b with W as [N×K] (PyTorch Linear), bias optional, 64×64 tiles",
    bindings: &[
        input(0, "params", Dtype::U32, "[M, N, K, has_bias]"),
        input(1, "x", Dtype::F32, "X, M·K elements, row-major"),
        input(2, "w", Dtype::F32, "W, N·K elements, row-major"),
        input(3, "bias", Dtype::F32, "b, N elements (any buffer when has_bias = 0)"),
        output(4, "y", Dtype::F32, "Y, M·N elements, row-major"),
    ],
    workgroup_size: [16, 16, 1],
};

pub const LAYERNORM: Kernel = Kernel {
    name: "layernorm",
    source: include_str!("../wgsl/layernorm.wgsl"),
    entry_point: "main",
    description: "f32 y = LayerNorm(x + r) over the last dimension, residual optional",
    bindings: &[
        input(0, "params", Dtype::U32, "[rows, cols, has_residual, eps as f32 bits]"),
        input(1, "x", Dtype::F32, "rows·cols"),
        input(2, "residual", Dtype::F32, "rows·cols (any buffer when has_residual = 0)"),
        input(3, "gamma", Dtype::F32, "cols"),
        input(4, "beta", Dtype::F32, "cols"),
        output(5, "y", Dtype::F32, "rows·cols"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const GELU: Kernel = Kernel {
    name: "gelu",
    source: include_str!("../wgsl/gelu.wgsl"),
    entry_point: "main",
    description: "f32 y = 0.5·x·(1 + erf(x/√2)), exact GELU",
    bindings: &[input(0, "x", Dtype::F32, "input"), output(1, "y", Dtype::F32, "GELU of each element")],
    workgroup_size: [64, 1, 1],
};

pub const SOFTMAX: Kernel = Kernel {
    name: "softmax",
    source: include_str!("../wgsl/softmax.wgsl"),
    entry_point: "main",
    description: "f32 row softmax (max-subtracted), optional key mask; fully masked rows are zeros",
    bindings: &[
        input(0, "params", Dtype::U32, "[rows, cols, rows_per_mask_row, has_mask]"),
        input(1, "x", Dtype::F32, "rows·cols"),
        input(2, "mask", Dtype::U32, "(rows / rows_per_mask_row)·cols, 1 = keep (any buffer when has_mask = 0)"),
        output(3, "y", Dtype::F32, "rows·cols"),
    ],
    workgroup_size: [64, 1, 1],
};

/// Largest head dimension `attention` takes (`MAX_HEAD_DIM` in the WGSL).
pub const ATTENTION_MAX_HEAD_DIM: u32 = 64;
/// Queries per `attention` workgroup (`WG` in the WGSL).
pub const ATTENTION_QUERIES_PER_WORKGROUP: u32 = 64;

pub const ATTENTION: Kernel = Kernel {
    name: "attention",
    source: include_str!("../wgsl/attention.wgsl"),
    entry_point: "main",
    description: "f32 multi-head self-attention core softmax(QKᵀ·scale + key mask)·V for padded sequences",
    bindings: &[
        input(
            0,
            "params",
            Dtype::U32,
            "[batch, seq, heads, head_dim, row_stride, q_offset, k_offset, v_offset, scale as f32 bits]",
        ),
        input(1, "q", Dtype::F32, "queries, token t head h at t·row_stride + q_offset + h·head_dim"),
        input(2, "k", Dtype::F32, "keys, laid out like q with k_offset"),
        input(3, "v", Dtype::F32, "values, laid out like q with v_offset"),
        input(4, "mask", Dtype::U32, "batch·seq, 1 = real token"),
        output(5, "out", Dtype::F32, "batch·seq·heads·head_dim"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const EMBEDDINGS: Kernel = Kernel {
    name: "embeddings",
    source: include_str!("../wgsl/embeddings.wgsl"),
    entry_point: "main",
    description: "f32 out[t] = word[id_t] + token_type[0] + position[t mod seq] (BERT, before LayerNorm)",
    bindings: &[
        input(0, "params", Dtype::U32, "[tokens, seq, hidden, vocab]"),
        input(1, "ids", Dtype::U32, "token ids, batch·seq"),
        input(2, "word", Dtype::F32, "vocab·hidden"),
        input(3, "position", Dtype::F32, "max_position·hidden"),
        input(4, "token_type", Dtype::F32, "type_vocab·hidden (row 0 is used)"),
        output(5, "out", Dtype::F32, "tokens·hidden"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const MEAN_POOL: Kernel = Kernel {
    name: "mean_pool",
    source: include_str!("../wgsl/mean_pool.wgsl"),
    entry_point: "main",
    description: "f32 masked mean over the sequence: [batch, seq, hidden] → [batch, hidden]",
    bindings: &[
        input(0, "params", Dtype::U32, "[batch, seq, hidden]"),
        input(1, "x", Dtype::F32, "batch·seq·hidden"),
        input(2, "mask", Dtype::U32, "batch·seq, 1 = real token"),
        output(3, "out", Dtype::F32, "batch·hidden"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const L2_NORMALIZE: Kernel = Kernel {
    name: "l2_normalize",
    source: include_str!("../wgsl/l2_normalize.wgsl"),
    entry_point: "main",
    description: "f32 rows scaled to unit length, x / max(‖x‖, 1e-12); a zero row stays zero",
    bindings: &[
        input(0, "params", Dtype::U32, "[rows, cols]"),
        input(1, "x", Dtype::F32, "rows·cols"),
        output(2, "y", Dtype::F32, "rows·cols"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const ALL: &[Kernel] = &[
    MATMUL,
    COLLATZ,
    VECTOR_ADD,
    MATMUL_BIAS,
    LAYERNORM,
    GELU,
    SOFTMAX,
    ATTENTION,
    EMBEDDINGS,
    MEAN_POOL,
    L2_NORMALIZE,
];

pub fn get(name: &str) -> Option<&'static Kernel> {
    ALL.iter().find(|k| k.name == name)
}

/// The most workgroups per dimension every WebGPU device allows.
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65535;

/// Workgroups for `matmul` of an M×N result.
pub fn matmul_workgroups(m: u32, n: u32) -> [u32; 3] {
    [n.div_ceil(MATMUL_TILE), m.div_ceil(MATMUL_TILE), 1]
}

/// Workgroups for a one-element-per-invocation kernel (`collatz`, `vector_add`) over `len`
/// elements: along x, then wrapping onto y past 65535 workgroups. Such kernels index with
/// `(workgroup_id.y * num_workgroups.x + workgroup_id.x) * WG + local_invocation_index` and skip
/// the tail past their arrays.
pub fn linear_workgroups(len: u64, workgroup_invocations: u32) -> [u32; 3] {
    let groups = len.div_ceil(u64::from(workgroup_invocations.max(1)));
    let max = u64::from(MAX_WORKGROUPS_PER_DIMENSION);
    if groups <= max {
        return [groups as u32, 1, 1];
    }
    let y = groups.div_ceil(max);
    let x = groups.div_ceil(y);
    [x as u32, y.min(max) as u32, 1]
}

/// Workgroups for `matmul_bias` of an M×N result.
pub fn matmul_bias_workgroups(m: u32, n: u32) -> [u32; 3] {
    [n.div_ceil(MATMUL_BIAS_TILE_N), m.div_ceil(MATMUL_BIAS_TILE_M), 1]
}

/// Workgroups for a one-workgroup-per-row kernel (`layernorm`, `softmax`, `l2_normalize`):
/// rows along x, wrapping onto y past 65535; such kernels take row `wg.y·num_workgroups.x +
/// wg.x` and skip rows past the end.
pub fn row_workgroups(rows: u64) -> [u32; 3] {
    linear_workgroups(rows, 1)
}

/// Workgroups for `attention`: query blocks along x, heads along y, sequences along z.
pub fn attention_workgroups(batch: u32, seq: u32, heads: u32) -> [u32; 3] {
    [seq.div_ceil(ATTENTION_QUERIES_PER_WORKGROUP), heads, batch]
}

/// `matmul_bias`'s params buffer.
pub fn matmul_bias_params(m: u32, n: u32, k: u32, has_bias: bool) -> [u32; 4] {
    [m, n, k, u32::from(has_bias)]
}

/// `layernorm`'s params buffer.
pub fn layernorm_params(rows: u32, cols: u32, has_residual: bool, eps: f32) -> [u32; 4] {
    [rows, cols, u32::from(has_residual), eps.to_bits()]
}

/// `softmax`'s params buffer; `rows_per_mask_row` is ignored without a mask.
pub fn softmax_params(rows: u32, cols: u32, rows_per_mask_row: u32, has_mask: bool) -> [u32; 4] {
    [rows, cols, rows_per_mask_row, u32::from(has_mask)]
}

/// Where Q, K and V of each token start in the buffers bound to `attention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkvLayout {
    /// Elements from one token's row to the next.
    pub row_stride: u32,
    pub q_offset: u32,
    pub k_offset: u32,
    pub v_offset: u32,
}

impl QkvLayout {
    /// Three buffers [batch, seq, hidden].
    pub fn separate(hidden: u32) -> QkvLayout {
        QkvLayout { row_stride: hidden, q_offset: 0, k_offset: 0, v_offset: 0 }
    }

    /// One buffer [batch, seq, 3·hidden] holding Q, K, V side by side (a fused projection).
    pub fn fused(hidden: u32) -> QkvLayout {
        QkvLayout { row_stride: 3 * hidden, q_offset: 0, k_offset: hidden, v_offset: 2 * hidden }
    }
}

/// `attention`'s params buffer, with the usual scale 1/√head_dim.
pub fn attention_params(batch: u32, seq: u32, heads: u32, head_dim: u32, layout: QkvLayout) -> [u32; 9] {
    let scale = 1.0 / (head_dim.max(1) as f32).sqrt();
    [batch, seq, heads, head_dim, layout.row_stride, layout.q_offset, layout.k_offset, layout.v_offset, scale.to_bits()]
}

/// `embeddings`' params buffer.
pub fn embeddings_params(batch: u32, seq: u32, hidden: u32, vocab: u32) -> [u32; 4] {
    [batch * seq, seq, hidden, vocab]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{BindingKind, validate};

    #[test]
    fn every_kernel_matches_its_registry_entry() {
        for kernel in ALL {
            let info = validate(kernel.source).unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
            let entry = info.entry_point(kernel.entry_point).unwrap();
            assert_eq!(entry.stage, "compute", "{}", kernel.name);
            assert_eq!(entry.workgroup_size, kernel.workgroup_size, "{}", kernel.name);
            assert!(kernel.workgroup_size.iter().product::<u32>() <= 256, "{}", kernel.name);
            let declared: Vec<_> =
                info.bindings.iter().map(|b| (b.group, b.binding, b.name.clone(), b.kind, b.element)).collect();
            let registered: Vec<_> = kernel
                .bindings
                .iter()
                .map(|b| {
                    let kind = BindingKind::Storage { access: b.access };
                    (0, b.binding, Some(b.name.to_owned()), kind, Some(b.dtype))
                })
                .collect();
            assert_eq!(declared, registered, "{}", kernel.name);
        }
    }

    /// A `u32` constant of a kernel's WGSL, after naga's constant evaluation.
    fn wgsl_constant(source: &str, name: &str) -> u32 {
        let module = naga::front::wgsl::parse_str(source).unwrap();
        let (_, constant) = module.constants.iter().find(|(_, c)| c.name.as_deref() == Some(name)).unwrap();
        match module.global_expressions[constant.init] {
            naga::Expression::Literal(naga::Literal::U32(value)) => value,
            ref other => panic!("{name} is {other:?}"),
        }
    }

    #[test]
    fn tile_constants_mirror_the_wgsl() {
        assert_eq!(wgsl_constant(MATMUL_BIAS.source, "TILE_M"), MATMUL_BIAS_TILE_M);
        assert_eq!(wgsl_constant(MATMUL_BIAS.source, "TILE_N"), MATMUL_BIAS_TILE_N);
        assert_eq!(wgsl_constant(ATTENTION.source, "MAX_HEAD_DIM"), ATTENTION_MAX_HEAD_DIM);
        assert_eq!(wgsl_constant(ATTENTION.source, "WG"), ATTENTION_QUERIES_PER_WORKGROUP);
        assert_eq!(wgsl_constant(MATMUL.source, "WG_X") * wgsl_constant(MATMUL.source, "TN"), MATMUL_TILE);
    }

    #[test]
    fn kernels_are_found_by_name() {
        assert_eq!(get("matmul").map(|k| k.name), Some("matmul"));
        assert!(get("nope").is_none());
    }

    #[test]
    fn matmul_covers_ragged_shapes() {
        assert_eq!(matmul_workgroups(1, 1), [1, 1, 1]);
        assert_eq!(matmul_workgroups(64, 65), [2, 1, 1]);
        assert_eq!(matmul_workgroups(100, 3), [1, 2, 1]);
    }

    #[test]
    fn linear_workgroups_wrap_onto_y_and_cover_every_element() {
        assert_eq!(linear_workgroups(1, 64), [1, 1, 1]);
        assert_eq!(linear_workgroups(64 * 65535, 64), [65535, 1, 1]);
        for len in [64 * 65535 + 1, 1 << 30, (1u64 << 32) - 1] {
            let [x, y, z] = linear_workgroups(len, 64);
            assert!(x <= MAX_WORKGROUPS_PER_DIMENSION && y <= MAX_WORKGROUPS_PER_DIMENSION);
            assert!(u64::from(x) * u64::from(y) * u64::from(z) * 64 >= len, "{len}");
        }
    }
}
