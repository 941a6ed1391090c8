// hyphae built-in kernel `matmul_bias`: Y[M×N] = X[M×K] · Wᵀ + b, f32, row-major, with W given
// as [N×K] (PyTorch's Linear layout: one row of K weights per output) and an optional bias b[N].
// A batch of sequences [B, S, K] is the 2-D case with M = B·S rows (the weights are shared).
//
// Bindings (all @group(0), storage only):
//   0 params  var<storage, read>        array<u32>  [M, N, K, has_bias (0 or 1)]
//   1 x       var<storage, read>        array<f32>  M·K
//   2 w       var<storage, read>        array<f32>  N·K
//   3 bias    var<storage, read>        array<f32>  N (not read when has_bias = 0: bind any buffer)
//   4 y       var<storage, read_write>  array<f32>  M·N
//
// Register tiling without workgroup memory: each invocation accumulates a TM×TN block of Y in
// registers (TM neighbouring rows; TN columns WG_X apart, so neighbouring invocations take
// neighbouring columns), and a workgroup covers TILE_M×TILE_N = 64×64 of Y. Dispatch
// [ceil(N/TILE_N), ceil(M/TILE_M), 1] (kernels::matmul_bias_workgroups). On lavapipe this ran
// 1.7× faster than staging 64×16 tiles of X and W in workgroup memory (5.0 vs 2.9 GFLOP/s at
// 4096×1536×384), as DESIGN.md §7 found for plain matmul. Ragged M, N, K: reads are clamped
// into the matrices and writes outside Y are skipped.

const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const TILE_M: u32 = WG_Y * TM;
const TILE_N: u32 = WG_X * TN;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let m = params[0];
    let n = params[1];
    let k = params[2];
    let has_bias = params[3] != 0u;
    if (m == 0u || n == 0u) {
        return;
    }
    let row0 = wg.y * TILE_M + lid.y * TM;
    let col0 = wg.x * TILE_N + lid.x;

    // Starts of the clamped rows of X and W: always in bounds; duplicates are never stored.
    var x_rows: array<u32, TM>;
    var w_rows: array<u32, TN>;
    for (var i = 0u; i < TM; i++) {
        x_rows[i] = min(row0 + i, m - 1u) * k;
    }
    for (var j = 0u; j < TN; j++) {
        w_rows[j] = min(col0 + j * WG_X, n - 1u) * k;
    }

    var acc: array<array<f32, TN>, TM>;
    for (var p = 0u; p < k; p++) {
        var xv: array<f32, TM>;
        var wv: array<f32, TN>;
        for (var i = 0u; i < TM; i++) {
            xv[i] = x[x_rows[i] + p];
        }
        for (var j = 0u; j < TN; j++) {
            wv[j] = w[w_rows[j] + p];
        }
        for (var i = 0u; i < TM; i++) {
            for (var j = 0u; j < TN; j++) {
                acc[i][j] = fma(xv[i], wv[j], acc[i][j]);
            }
        }
    }

    for (var i = 0u; i < TM; i++) {
        let row = row0 + i;
        if (row >= m) {
            break;
        }
        for (var j = 0u; j < TN; j++) {
            let col = col0 + j * WG_X;
            if (col < n) {
                var v = acc[i][j];
                if (has_bias) {
                    v += bias[col];
                }
                y[row * n + col] = v;
            }
        }
    }
}
