// hyphae built-in kernel `l2_normalize`: each row scaled to unit Euclidean length, f32:
//   y[r, c] = x[r, c] / max(‖x[r]‖₂, 1e-12)
// as PyTorch's F.normalize (sentence-transformers' Normalize); a zero row stays zero.
//
// Bindings (all @group(0)):
//   0 params  var<storage, read>        array<u32>  [rows, cols]
//   1 x       var<storage, read>        array<f32>  rows·cols
//   2 y       var<storage, read_write>  array<f32>  rows·cols
//
// One workgroup per row (kernels::row_workgroups); the sum of squares is a tree reduction in
// workgroup memory, barriers in uniform control flow.

const WG: u32 = 64u;
const MIN_NORM: f32 = 1e-12;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let rows = params[0];
    let cols = params[1];
    let row = wg.y * groups.x + wg.x;
    if (row >= rows || cols == 0u) {
        return;
    }
    let base = row * cols;
    var squares = 0.0;
    for (var c = li; c < cols; c += WG) {
        let v = x[base + c];
        squares = fma(v, v, squares);
    }
    partial[li] = squares;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    let inv_norm = 1.0 / max(sqrt(partial[0]), MIN_NORM);
    for (var c = li; c < cols; c += WG) {
        y[base + c] = x[base + c] * inv_norm;
    }
}
