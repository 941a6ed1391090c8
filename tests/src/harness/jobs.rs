//! Test jobs built from the built-in kernels, with their CPU references to check results against.

use hyphae_proto::Dtype;
use hyphae_proto::api::{BindingOverride, BindingSpec, JobRequest, TaskSpec, Tolerance, WgslJob, Workgroups};
use hyphae_proto::tensor::{Bytes, Data, to_bytes};
use hyphae_shaders::kernels;
use rand::{Rng, SeedableRng};

/// A u32 job: `tasks` tasks of `len` Collatz starting points each. Returns the request and each
/// task's input.
pub fn collatz_job(tasks: usize, len: usize, redundancy: u32, seed: u64) -> (JobRequest, Vec<Vec<u32>>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let inputs: Vec<Vec<u32>> = (0..tasks).map(|_| (0..len).map(|_| rng.gen_range(1..1_000_000)).collect()).collect();
    let k = kernels::COLLATZ;
    let workgroups = (len as u32).div_ceil(k.workgroup_size[0]);
    let specs = inputs
        .iter()
        .map(|input| TaskSpec {
            workgroups: None,
            bindings: [(
                0,
                BindingOverride {
                    data: Some(Data::Inline(Bytes(to_bytes(input, u32::to_le_bytes)))),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let job = WgslJob {
        shader: k.source.to_owned(),
        entry_point: k.entry_point.to_owned(),
        workgroups: Some(Workgroups([workgroups, 1, 1])),
        bindings: vec![
            BindingSpec { binding: 0, dtype: Dtype::U32, data: None, output: false, size: None },
            BindingSpec { binding: 1, dtype: Dtype::U32, data: None, output: true, size: Some(len as u64 * 4) },
        ],
        tasks: specs,
        redundancy: Some(redundancy),
        tolerance: None,
        credits_per_task: None,
        verify: None,
    };
    (JobRequest::Wgsl(job), inputs)
}

/// One matmul problem of an f32 job.
pub struct MatmulCase {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

/// An f32 job: `tasks` matmuls of varied, ragged shapes, each side drawn from `sides`.
pub fn matmul_job(
    tasks: usize,
    sides: std::ops::RangeInclusive<usize>,
    redundancy: u32,
    seed: u64,
) -> (JobRequest, Vec<MatmulCase>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let cases: Vec<MatmulCase> = (0..tasks)
        .map(|_| {
            let (m, n, k) = (rng.gen_range(sides.clone()), rng.gen_range(sides.clone()), rng.gen_range(sides.clone()));
            let a = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            MatmulCase { m, n, k, a, b }
        })
        .collect();
    let kernel = kernels::MATMUL;
    let specs = cases
        .iter()
        .map(|c| {
            let tile = kernels::MATMUL_TILE as usize;
            let wg = Workgroups([c.n.div_ceil(tile) as u32, c.m.div_ceil(tile) as u32, 1]);
            let dims = [c.m as u32, c.n as u32, c.k as u32];
            let inline = |bytes| Some(Data::Inline(Bytes(bytes)));
            let binding =
                |dtype, data, output, size| BindingOverride { dtype: Some(dtype), data, output: Some(output), size };
            TaskSpec {
                workgroups: Some(wg),
                bindings: [
                    (0, binding(Dtype::U32, inline(to_bytes(&dims, u32::to_le_bytes)), false, None)),
                    (1, binding(Dtype::F32, inline(to_bytes(&c.a, f32::to_le_bytes)), false, None)),
                    (2, binding(Dtype::F32, inline(to_bytes(&c.b, f32::to_le_bytes)), false, None)),
                    (3, binding(Dtype::F32, None, true, Some((c.m * c.n * 4) as u64))),
                ]
                .into_iter()
                .collect(),
            }
        })
        .collect();
    let job = WgslJob {
        shader: kernel.source.to_owned(),
        entry_point: kernel.entry_point.to_owned(),
        workgroups: None,
        bindings: Vec::new(),
        tasks: specs,
        redundancy: Some(redundancy),
        tolerance: Some(Tolerance { rel: 1e-4, abs: 1e-5 }),
        credits_per_task: Some("0.5".parse().expect("a credit amount")),
        verify: None,
    };
    (JobRequest::Wgsl(job), cases)
}

/// Corrupts a buffer the way a liar would: flips an exponent bit of every element, so floats are
/// far off (not within any tolerance) and integers are off by 2^30.
pub fn perturb(buffer: &mut [u8]) {
    for element in buffer.chunks_exact_mut(4) {
        element[3] ^= 0x40;
    }
}
