// hyphae built-in kernel `softmax`: row softmax over the last dimension, f32, numerically
// stable (the row's maximum is subtracted before exp), with an optional key mask:
//   y[r, c] = exp(x[r, c] - max) / Σ exp(x[r, c'] - max)   over the unmasked columns c, c',
// and 0 in masked columns. A row whose every column is masked is all zeros (never NaN).
//
// Bindings (all @group(0)):
//   0 params  var<storage, read>        array<u32>  [rows, cols, rows_per_mask_row, has_mask (0 or 1)]
//   1 x       var<storage, read>        array<f32>  rows·cols
//   2 mask    var<storage, read>        array<u32>  (rows / rows_per_mask_row)·cols, 1 = keep, 0 = masked;
//                                                   not read when has_mask = 0 (bind any buffer)
//   3 y       var<storage, read_write>  array<f32>  rows·cols
//
// Row r uses mask row r / rows_per_mask_row: for attention scores [batch, heads, queries, keys]
// that is heads·queries rows per mask row [batch, keys]. One workgroup per row
// (kernels::row_workgroups); reductions in workgroup memory, barriers in uniform control flow.

const WG: u32 = 64u;
// Below every score a real key can have: the start of a running maximum (WGSL does not
// promise infinities).
const LOWEST: f32 = -3.0e38;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn workgroup_max(li: u32, v: f32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            partial[li] = max(partial[li], partial[li + stride]);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

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
    let per_mask_row = max(params[2], 1u);
    let has_mask = params[3] != 0u;
    let row = wg.y * groups.x + wg.x;
    if (row >= rows || cols == 0u) {
        return;
    }
    let base = row * cols;
    let mask_base = (row / per_mask_row) * cols;

    var local_max = LOWEST;
    var any_kept = 0.0;
    for (var c = li; c < cols; c += WG) {
        if (!has_mask || mask[mask_base + c] != 0u) {
            local_max = max(local_max, x[base + c]);
            any_kept = 1.0;
        }
    }
    let row_max = workgroup_max(li, local_max);
    let kept = workgroup_max(li, any_kept);

    var local_sum = 0.0;
    for (var c = li; c < cols; c += WG) {
        if (!has_mask || mask[mask_base + c] != 0u) {
            local_sum += exp(x[base + c] - row_max);
        }
    }
    let total = workgroup_sum(li, local_sum);
    var scale = 0.0;
    if (kept > 0.0) {
        scale = 1.0 / total;
    }
    for (var c = li; c < cols; c += WG) {
        var v = 0.0;
        if (!has_mask || mask[mask_base + c] != 0u) {
            v = exp(x[base + c] - row_max) * scale;
        }
        y[base + c] = v;
    }
}
