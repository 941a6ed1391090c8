// hyphae built-in kernel `collatz`: output[i] = number of Collatz steps from input[i] to 1.
//
// Bindings (all @group(0)):
//   0 input   var<storage, read>        array<u32>
//   1 output  var<storage, read_write>  array<u32>
//
// A step is n → n/2 (n even) or n → 3n+1 (n odd); 1 takes 0 steps. When 1 is not reached
// within MAX_STEPS steps, when 3n+1 would overflow u32, or for 0 (which never reaches 1) the
// output is DIVERGED (0xffffffff). reference::collatz implements the same rule.
// One element per invocation; elements past min(arrayLength(input), arrayLength(output)) are
// skipped. Dispatch with kernels::linear_workgroups(len, WG), which spreads workgroups over x
// and y when there are more than 65535.

const WG: u32 = 64u;
const MAX_STEPS: u32 = 10000u;
const DIVERGED: u32 = 0xffffffffu;
// Largest odd n for which 3n+1 fits in u32.
const MAX_ODD: u32 = 0x55555554u;

@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> output: array<u32>;

fn collatz_steps(start: u32) -> u32 {
    var n = start;
    for (var steps = 0u; steps <= MAX_STEPS; steps++) {
        if (n == 1u) {
            return steps;
        }
        if (n == 0u) {
            return DIVERGED;
        }
        if ((n & 1u) == 0u) {
            n = n >> 1u;
        } else {
            if (n > MAX_ODD) {
                return DIVERGED;
            }
            n = 3u * n + 1u;
        }
    }
    return DIVERGED;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = (wg.y * groups.x + wg.x) * WG + local;
    if (i >= arrayLength(&input) || i >= arrayLength(&output)) {
        return;
    }
    output[i] = collatz_steps(input[i]);
}
