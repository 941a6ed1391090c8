// hyphae built-in kernel `gelu`: y[i] = 0.5·x·(1 + erf(x/√2)), the exact (erf) GELU, f32.
//
// Bindings (all @group(0)):
//   0 x  var<storage, read>        array<f32>
//   1 y  var<storage, read_write>  array<f32>
//
// WGSL has no erf. `erf` below: for |x| < 0.5 the Maclaurin series of erf(x)/x in x² through
// x¹², Horner form (truncation < 4e-10); otherwise erf = 1 - erfc with the Chebyshev-fitted
// erfc of Numerical Recipes (Press et al., `erfcc`: fractional error < 1.2e-7). Measured against
// the exact erf: at most 3.1e-8 absolute error evaluated in f64, 1.4e-7 evaluated in f32 (the
// rounding of 1 - erfc near 0.6 dominates). reference::gelu implements the same formula.
// One element per invocation over min(arrayLength(x), arrayLength(y)); dispatch with
// kernels::linear_workgroups(len, WG).

const WG: u32 = 64u;
const FRAC_2_SQRT_PI: f32 = 1.1283791670955126;
const FRAC_1_SQRT_2: f32 = 0.7071067811865476;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

fn erf(v: f32) -> f32 {
    let z = abs(v);
    if (z < 0.5) {
        // 2/√π · Σ (-1)ⁿ x²ⁿ / (n!(2n+1)), n = 0..6.
        let t = v * v;
        var p = 1.0 / 9360.0;
        p = p * t - 1.0 / 1320.0;
        p = p * t + 1.0 / 216.0;
        p = p * t - 1.0 / 42.0;
        p = p * t + 1.0 / 10.0;
        p = p * t - 1.0 / 3.0;
        p = p * t + 1.0;
        return FRAC_2_SQRT_PI * v * p;
    }
    let t = 1.0 / (1.0 + 0.5 * z);
    var p = 0.17087277;
    p = p * t - 0.82215223;
    p = p * t + 1.48851587;
    p = p * t - 1.13520398;
    p = p * t + 0.27886807;
    p = p * t - 0.18628806;
    p = p * t + 0.09678418;
    p = p * t + 0.37409196;
    p = p * t + 1.00002368;
    p = p * t - 1.26551223;
    let erfc = t * exp(-z * z + p);
    return sign(v) * (1.0 - erfc);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = (wg.y * groups.x + wg.x) * WG + local;
    if (i >= min(arrayLength(&x), arrayLength(&y))) {
        return;
    }
    let v = x[i];
    y[i] = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
}
