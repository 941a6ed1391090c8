// hyphae built-in kernel `attention`: the core of multi-head self-attention for a batch of
// padded sequences, f32. Per batch b, head h and query i:
//   out[b, i, h·d .. h·d+d] = Σ_j p_j · V[b, j, h],  p = softmax_j(Q[b, i, h] · K[b, j, h] / √d)
// over the keys j with mask[b, j] = 1 (padded keys get -inf, i.e. weight 0). A query whose
// every key is masked gets zeros (never NaN). Padded queries are computed like the others.
//
// Bindings (all @group(0)):
//   0 params  var<storage, read>        array<u32>  [batch, seq, heads, head_dim, row_stride,
//                                                    q_offset, k_offset, v_offset, scale as f32 bits]
//   1 q       var<storage, read>        array<f32>
//   2 k       var<storage, read>        array<f32>
//   3 v       var<storage, read>        array<f32>
//   4 mask    var<storage, read>        array<u32>  batch·seq, 1 = real token
//   5 out     var<storage, read_write>  array<f32>  batch·seq·heads·head_dim
//
// Token t = b·seq + j's head h of Q starts at t·row_stride + q_offset + h·head_dim (likewise K
// and V): separate Q, K, V buffers [batch, seq, heads·head_dim] use row_stride = heads·head_dim
// and offsets 0; one fused QKV buffer [batch, seq, 3·hidden] bound three times uses
// row_stride = 3·hidden and offsets 0, hidden, 2·hidden. `scale` is usually 1/√head_dim.
//
// One invocation per query: a single pass over the keys with a running maximum (online
// softmax), so nothing of size seq² is stored and seq is bounded only by the buffers. A
// workgroup holds WG queries of one (head, batch): dispatch [ceil(seq/WG), heads, batch]
// (kernels::attention_workgroups). head_dim is at most MAX_HEAD_DIM (mirrored in kernels.rs;
// larger heads are refused before dispatch).

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 64u;
// Below every score a real key can have: the start of the running maximum (WGSL does not
// promise infinities; exp of this minus a real score underflows to 0).
const LOWEST: f32 = -1.0e30;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let batch = params[0];
    let seq = params[1];
    let heads = params[2];
    let head_dim = min(params[3], MAX_HEAD_DIM);
    let stride = params[4];
    let scale = bitcast<f32>(params[8]);
    let i = wg.x * WG + li;
    let h = wg.y;
    let b = wg.z;
    if (i >= seq || h >= heads || b >= batch) {
        return;
    }
    let column = h * head_dim;
    let q_base = (b * seq + i) * stride + params[5] + column;
    let k_base = b * seq * stride + params[6] + column;
    let v_base = b * seq * stride + params[7] + column;

    var query: array<f32, MAX_HEAD_DIM>;
    for (var c = 0u; c < head_dim; c++) {
        query[c] = q[q_base + c] * scale;
    }
    var acc: array<f32, MAX_HEAD_DIM>;
    var running_max = LOWEST;
    var total = 0.0;
    for (var j = 0u; j < seq; j++) {
        if (mask[b * seq + j] == 0u) {
            continue;
        }
        let k_row = k_base + j * stride;
        var score = 0.0;
        for (var c = 0u; c < head_dim; c++) {
            score = fma(query[c], k[k_row + c], score);
        }
        if (score > running_max) {
            let correction = exp(running_max - score);
            total *= correction;
            for (var c = 0u; c < head_dim; c++) {
                acc[c] *= correction;
            }
            running_max = score;
        }
        let p = exp(score - running_max);
        total += p;
        let v_row = v_base + j * stride;
        for (var c = 0u; c < head_dim; c++) {
            acc[c] = fma(p, v[v_row + c], acc[c]);
        }
    }
    var inv_total = 0.0;
    if (total > 0.0) {
        inv_total = 1.0 / total;
    }
    let out_base = (b * seq + i) * heads * head_dim + column;
    for (var c = 0u; c < head_dim; c++) {
        out[out_base + c] = acc[c] * inv_total;
    }
}
