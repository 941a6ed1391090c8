//! The built-in kernels: name → WGSL source (from `wgsl/*.wgsl`, one kernel per file), what
//! each binding holds, and how many workgroups a problem needs. The CPU reference of each lives
//! in [`crate::reference`] under the same name.
//!
//! Workgroup sizes are named constants at the top of each `.wgsl` file and mirrored here
//! ([`Kernel::workgroup_size`]); a test checks the two agree through naga's reflection. All are
//! at most 256 invocations, the WebGPU minimum every device accepts (SwiftShader's limit).

use hyphae_proto::Dtype;
use hyphae_proto::frame::Access;

/// A built-in kernel.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub entry_point: &'static str,
    pub description: &'static str,
    /// In binding order, all in `@group(0)`.
    pub bindings: &'static [KernelBinding],
    pub workgroup_size: [u32; 3],
}

#[derive(Clone, Copy, Debug)]
pub struct KernelBinding {
    pub binding: u32,
    pub name: &'static str,
    pub dtype: Dtype,
    pub access: Access,
    pub description: &'static str,
}

const fn input(binding: u32, name: &'static str, dtype: Dtype, description: &'static str) -> KernelBinding {
    KernelBinding { binding, name, dtype, access: Access::Read, description }
}

const fn output(binding: u32, name: &'static str, dtype: Dtype, description: &'static str) -> KernelBinding {
    KernelBinding { binding, name, dtype, access: Access::ReadWrite, description }
}

/// Rows (and columns) of C one matmul workgroup computes.
pub const MATMUL_TILE: u32 = 64;

pub const MATMUL: Kernel = Kernel {
    name: "matmul",
    source: include_str!("../wgsl/matmul.wgsl"),
    entry_point: "main",
    description: "f32 C[M×N] = A[M×K]·B[K×N], row-major, register-tiled 64×64 per workgroup",
    bindings: &[
        input(0, "dims", Dtype::U32, "[M, N, K]"),
        input(1, "a", Dtype::F32, "A, M·K elements, row-major"),
        input(2, "b", Dtype::F32, "B, K·N elements, row-major"),
        output(3, "c", Dtype::F32, "C, M·N elements, row-major"),
    ],
    workgroup_size: [16, 16, 1],
};

/// Steps after which `collatz` gives up (and outputs [`COLLATZ_DIVERGED`]).
pub const COLLATZ_MAX_STEPS: u32 = 10_000;
/// `collatz`'s output for 0, for overflow of `3n+1` in u32, and past [`COLLATZ_MAX_STEPS`].
pub const COLLATZ_DIVERGED: u32 = u32::MAX;

pub const COLLATZ: Kernel = Kernel {
    name: "collatz",
    source: include_str!("../wgsl/collatz.wgsl"),
    entry_point: "main",
    description: "u32 output[i] = Collatz steps from input[i] to 1 (u32::MAX: 0, overflow, or over 10000 steps)",
    bindings: &[
        input(0, "input", Dtype::U32, "starting values"),
        output(1, "output", Dtype::U32, "steps to reach 1, or 0xffffffff"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const VECTOR_ADD: Kernel = Kernel {
    name: "vector_add",
    source: include_str!("../wgsl/vector_add.wgsl"),
    entry_point: "main",
    description: "f32 c[i] = a[i] + b[i]",
    bindings: &[
        input(0, "a", Dtype::F32, "first addend"),
        input(1, "b", Dtype::F32, "second addend"),
        output(2, "c", Dtype::F32, "sum"),
    ],
    workgroup_size: [64, 1, 1],
};

pub const ALL: &[Kernel] = &[MATMUL, COLLATZ, VECTOR_ADD];

pub fn get(name: &str) -> Option<&'static Kernel> {
    ALL.iter().find(|k| k.name == name)
}

/// The most workgroups per dimension every WebGPU device allows.
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65535;

/// Workgroups for `matmul` of an M×N result.
pub fn matmul_workgroups(m: u32, n: u32) -> [u32; 3] {
    [n.div_ceil(MATMUL_TILE), m.div_ceil(MATMUL_TILE), 1]
}

/// Workgroups for a one-element-per-invocation kernel (`collatz`, `vector_add`) over `len`
/// elements: along x, then wrapping onto y past 65535 workgroups. Such kernels index with
/// `(workgroup_id.y * num_workgroups.x + workgroup_id.x) * WG + local_invocation_index` and skip
/// the tail past their arrays.
pub fn linear_workgroups(len: u64, workgroup_invocations: u32) -> [u32; 3] {
    let groups = len.div_ceil(u64::from(workgroup_invocations.max(1)));
    let max = u64::from(MAX_WORKGROUPS_PER_DIMENSION);
    if groups <= max {
        return [groups as u32, 1, 1];
    }
    let y = groups.div_ceil(max);
    let x = groups.div_ceil(y);
    [x as u32, y.min(max) as u32, 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{BindingKind, validate};

    #[test]
    fn every_kernel_matches_its_registry_entry() {
        for kernel in ALL {
            let info = validate(kernel.source).unwrap_or_else(|e| panic!("{}: {e}", kernel.name));
            let entry = info.entry_point(kernel.entry_point).unwrap();
            assert_eq!(entry.stage, "compute", "{}", kernel.name);
            assert_eq!(entry.workgroup_size, kernel.workgroup_size, "{}", kernel.name);
            assert!(kernel.workgroup_size.iter().product::<u32>() <= 256, "{}", kernel.name);
            let declared: Vec<_> =
                info.bindings.iter().map(|b| (b.group, b.binding, b.name.clone(), b.kind, b.element)).collect();
            let registered: Vec<_> = kernel
                .bindings
                .iter()
                .map(|b| {
                    let kind = BindingKind::Storage { access: b.access };
                    (0, b.binding, Some(b.name.to_owned()), kind, Some(b.dtype))
                })
                .collect();
            assert_eq!(declared, registered, "{}", kernel.name);
        }
    }

    #[test]
    fn kernels_are_found_by_name() {
        assert_eq!(get("matmul").map(|k| k.name), Some("matmul"));
        assert!(get("nope").is_none());
    }

    #[test]
    fn matmul_covers_ragged_shapes() {
        assert_eq!(matmul_workgroups(1, 1), [1, 1, 1]);
        assert_eq!(matmul_workgroups(64, 65), [2, 1, 1]);
        assert_eq!(matmul_workgroups(100, 3), [1, 2, 1]);
    }

    #[test]
    fn linear_workgroups_wrap_onto_y_and_cover_every_element() {
        assert_eq!(linear_workgroups(1, 64), [1, 1, 1]);
        assert_eq!(linear_workgroups(64 * 65535, 64), [65535, 1, 1]);
        for len in [64 * 65535 + 1, 1 << 30, (1u64 << 32) - 1] {
            let [x, y, z] = linear_workgroups(len, 64);
            assert!(x <= MAX_WORKGROUPS_PER_DIMENSION && y <= MAX_WORKGROUPS_PER_DIMENSION);
            assert!(u64::from(x) * u64::from(y) * u64::from(z) * 64 >= len, "{len}");
        }
    }
}
