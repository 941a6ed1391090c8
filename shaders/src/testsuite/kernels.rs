//! Every built-in kernel against its CPU reference, on ragged and edge shapes.

use hyphae_proto::frame::Access;
use hyphae_proto::tensor::to_bytes;

use super::{Failure, Lcg, compare_f32, compare_u32, exec, single};
use crate::executor::{Contents, Gpu, Launch, LaunchBinding};
use crate::kernels::{self, COLLATZ, MATMUL, VECTOR_ADD};
use crate::reference;

fn read(binding: u32, bytes: &[u8]) -> LaunchBinding<'_> {
    LaunchBinding { binding, access: Access::Read, contents: Contents::Bytes(bytes) }
}

fn zeros(binding: u32, size: u64) -> LaunchBinding<'static> {
    LaunchBinding { binding, access: Access::ReadWrite, contents: Contents::Zeros(size) }
}

/// M×N×K shapes: single elements, sizes around the 64×64 tile, and shapes far from square.
pub const MATMUL_SHAPES: &[(u32, u32, u32)] =
    &[(1, 1, 1), (17, 33, 5), (64, 64, 64), (100, 3, 257), (3, 100, 70), (65, 129, 1), (130, 67, 33)];

pub async fn matmul_matches_reference_on_ragged_shapes(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(1);
    for &(m, n, k) in MATMUL_SHAPES {
        let case = format!("matmul {m}×{n}×{k}");
        let (mu, nu, ku) = (m as usize, n as usize, k as usize);
        let a: Vec<f32> = (0..mu * ku).map(|_| rng.dyadic()).collect();
        let b: Vec<f32> = (0..ku * nu).map(|_| rng.dyadic()).collect();
        let want = reference::matmul::matmul(&a, &b, mu, nu, ku);

        let dims = to_bytes(&[m, n, k], u32::to_le_bytes);
        let a_bytes = to_bytes(&a, f32::to_le_bytes);
        let b_bytes = to_bytes(&b, f32::to_le_bytes);
        let launch = Launch {
            shader: MATMUL.source,
            entry_point: MATMUL.entry_point,
            workgroups: kernels::matmul_workgroups(m, n),
            bindings: vec![read(0, &dims), read(1, &a_bytes), read(2, &b_bytes), zeros(3, u64::from(m * n) * 4)],
        };
        let outputs = gpu.run(&launch).await.map_err(exec(&case))?;
        compare_f32(&case, &single(&case, outputs)?, &want)?;
    }
    Ok(())
}

pub async fn collatz_matches_reference(gpu: &Gpu) -> Result<(), Failure> {
    let case = "collatz";
    let mut rng = Lcg::new(2);
    // Edge values first (0, overflow, the largest step counts below 10^6), then a run of
    // small numbers and random ones; 5003 + 9 elements is not a multiple of the workgroup.
    let mut input = vec![0, 1, 2, 27, 97, 77_031, 837_799, 0x5555_5555, u32::MAX, 1 << 31];
    input.extend(1..=5000u32);
    input.extend((0..3).map(|_| rng.next_u32()));
    let want = reference::collatz::collatz(&input);

    let input_bytes = to_bytes(&input, u32::to_le_bytes);
    let launch = Launch {
        shader: COLLATZ.source,
        entry_point: COLLATZ.entry_point,
        workgroups: kernels::linear_workgroups(input.len() as u64, COLLATZ.workgroup_size[0]),
        bindings: vec![read(0, &input_bytes), zeros(1, input_bytes.len() as u64)],
    };
    let outputs = gpu.run(&launch).await.map_err(exec(case))?;
    compare_u32(case, &single(case, outputs)?, &want)
}

pub async fn vector_add_matches_reference(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(3);
    for len in [1usize, 63, 64, 65, 1000] {
        let case = format!("vector_add len {len}");
        let a: Vec<f32> = (0..len).map(|_| rng.uniform(1000.0)).collect();
        let b: Vec<f32> = (0..len).map(|_| rng.uniform(1000.0)).collect();
        let want = reference::vector_add::vector_add(&a, &b);

        let a_bytes = to_bytes(&a, f32::to_le_bytes);
        let b_bytes = to_bytes(&b, f32::to_le_bytes);
        let launch = Launch {
            shader: VECTOR_ADD.source,
            entry_point: VECTOR_ADD.entry_point,
            workgroups: kernels::linear_workgroups(len as u64, VECTOR_ADD.workgroup_size[0]),
            bindings: vec![read(0, &a_bytes), read(1, &b_bytes), zeros(2, len as u64 * 4)],
        };
        let outputs = gpu.run(&launch).await.map_err(exec(&case))?;
        compare_f32(&case, &single(&case, outputs)?, &want)?;
    }
    Ok(())
}
