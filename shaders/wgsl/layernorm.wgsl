// hyphae built-in kernel `layernorm`: y = LN(x + r) over the last dimension, f32:
//   v = x + r (r only when has_residual = 1), y = (v - mean(v)) / sqrt(var(v) + eps) · gamma + beta,
// with the biased variance (divide by cols), as PyTorch's LayerNorm.
//
// Bindings (all @group(0)):
//   0 params    var<storage, read>        array<u32>  [rows, cols, has_residual (0 or 1), eps as f32 bits]
//   1 x         var<storage, read>        array<f32>  rows·cols
//   2 residual  var<storage, read>        array<f32>  rows·cols (not read when has_residual = 0: bind any buffer)
//   3 gamma     var<storage, read>        array<f32>  cols
//   4 beta      var<storage, read>        array<f32>  cols
//   5 y         var<storage, read_write>  array<f32>  rows·cols
//
// One workgroup per row (kernels::row_workgroups: rows along x, wrapping onto y past 65535).
// Two passes over the row (mean, then the mean of squared deviations) for accuracy, each a
// tree reduction in workgroup memory. The row index comes from workgroup_id and the sizes from a
// read-only buffer, so every barrier is in uniform control flow.

const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn value(i: u32, has_residual: bool) -> f32 {
    if (has_residual) {
        return x[i] + residual[i];
    }
    return x[i];
}

// The sum of every invocation's `v`, returned to all of them.
fn workgroup_sum(li: u32, v: f32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let rows = params[0];
    let cols = params[1];
    let has_residual = params[2] != 0u;
    let eps = bitcast<f32>(params[3]);
    let row = wg.y * groups.x + wg.x;
    if (row >= rows || cols == 0u) {
        return;
    }
    let base = row * cols;

    var sum = 0.0;
    for (var c = li; c < cols; c += WG) {
        sum += value(base + c, has_residual);
    }
    let mean = workgroup_sum(li, sum) / f32(cols);

    var squares = 0.0;
    for (var c = li; c < cols; c += WG) {
        let d = value(base + c, has_residual) - mean;
        squares += d * d;
    }
    let variance = workgroup_sum(li, squares) / f32(cols);
    let inv_std = 1.0 / sqrt(variance + eps);

    for (var c = li; c < cols; c += WG) {
        y[base + c] = (value(base + c, has_residual) - mean) * inv_std * gamma[c] + beta[c];
    }
}
