// hyphae kernel family `matmul_tiled`: C[M×N] = A[M×K]·B (+ bias), f32, row-major. This file is
// a template, not a kernel: `matmul::Variant::source` (shaders/src/matmul/wgsl.rs) fills in the
// {{…}} placeholders with one variant's tile constants and its unrolled pieces.
//
// B is K×N row-major (layout `matmul`, bindings as the `matmul` kernel), or W as N×K row-major
// with an optional bias b[N] (layout `linear`, PyTorch's Linear, bindings as `matmul_bias`):
//   matmul: 0 params [M, N, K]            1 a (A)  2 b (B)               3 c (C, read_write)
//   linear: 0 params [M, N, K, has_bias]  1 a (X)  2 b (W)  3 bias (b)   4 c (Y, read_write)
// In vec4 variants (K and N multiples of 4) a, b and c are array<vec4<f32>>; otherwise array<f32>.
//
// A workgroup computes a BM×BN tile of C; each of its WG_X×WG_Y invocations accumulates TM×TN
// elements in registers: TM/4 groups of 4 rows WG_Y·4 apart and TN/4 groups of 4 columns
// WG_X·4 apart, so neighbouring invocations read neighbouring vec4s of workgroup memory (no
// bank conflicts) and write neighbouring vec4s of C. K is walked in steps of BK: the A and B
// tiles of a step are staged in workgroup memory, A transposed ([k][m]) so that a column of A is
// a run of vec4s. Two buffers of each (double buffering): while step t is computed from one,
// step t+1's tiles are loaded from global memory into registers, then stored into the other;
// one barrier per step.
//
// Determinism: every element of C is one fma chain over k = 0, 1, …, K-1 in ascending order,
// starting from 0, plus the bias at the end, exactly like `matmul` and `matmul_bias`. Steps past
// the end of K are never computed (the last step runs only the k that remain), so every variant
// gives the same bits as every other on a given backend.
//
// Ragged M, N, K: loads are clamped into the matrices (clamped rows and columns feed only
// elements that are never stored) and stores outside C are skipped.

const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WG_X: u32 = BN / TN;
const WG_Y: u32 = BM / TM;
const THREADS: u32 = WG_X * WG_Y;
// vec4s in one buffer of the A tile ([BK][BM]) and of the B tile ([BK][BN]).
const A_TILE: u32 = BK * BM / 4u;
const B_TILE: u32 = BK * BN / 4u;

var<workgroup> a_tile: array<vec4<f32>, {{A_TILE_X2}}>;
var<workgroup> b_tile: array<vec4<f32>, {{B_TILE_X2}}>;

@group(0) @binding(0) var<storage, read> params: array<u32>;
{{BINDINGS}}

{{LOADS}}

{{STORE_C}}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let m = params[0];
    let n = params[1];
    let k = params[2];
    if (m == 0u || n == 0u) {
        return;
    }
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let tx = lid.x;
    let ty = lid.y;
{{ACCUMULATORS}}

    let steps = (k + BK - 1u) / BK;
    if (steps > 0u) {
        load_tiles(m0, n0, 0u, m, n, k, tid);
        store_tiles(0u, tid);
    }
    workgroupBarrier();
    for (var t = 0u; t < steps; t++) {
        let cur = t & 1u;
        let more = t + 1u < steps;
        if (more) {
            load_tiles(m0, n0, (t + 1u) * BK, m, n, k, tid);
        }
        let a_base = cur * A_TILE + ty;
        let b_base = cur * B_TILE + tx;
        let left = k - t * BK;
        if (left >= BK) {
            for (var kk = 0u; kk < BK; kk++) {
{{STEP}}
            }
        } else {
            for (var kk = 0u; kk < left; kk++) {
{{STEP}}
            }
        }
        if (more) {
            store_tiles(1u - cur, tid);
        }
        workgroupBarrier();
    }

{{EPILOGUE}}
}
