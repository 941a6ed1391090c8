//! The executor's promises, checked on a real device: errors are typed and never panics or
//! zeroed buffers, outputs come back in binding order at their declared size, pooled outputs
//! are cleared, pipelines are cached only when they compiled.

use hyphae_proto::frame::Access;
use hyphae_proto::tensor::{to_bytes, u32s};

use super::{Failure, compare_f32, compare_u32, exec, single, unexpected};
use crate::ExecError;
use crate::executor::{Contents, Gpu, Launch, LaunchBinding, Program};
use crate::kernels::{self, VECTOR_ADD};

/// Copies `src` to `dst` element-wise; one invocation per element.
const COPY: &str = "\
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&dst)) {
        dst[id.x] = src[id.x];
    }
}
";

fn read(binding: u32, bytes: &[u8]) -> LaunchBinding<'_> {
    LaunchBinding { binding, access: Access::Read, contents: Contents::Bytes(bytes) }
}

fn zeros(binding: u32, size: u64) -> LaunchBinding<'static> {
    LaunchBinding { binding, access: Access::ReadWrite, contents: Contents::Zeros(size) }
}

fn launch<'a>(shader: &'a str, bindings: Vec<LaunchBinding<'a>>) -> Launch<'a> {
    Launch { shader, entry_point: "main", workgroups: [1, 1, 1], bindings }
}

pub async fn invalid_shader_is_an_error_not_a_panic(gpu: &Gpu) -> Result<(), Failure> {
    let input = [0u8; 4];
    let cases = [
        ("syntax error", "@compute @workgroup_size(1) fn main() { let x = ; }"),
        (
            "type mismatch",
            "@group(0) @binding(0) var<storage, read> src: array<u32>;\n\
             @group(0) @binding(1) var<storage, read_write> dst: array<u32>;\n\
             @compute @workgroup_size(1) fn main() { dst[0] = 1.5f; }",
        ),
    ];
    for (case, shader) in cases {
        match gpu.run(&launch(shader, vec![read(0, &input), zeros(1, 4)])).await {
            Err(ExecError::InvalidShader(error)) if error.line.is_some() => {}
            other => {
                return Err(unexpected(case, format!("want InvalidShader with a line, got {other:?}")));
            }
        }
    }
    Ok(())
}

/// A shader naga accepts but wgpu refuses when it builds the pipeline (here: an `override`
/// with no value, which hyphae launches cannot supply) is `InvalidShader`, captured from wgpu's
/// error scope, and is not cached.
pub async fn device_rejected_shader_is_invalid_shader_and_not_cached(gpu: &Gpu) -> Result<(), Failure> {
    let case = "override without a value";
    let shader = "override scale: u32;\n\
                  @group(0) @binding(0) var<storage, read_write> dst: array<u32>;\n\
                  @compute @workgroup_size(1) fn main() { dst[0] = scale; }";
    let cached_before = gpu.cache_len();
    for _ in 0..2 {
        match gpu.run(&launch(shader, vec![zeros(0, 4)])).await {
            Err(ExecError::InvalidShader(_)) => {}
            other => {
                return Err(unexpected(case, format!("want InvalidShader, got {other:?}")));
            }
        }
    }
    if gpu.cache_len() != cached_before {
        return Err(unexpected(case, "a pipeline that failed to compile was cached"));
    }
    Ok(())
}

/// More `var<workgroup>` memory than the device has is `ExceedsLimits` (wgpu-core itself does
/// not check it), found before any pipeline is built.
pub async fn workgroup_memory_over_the_limit_exceeds_limits(gpu: &Gpu) -> Result<(), Failure> {
    let case = "workgroup memory over the limit";
    let words = gpu.limits().max_compute_workgroup_storage_size / 4 + 1024;
    let shader = format!(
        "var<workgroup> scratch: array<u32, {words}>;\n\
         @group(0) @binding(0) var<storage, read_write> dst: array<u32>;\n\
         @compute @workgroup_size(1) fn main() {{ scratch[0] = 1u; dst[0] = scratch[{last}]; }}",
        last = words - 1
    );
    let cached_before = gpu.cache_len();
    match gpu.run(&launch(&shader, vec![zeros(0, 4)])).await {
        Err(ExecError::ExceedsLimits { what: "workgroup storage size", .. }) => {}
        other => {
            return Err(unexpected(case, format!("want ExceedsLimits, got {other:?}")));
        }
    }
    if gpu.cache_len() != cached_before {
        return Err(unexpected(case, "a pipeline over the limits was cached"));
    }
    Ok(())
}

/// Every way a launch can disagree with its shader is `InvalidLaunch`, before wgpu sees it.
pub async fn bindings_not_matching_the_shader_are_typed_errors(gpu: &Gpu) -> Result<(), Failure> {
    let input = to_bytes(&[1u32, 2, 3, 4], u32::to_le_bytes);
    let fixed = "@group(0) @binding(0) var<storage, read> src: array<u32, 16>;\n\
                 @group(0) @binding(1) var<storage, read_write> dst: array<u32>;\n\
                 @compute @workgroup_size(1) fn main() { dst[0] = src[15]; }";
    let uniform = "@group(0) @binding(0) var<uniform> src: vec4<u32>;\n\
                   @group(0) @binding(1) var<storage, read_write> dst: array<u32>;\n\
                   @compute @workgroup_size(1) fn main() { dst[0] = src.x; }";
    let group1 = "@group(1) @binding(0) var<storage, read> src: array<u32>;\n\
                  @group(0) @binding(1) var<storage, read_write> dst: array<u32>;\n\
                  @compute @workgroup_size(1) fn main() { dst[0] = src[0]; }";
    let cases: Vec<(&str, Launch)> = vec![
        ("missing binding", launch(COPY, vec![zeros(1, 16)])),
        ("extra binding", launch(COPY, vec![read(0, &input), zeros(1, 16), zeros(2, 16)])),
        ("read_write passed as read", launch(COPY, vec![read(0, &input), read(1, &input)])),
        ("read passed as read_write", launch(COPY, vec![zeros(0, 16), zeros(1, 16)])),
        ("buffer smaller than a fixed-size array", launch(fixed, vec![read(0, &input), zeros(1, 4)])),
        ("uniform binding", launch(uniform, vec![read(0, &input), zeros(1, 4)])),
        ("binding outside group 0", launch(group1, vec![zeros(1, 4)])),
        ("size not a multiple of 4", launch(COPY, vec![read(0, &input[..6]), zeros(1, 16)])),
        ("empty binding", launch(COPY, vec![read(0, &[]), zeros(1, 16)])),
        ("duplicate binding", launch(COPY, vec![read(0, &input), zeros(1, 16), zeros(1, 16)])),
        ("unknown entry point", Launch { entry_point: "nope", ..launch(COPY, vec![read(0, &input), zeros(1, 16)]) }),
    ];
    for (case, bad) in cases {
        match gpu.run(&bad).await {
            Err(ExecError::InvalidLaunch(_)) => {}
            other => {
                return Err(unexpected(case, format!("want InvalidLaunch, got {other:?}")));
            }
        }
    }
    Ok(())
}

/// Limits are checked before anything is allocated.
pub async fn oversized_binding_exceeds_limits_before_allocation(gpu: &Gpu) -> Result<(), Failure> {
    let case = "binding over max_storage_buffer_binding_size";
    let created_before = gpu.stats().buffers.created;
    let too_big = gpu.limits().max_storage_buffer_binding_size + 4;
    let input = [0u8; 4];
    match gpu.run(&launch(COPY, vec![read(0, &input), zeros(1, too_big)])).await {
        Err(ExecError::ExceedsLimits { requested, .. }) if requested == too_big => {}
        other => {
            return Err(unexpected(case, format!("want ExceedsLimits, got {other:?}")));
        }
    }
    if gpu.stats().buffers.created != created_before {
        return Err(unexpected(case, "buffers were allocated for a launch over the limits"));
    }
    Ok(())
}

/// Outputs come back in binding order (whatever the launch's order), each at exactly its
/// declared size, and the shader sees that size in `arrayLength`, not the pool's size class.
pub async fn outputs_come_back_in_binding_order_at_declared_size(gpu: &Gpu) -> Result<(), Failure> {
    let case = "two outputs";
    let shader = "\
@group(0) @binding(0) var<storage, read_write> first: array<u32>;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> second: array<u32>;
@compute @workgroup_size(1) fn main() {
    for (var i = 0u; i < arrayLength(&first); i++) { first[i] = arrayLength(&first); }
    for (var i = 0u; i < arrayLength(&second); i++) { second[i] = input[0] + i; }
}
";
    let input = 100u32.to_le_bytes();
    let bindings = vec![zeros(2, 20), read(1, &input), zeros(0, 12)];
    let outputs = gpu.run(&launch(shader, bindings)).await.map_err(exec(case))?;
    if outputs.len() != 2 {
        return Err(Failure::Length { case: case.into(), want: 2, got: outputs.len() });
    }
    compare_u32(case, &outputs[0], &[3, 3, 3])?;
    compare_u32(case, &outputs[1], &[100, 101, 102, 103, 104])
}

/// A zero-initialised output served from the pool is zero again, even though the buffer
/// held the previous launch's data. Pins that the buffer really was reused.
pub async fn reused_zero_output_is_cleared(gpu: &Gpu) -> Result<(), Failure> {
    let case = "pooled output";
    let shader = "\
@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < params[0] && id.x < arrayLength(&out)) {
        out[id.x] = params[1];
    }
}
";
    let fill = to_bytes(&[256u32, 0xdead_beef], u32::to_le_bytes);
    let first = gpu
        .run(&Launch { workgroups: [4, 1, 1], ..launch(shader, vec![read(0, &fill), zeros(1, 1024)]) })
        .await
        .map_err(exec(case))?;
    compare_u32(case, &single(case, first)?, &[0xdead_beef; 256])?;

    let reused_before = gpu.stats().buffers.reused;
    let nothing = to_bytes(&[0u32, 0xdead_beef], u32::to_le_bytes);
    // 1000 bytes: another size, the same 1024-byte size class.
    let second = gpu
        .run(&Launch { workgroups: [4, 1, 1], ..launch(shader, vec![read(0, &nothing), zeros(1, 1000)]) })
        .await
        .map_err(exec(case))?;
    let second = single(case, second)?;
    if gpu.stats().buffers.reused < reused_before + 3 {
        return Err(unexpected(case, "the second launch did not reuse the pooled buffers"));
    }
    if let Some(index) = u32s(&second).position(|v| v != 0) {
        return Err(unexpected(case, format!("element {index} of a zeroed output was not cleared")));
    }
    compare_u32(case, &second, &[0; 250])
}

/// The second launch of the same shader, entry point and layout is a cache hit.
pub async fn pipeline_cache_is_hit_on_second_run(gpu: &Gpu) -> Result<(), Failure> {
    let case = "same shader twice";
    // A shader of its own, so no earlier check warmed the cache for it.
    let shader = format!("{COPY}\n// pipeline_cache_is_hit_on_second_run\n");
    let input = to_bytes(&[5u32, 6], u32::to_le_bytes);
    let before = gpu.stats().pipelines;
    for _ in 0..2 {
        let outputs = gpu.run(&launch(&shader, vec![read(0, &input), zeros(1, 8)])).await.map_err(exec(case))?;
        compare_u32(case, &single(case, outputs)?, &[5, 6])?;
    }
    let after = gpu.stats().pipelines;
    if (after.misses - before.misses, after.hits - before.hits) != (1, 1) {
        return Err(unexpected(case, format!("want 1 miss then 1 hit, got {before:?} → {after:?}")));
    }
    if gpu.cache_len() == 0 {
        return Err(unexpected(case, "cache is empty after a successful launch"));
    }
    Ok(())
}

/// A barrier WGSL's uniformity analysis cannot prove every invocation reaches: `lid.x` is
/// non-uniform, so the `if` is non-uniform control flow, even though with 64 invocations every
/// one of them takes the branch. The condition keeps the barrier uniform at run time on purpose:
/// where a compiler accepts the shader (naga), it must run without undefined behaviour and give
/// a checkable answer. Each invocation writes its slot, waits, and reads its mirror slot.
const BARRIER_IN_NON_UNIFORM_FLOW: &str = "\
var<workgroup> tile: array<u32, 64>;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    tile[lid.x] = lid.x + 1u;
    if (lid.x < 64u) {
        workgroupBarrier();
    }
    out[lid.x] = tile[63u - lid.x];
}
";

/// What a backend does with a `workgroupBarrier()` in non-uniform control flow, declared per
/// backend with the reason (STYLE.md: known backend differences are listed, never skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierUniformity {
    /// The WGSL spec makes a barrier in non-uniform control flow a shader-creation error, and
    /// browsers enforce it: Chrome's compiler (Tint) refuses it in `createShaderModule`,
    /// whatever the GPU. The executor must report that as `InvalidShader`, not panic or
    /// return zeroed buffers.
    Rejected,
    /// naga 30 does not apply the uniformity analysis to barriers, so wgpu's native backends
    /// (lavapipe included) compile and run the shader. Since the barrier is uniform at run
    /// time, the result is well defined and checked.
    Accepted,
}

impl BarrierUniformity {
    /// The behaviour expected of `gpu`'s backend (`AdapterInfo::backend`).
    pub fn of(gpu: &Gpu) -> BarrierUniformity {
        match gpu.adapter_info().backend.as_str() {
            "browser_webgpu" => BarrierUniformity::Rejected,
            _ => BarrierUniformity::Accepted,
        }
    }
}

/// The executor validates with naga, which accepts a `workgroupBarrier()` in non-uniform
/// control flow; a browser's compiler refuses the same shader. That refusal must come back
/// from `Gpu::run` as `InvalidShader` (captured from the error scope), uncached, and leave the
/// `Gpu` usable. Where the backend accepts the shader, it must compute the right answer.
pub async fn barrier_in_non_uniform_control_flow_is_rejected_where_the_backend_checks_uniformity(
    gpu: &Gpu,
) -> Result<(), Failure> {
    let case = "workgroupBarrier in non-uniform control flow";
    crate::validate(BARRIER_IN_NON_UNIFORM_FLOW).map_err(|error| {
        unexpected(case, format!("naga no longer accepts the shader ({error}); revisit this check"))
    })?;
    let cached_before = gpu.cache_len();
    let result = gpu.run(&launch(BARRIER_IN_NON_UNIFORM_FLOW, vec![zeros(0, 64 * 4)])).await;
    match (BarrierUniformity::of(gpu), result) {
        (BarrierUniformity::Rejected, Err(ExecError::InvalidShader(_))) => {
            if gpu.cache_len() != cached_before {
                return Err(unexpected(case, "a pipeline the device refused was cached"));
            }
        }
        (BarrierUniformity::Rejected, other) => {
            return Err(unexpected(case, format!("want InvalidShader from the device's compiler, got {other:?}")));
        }
        (BarrierUniformity::Accepted, result) => {
            let want: Vec<u32> = (1..=64).rev().collect();
            compare_u32(case, &single(case, result.map_err(exec(case))?)?, &want)?;
        }
    }
    // The refusal was the shader's fault alone: the same `Gpu` still runs launches.
    let case = "a launch after the refused shader";
    let input = to_bytes(&[7u32, 8], u32::to_le_bytes);
    let outputs = gpu.run(&launch(COPY, vec![read(0, &input), zeros(1, 8)])).await.map_err(exec(case))?;
    compare_u32(case, &single(case, outputs)?, &[7, 8])
}

/// A program of two dispatches (c = a + b, then d = c + b) keeps `c` on the GPU and reads back
/// only `d`; run again with a new `a` written, it reuses everything it recorded. Pooled buffers
/// go back to the pool once the program and every handle are dropped.
pub async fn program_chains_dispatches_with_one_readback(gpu: &Gpu) -> Result<(), Failure> {
    let case = "vector_add twice in one program";
    let len = 1000usize;
    let a: Vec<f32> = (0..len).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..len).map(|i| 0.5 * i as f32).collect();
    let add = gpu.kernel_pipeline(&VECTOR_ADD).await.map_err(exec(case))?;
    let a_buffer = gpu.upload(&to_bytes(&a, f32::to_le_bytes)).await.map_err(exec(case))?;
    let b_buffer = gpu.upload(&to_bytes(&b, f32::to_le_bytes)).await.map_err(exec(case))?;
    let c_buffer = gpu.buffer(len as u64 * 4).await.map_err(exec(case))?;
    let d_buffer = gpu.buffer(len as u64 * 4).await.map_err(exec(case))?;
    let workgroups = kernels::linear_workgroups(len as u64, VECTOR_ADD.workgroup_size[0]);
    let mut program = Program::new();
    program
        .dispatch(gpu, &add, &[(0, &a_buffer), (1, &b_buffer), (2, &c_buffer)], workgroups)
        .await
        .map_err(exec(case))?;
    program
        .dispatch(gpu, &add, &[(0, &c_buffer), (1, &b_buffer), (2, &d_buffer)], workgroups)
        .await
        .map_err(exec(case))?;
    let outputs = gpu.execute(&program, &[], &[&d_buffer]).await.map_err(exec(case))?;
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + 2.0 * y).collect();
    compare_f32(case, &single(case, outputs)?, &want)?;
    // Warm the staging pool for two readbacks, so the rerun below can be held to no allocation.
    gpu.execute(&program, &[], &[&d_buffer, &c_buffer]).await.map_err(exec(case))?;

    let case = "the same program with a new input";
    let a2: Vec<f32> = (0..len).map(|i| -(i as f32)).collect();
    let a2_bytes = to_bytes(&a2, f32::to_le_bytes);
    let created = gpu.stats().buffers.created;
    let outputs =
        gpu.execute(&program, &[(&a_buffer, &a2_bytes)], &[&d_buffer, &c_buffer]).await.map_err(exec(case))?;
    if outputs.len() != 2 {
        return Err(Failure::Length { case: case.to_owned(), want: 2, got: outputs.len() });
    }
    let want_d: Vec<f32> = a2.iter().zip(&b).map(|(x, y)| x + 2.0 * y).collect();
    let want_c: Vec<f32> = a2.iter().zip(&b).map(|(x, y)| x + y).collect();
    compare_f32(case, &outputs[0], &want_d)?;
    compare_f32(case, &outputs[1], &want_c)?;
    if gpu.stats().buffers.created != created {
        return Err(unexpected(case, "running a recorded program again allocated storage"));
    }

    let case = "buffers back to the pool";
    let idle = gpu.stats().buffers.idle_buffers;
    drop(program);
    drop((c_buffer, d_buffer));
    if gpu.stats().buffers.idle_buffers < idle + 2 {
        return Err(unexpected(case, "dropped pooled buffers did not return to the pool"));
    }
    Ok(())
}

/// Misusing the program API is a typed error before wgpu sees it, never a panic.
pub async fn program_misuse_is_a_typed_error(gpu: &Gpu) -> Result<(), Failure> {
    let case = "program misuse";
    let add = gpu.kernel_pipeline(&VECTOR_ADD).await.map_err(exec(case))?;
    let small = gpu.buffer(16).await.map_err(exec(case))?;
    let mut program = Program::new();
    let wrong_bindings = program.dispatch(gpu, &add, &[(0, &small), (1, &small)], [1, 1, 1]).await;
    if !matches!(wrong_bindings, Err(ExecError::InvalidLaunch(_))) {
        return Err(unexpected("a missing binding", format!("want InvalidLaunch, got {wrong_bindings:?}")));
    }
    let too_many = gpu.limits().max_compute_workgroups_per_dimension + 1;
    let wide = program.dispatch(gpu, &add, &[(0, &small), (1, &small), (2, &small)], [too_many, 1, 1]).await;
    if !matches!(wide, Err(ExecError::ExceedsLimits { what: "workgroups per dimension", .. })) {
        return Err(unexpected("too many workgroups", format!("want ExceedsLimits, got {wide:?}")));
    }
    if !program.is_empty() {
        return Err(unexpected(case, "a refused dispatch was recorded"));
    }
    for (what, size) in [("an empty buffer", 0), ("a buffer of 6 bytes", 6)] {
        let result = gpu.buffer(size).await;
        if !matches!(result, Err(ExecError::InvalidLaunch(_))) {
            return Err(unexpected(what, format!("want InvalidLaunch, got {result:?}")));
        }
    }
    let huge = gpu.buffer(gpu.limits().max_storage_buffer_binding_size + 4).await;
    if !matches!(huge, Err(ExecError::ExceedsLimits { .. })) {
        return Err(unexpected("a buffer over the limits", format!("want ExceedsLimits, got {huge:?}")));
    }
    let overflow = gpu.execute(&program, &[(&small, &[0u8; 32])], &[&small]).await;
    if !matches!(overflow, Err(ExecError::InvalidLaunch(_))) {
        return Err(unexpected("a write past the buffer", format!("want InvalidLaunch, got {overflow:?}")));
    }
    let invalid = gpu.pipeline("fn main( {", "main", &[(0, Access::ReadWrite)]).await;
    if !matches!(invalid, Err(ExecError::InvalidShader(_))) {
        return Err(unexpected("invalid WGSL", format!("want InvalidShader, got {invalid:?}")));
    }
    // The empty program still runs and reads back what was written.
    let bytes = to_bytes(&[1u32, 2, 3, 4], u32::to_le_bytes);
    let outputs = gpu.execute(&program, &[(&small, &bytes)], &[&small]).await.map_err(exec(case))?;
    compare_u32(case, &single(case, outputs)?, &[1, 2, 3, 4])
}
