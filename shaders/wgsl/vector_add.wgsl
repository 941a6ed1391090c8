// hyphae built-in kernel `vector_add`: c[i] = a[i] + b[i], f32.
//
// Bindings (all @group(0)):
//   0 a  var<storage, read>        array<f32>
//   1 b  var<storage, read>        array<f32>
//   2 c  var<storage, read_write>  array<f32>
//
// One element per invocation, up to the shortest of the three arrays. Dispatch with
// kernels::linear_workgroups(len, WG).

const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = (wg.y * groups.x + wg.x) * WG + local;
    let len = min(min(arrayLength(&a), arrayLength(&b)), arrayLength(&c));
    if (i >= len) {
        return;
    }
    c[i] = a[i] + b[i];
}
