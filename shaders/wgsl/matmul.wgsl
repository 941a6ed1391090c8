// hyphae built-in kernel `matmul`: C[M×N] = A[M×K] · B[K×N], f32, row-major.
//
// Bindings (all @group(0), storage only — hyphae launches have no uniforms):
//   0 dims  var<storage, read>        array<u32>  [M, N, K]
//   1 a     var<storage, read>        array<f32>  M·K
//   2 b     var<storage, read>        array<f32>  K·N
//   3 c     var<storage, read_write>  array<f32>  M·N
//
// Register tiling without workgroup memory: each invocation accumulates a TM×TN block of C in
// registers, so one workgroup covers (WG_Y·TM)×(WG_X·TN) = 64×64 of C. Dispatch
// [ceil(N/64), ceil(M/64), 1] (kernels::matmul_workgroups). Rows of an invocation are WG_Y apart
// and columns WG_X apart, so neighbouring invocations read neighbouring columns of B.
// 16×16 = 256 invocations: the WebGPU minimum every device (SwiftShader included) accepts.
// Ragged M, N, K: reads are clamped into the matrices and writes outside C are skipped.

const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;

@group(0) @binding(0) var<storage, read> dims: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let m = dims[0];
    let n = dims[1];
    let k = dims[2];
    if (m == 0u || n == 0u) {
        return;
    }
    let row0 = wg.y * WG_Y * TM + lid.y;
    let col0 = wg.x * WG_X * TN + lid.x;

    // Clamped source rows and columns: always in bounds, duplicates are never stored.
    var rows: array<u32, TM>;
    var cols: array<u32, TN>;
    for (var i = 0u; i < TM; i++) {
        rows[i] = min(row0 + i * WG_Y, m - 1u) * k;
    }
    for (var j = 0u; j < TN; j++) {
        cols[j] = min(col0 + j * WG_X, n - 1u);
    }

    var acc: array<array<f32, TN>, TM>;
    for (var p = 0u; p < k; p++) {
        var av: array<f32, TM>;
        var bv: array<f32, TN>;
        for (var i = 0u; i < TM; i++) {
            av[i] = a[rows[i] + p];
        }
        let brow = p * n;
        for (var j = 0u; j < TN; j++) {
            bv[j] = b[brow + cols[j]];
        }
        for (var i = 0u; i < TM; i++) {
            for (var j = 0u; j < TN; j++) {
                acc[i][j] = fma(av[i], bv[j], acc[i][j]);
            }
        }
    }

    for (var i = 0u; i < TM; i++) {
        let row = row0 + i * WG_Y;
        if (row >= m) {
            break;
        }
        for (var j = 0u; j < TN; j++) {
            let col = col0 + j * WG_X;
            if (col < n) {
                c[row * n + col] = acc[i][j];
            }
        }
    }
}
