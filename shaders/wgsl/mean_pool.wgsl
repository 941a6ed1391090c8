// hyphae built-in kernel `mean_pool`: the masked mean over the sequence, f32:
//   out[b, c] = Σ_s mask[b, s]·x[b, s, c] / Σ_s mask[b, s]
// (sentence-transformers' mean pooling); a sequence with no real token pools to zeros.
//
// Bindings (all @group(0)):
//   0 params  var<storage, read>        array<u32>  [batch, seq, hidden]
//   1 x       var<storage, read>        array<f32>  batch·seq·hidden
//   2 mask    var<storage, read>        array<u32>  batch·seq, 1 = real token
//   3 out     var<storage, read_write>  array<f32>  batch·hidden
//
// One output element per invocation, summing down the sequence (neighbouring invocations read
// neighbouring columns); dispatch with kernels::linear_workgroups(batch·hidden, WG).

const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let batch = params[0];
    let seq = params[1];
    let hidden = params[2];
    let i = (wg.y * groups.x + wg.x) * WG + local;
    if (hidden == 0u || i >= batch * hidden) {
        return;
    }
    let b = i / hidden;
    let c = i % hidden;
    var sum = 0.0;
    var count = 0u;
    for (var s = 0u; s < seq; s++) {
        if (mask[b * seq + s] != 0u) {
            sum += x[(b * seq + s) * hidden + c];
            count += 1u;
        }
    }
    var mean = 0.0;
    if (count > 0u) {
        mean = sum / f32(count);
    }
    out[i] = mean;
}
