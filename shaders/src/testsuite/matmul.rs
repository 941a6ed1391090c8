//! The tuned matmul family ([`crate::matmul`]) on a real device: every variant of both layouts
//! gives exactly the bytes of the built-in kernel (so workers that tuned differently agree on a
//! digest) and matches the CPU reference, on ragged shapes (scalar access) and shapes whose K
//! and N are multiples of 4 (vec4 access); and the plan the tuner hands out runs in a program.
//!
//! Data here is uniformly random, not dyadic: a variant that summed in another order would
//! round differently and fail the bitwise check.

use hyphae_proto::frame::Access;
use hyphae_proto::tensor::{f32s, to_bytes};

use super::{Failure, Lcg, Tolerance, compare_f32_values, exec, single, unexpected};
use crate::executor::{Contents, Gpu, Launch, LaunchBinding, Program};
use crate::matmul::{Layout, Scheme, Timing, Variant};
use crate::reference;

/// f32 sums of up to 300 products of values in [-1, 1] against the reference (an fma chain in
/// the same order for `matmul`, f64 sums for `linear`).
pub const MATMUL_VARIANT_TOLERANCE: Tolerance = Tolerance { abs: 1e-4, rel: 1e-4 };

/// M×N×K: size-1 edges, K shorter than one K step and not a multiple of it, M and N around
/// every tile size (64, 128), and shapes with K and N multiples of 4 (vec4 variants) whose M,
/// N or K are still ragged against the tiles.
pub const VARIANT_SHAPES: &[(u32, u32, u32)] = &[
    (1, 1, 1),
    (17, 33, 5),
    (100, 3, 257),
    (130, 67, 33),
    (65, 129, 9),
    (4, 4, 4),
    (64, 64, 64),
    (128, 128, 16),
    (131, 260, 20),
    (200, 132, 36),
    (63, 8, 300),
];

/// One product's operands, as bytes.
struct Operands {
    params: Vec<u8>,
    a: Vec<u8>,
    b: Vec<u8>,
    bias: Vec<u8>,
    want: Vec<f32>,
}

fn operands(rng: &mut Lcg, layout: Layout, (m, n, k): (u32, u32, u32), has_bias: bool) -> Operands {
    let (mu, nu, ku) = (m as usize, n as usize, k as usize);
    let a: Vec<f32> = (0..mu * ku).map(|_| rng.uniform(1.0)).collect();
    let b: Vec<f32> = (0..ku * nu).map(|_| rng.uniform(1.0)).collect();
    let bias: Vec<f32> = (0..nu).map(|_| rng.uniform(1.0)).collect();
    let want = match layout {
        Layout::Matmul => reference::matmul::matmul(&a, &b, mu, nu, ku),
        Layout::Linear => reference::matmul_bias::matmul_bias(&a, &b, has_bias.then_some(bias.as_slice()), mu, nu, ku),
    };
    // Without a bias, a 4-byte buffer stands in for the unread binding.
    let bias = if has_bias { bias } else { vec![0.0] };
    Operands {
        params: to_bytes(&layout.params(m, n, k, has_bias), u32::to_le_bytes),
        a: to_bytes(&a, f32::to_le_bytes),
        b: to_bytes(&b, f32::to_le_bytes),
        bias: to_bytes(&bias, f32::to_le_bytes),
        want,
    }
}

fn read(binding: u32, bytes: &[u8]) -> LaunchBinding<'_> {
    LaunchBinding { binding, access: Access::Read, contents: Contents::Bytes(bytes) }
}

async fn run_variant(
    gpu: &Gpu,
    case: &str,
    variant: Variant,
    (m, n): (u32, u32),
    ops: &Operands,
) -> Result<Vec<u8>, Failure> {
    let mut bindings = vec![read(0, &ops.params), read(1, &ops.a), read(2, &ops.b)];
    if variant.layout == Layout::Linear {
        bindings.push(read(3, &ops.bias));
    }
    bindings.push(LaunchBinding {
        binding: bindings.len() as u32,
        access: Access::ReadWrite,
        contents: Contents::Zeros(u64::from(m * n) * 4),
    });
    let source = variant.source();
    let launch = Launch { shader: &source, entry_point: "main", workgroups: variant.workgroups(m, n), bindings };
    single(case, gpu.run(&launch).await.map_err(exec(case))?)
}

pub async fn matmul_variants_agree_bitwise_and_match_reference(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(21);
    let limits = gpu.limits();
    for layout in Layout::ALL {
        for (index, &(m, n, k)) in VARIANT_SHAPES.iter().enumerate() {
            let has_bias = layout == Layout::Linear && index % 3 != 2;
            let ops = operands(&mut rng, layout, (m, n, k), has_bias);
            let builtin = Variant::for_shape(layout, Scheme::Registers, n, k);
            let case = format!("{} {m}×{n}×{k} bias {has_bias}", builtin.name());
            let want_bytes = run_variant(gpu, &case, builtin, (m, n), &ops).await?;
            compare_f32_values(&case, &f32s(&want_bytes).collect::<Vec<_>>(), &ops.want, MATMUL_VARIANT_TOLERANCE)?;

            let aligned = n.is_multiple_of(4) && k.is_multiple_of(4);
            let variants = Variant::all(layout).into_iter().filter(|v| v.scheme.fits(&limits) && (aligned || !v.vec4));
            for variant in variants.filter(|v| v.scheme != Scheme::Registers) {
                let case = format!("{} {m}×{n}×{k} bias {has_bias}", variant.name());
                let got = run_variant(gpu, &case, variant, (m, n), &ops).await?;
                if let Some(index) = got.chunks(4).zip(want_bytes.chunks(4)).position(|(g, w)| g != w) {
                    let element = |bytes: &[u8]| f32s(&bytes[index * 4..index * 4 + 4]).next().unwrap_or(f32::NAN);
                    return Err(Failure::Mismatch {
                        case: format!("{case}: not bitwise equal to {}", builtin.name()),
                        index,
                        got: format!("{:e}", element(&got)),
                        want: format!("{:e}", element(&want_bytes)),
                    });
                }
                if got.len() != want_bytes.len() {
                    return Err(Failure::Length { case, want: want_bytes.len(), got: got.len() });
                }
            }
        }
    }
    Ok(())
}

/// The plan [`Gpu::matmul_plan`] hands out (the variant tuned for this adapter, vec4 or not as
/// the shape allows) runs in a program and matches the reference, for both layouts.
pub async fn tuned_matmul_plan_matches_reference(gpu: &Gpu) -> Result<(), Failure> {
    let mut rng = Lcg::new(22);
    for layout in Layout::ALL {
        for (m, n, k) in [(96, 64, 40), (33, 19, 7)] {
            let ops = operands(&mut rng, layout, (m, n, k), true);
            let plan = gpu.matmul_plan(layout, m, n, k).await.map_err(exec("matmul_plan"))?;
            let case = format!("plan {} {m}×{n}×{k}", plan.variant.name());
            if plan.variant.vec4
                != (n.is_multiple_of(4) && k.is_multiple_of(4) && plan.variant.scheme != Scheme::Registers)
            {
                return Err(unexpected(&case, "vec4 access does not follow the shape"));
            }
            let upload = async |bytes: &[u8]| gpu.upload(bytes).await.map_err(exec(&case));
            let (params, a, b, bias) =
                (upload(&ops.params).await?, upload(&ops.a).await?, upload(&ops.b).await?, upload(&ops.bias).await?);
            let c = gpu.buffer(u64::from(m * n) * 4).await.map_err(exec(&case))?;
            let buffers = match layout {
                Layout::Matmul => vec![(0, &params), (1, &a), (2, &b), (3, &c)],
                Layout::Linear => vec![(0, &params), (1, &a), (2, &b), (3, &bias), (4, &c)],
            };
            let mut program = Program::new();
            program.dispatch(gpu, &plan.pipeline, &buffers, plan.workgroups).await.map_err(exec(&case))?;
            let got = single(&case, gpu.execute(&program, &[], &[&c]).await.map_err(exec(&case))?)?;
            compare_f32_values(&case, &f32s(&got).collect::<Vec<_>>(), &ops.want, MATMUL_VARIANT_TOLERANCE)?;
        }
    }
    Ok(())
}

/// Tuning with [`Timing::Always`] times every candidate that fits (on any adapter) and keeps
/// the fastest of those it timed; the plan then runs the kept scheme. Timings are not checked,
/// only that the choice follows them.
pub async fn forced_tuning_keeps_the_fastest_candidate(gpu: &Gpu) -> Result<(), Failure> {
    let case = "tune linear";
    let report = gpu.tune_matmul(Layout::Linear, Timing::Always).await.map_err(exec(case))?;
    let fastest = report
        .measured
        .iter()
        .filter_map(|m| m.seconds.as_ref().ok().map(|&s| (m.scheme, s)))
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(scheme, _)| scheme);
    if fastest != Some(report.chosen) {
        return Err(unexpected(case, format!("chose {:?} from {:?}", report.chosen, report.measured)));
    }
    let plan = gpu.matmul_plan(Layout::Linear, 64, 64, 64).await.map_err(exec(case))?;
    if plan.variant.scheme != report.chosen {
        return Err(unexpected(case, format!("the plan runs {:?}, not the tuned {:?}", plan.variant, report.chosen)));
    }
    Ok(())
}
