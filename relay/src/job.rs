//! Turning a `POST /v1/jobs` body into a [`ValidatedJob`]: the WGSL through naga, every task's
//! bindings resolved against the job's defaults and checked against the shader's `@group(0)`
//! storage buffers, sizes against the relay's limits. The scheduler only ever sees validated jobs.

use std::collections::{BTreeMap, HashMap};

use hyphae_proto::api::{BindingOverride, BindingSpec, Check, MatmulCheck, Tolerance, WgslJob, Workgroups};
use hyphae_proto::frame::{Access, Source, TaskBinding};
use hyphae_proto::tensor::{Bytes, Data, u32s};
use hyphae_proto::{BlobId, Credits, Dtype};
use hyphae_shaders::{BindingKind, EntryPointInfo, ShaderError, ShaderInfo};

use crate::store::records::{JobWork, TaskBody, TaskRecord};
use crate::verify::freivalds;

/// What the relay accepts in one job.
#[derive(Debug, Clone)]
pub struct JobLimits {
    pub max_shader_bytes: usize,
    pub max_binding_bytes: u64,
    pub max_tasks: usize,
    pub max_redundancy: u32,
    pub default_redundancy: u32,
    pub default_credits_per_task: Credits,
    /// WebGPU's default `maxComputeWorkgroupsPerDimension`: every worker can dispatch this much.
    pub max_workgroups_per_dimension: u32,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_shader_bytes: 1 << 20,
            max_binding_bytes: 128 << 20,
            max_tasks: 100_000,
            max_redundancy: 8,
            default_redundancy: 2,
            default_credits_per_task: Credits::whole(1),
            max_workgroups_per_dimension: 65_535,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    InvalidWgsl(#[from] ShaderError),
    #[error("{0}")]
    BindingMismatch(String),
    #[error("{0}")]
    Invalid(String),
}

/// A job the scheduler can run as is.
#[derive(Debug, Clone)]
pub struct ValidatedJob {
    pub work: JobWork,
    pub redundancy: u32,
    pub tolerance: Tolerance,
    pub credits_per_task: Credits,
    pub tasks: Vec<TaskRecord>,
    /// Shard jobs feeding another shard: workers keep their output for the next shard's
    /// workers and send the relay only its digest. Not stored: it only matters while the
    /// request that made the job is alive.
    pub hand_off: bool,
    /// A check of each result the relay makes itself.
    pub check: Option<SelfCheck>,
}

/// A check the relay makes itself of every result of a job: one worker's result is enough when
/// it passes, so such jobs run on a single replica unless that one fails the check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SelfCheck {
    /// Freivalds' check of a matrix product (`verify::freivalds`), declared by the submitter and
    /// stored with the job.
    Matmul(MatmulCheck),
    /// Spot checks of a model shard's result (`verify::spot`): this many of the batch's
    /// sequences, drawn per result, recomputed on the relay's CPU. Not stored: shard jobs do not
    /// outlive the request that made them.
    Shard { sequences: u32 },
}

impl SelfCheck {
    /// Results checked this way are ground truth (fit to be canaries): not spot checks, which
    /// look at part of a result.
    pub fn covers_whole_result(&self) -> bool {
        matches!(self, SelfCheck::Matmul(_))
    }
}

/// Every blob a request refers to, so the caller can look their sizes up before validating.
pub fn referenced_blobs(job: &WgslJob) -> Vec<BlobId> {
    let top = job.bindings.iter().filter_map(|b| b.data.as_ref());
    let tasks = job.tasks.iter().flat_map(|t| t.bindings.values().filter_map(|b| b.data.as_ref()));
    let mut blobs: Vec<BlobId> = top
        .chain(tasks)
        .filter_map(|d| match d {
            Data::Blob { blob } => Some(*blob),
            Data::Inline(_) => None,
        })
        .collect();
    blobs.sort();
    blobs.dedup();
    blobs
}

/// Validates `job`. `blob_sizes` holds the size of every blob in [`referenced_blobs`] that exists.
pub fn validate(job: WgslJob, limits: &JobLimits, blob_sizes: &HashMap<BlobId, u64>) -> Result<ValidatedJob, JobError> {
    if job.shader.len() > limits.max_shader_bytes {
        return Err(JobError::Invalid(format!(
            "shader is {} bytes; the limit is {}",
            job.shader.len(),
            limits.max_shader_bytes
        )));
    }
    let info = hyphae_shaders::validate(&job.shader)?;
    let entry = check_entry_point(&info, &job.entry_point)?.clone();
    // Every worker would refuse it at pipeline creation: say so now, not after three failures.
    if let Some(o) = info.overrides.iter().find(|o| !o.has_default) {
        return Err(JobError::Invalid(format!(
            "override `{}` has no default value, and jobs cannot set pipeline constants; give it one",
            o.name.as_deref().unwrap_or("?")
        )));
    }
    let shader_bindings = shader_storage_bindings(&info)?;

    let redundancy = job.redundancy.unwrap_or(limits.default_redundancy);
    if redundancy == 0 || redundancy > limits.max_redundancy {
        return Err(JobError::Invalid(format!("redundancy must be 1 to {}, not {redundancy}", limits.max_redundancy)));
    }
    let tolerance = job.tolerance.unwrap_or_default();
    if !(tolerance.rel.is_finite() && tolerance.abs.is_finite() && tolerance.rel >= 0.0 && tolerance.abs >= 0.0) {
        return Err(JobError::Invalid("tolerance rel and abs must be finite and non-negative".into()));
    }

    let specs = if job.tasks.is_empty() { vec![Default::default()] } else { job.tasks };
    if specs.len() > limits.max_tasks {
        return Err(JobError::Invalid(format!("{} tasks; the limit is {}", specs.len(), limits.max_tasks)));
    }
    let defaults: BTreeMap<u32, &BindingSpec> = job.bindings.iter().map(|b| (b.binding, b)).collect();
    if defaults.len() != job.bindings.len() {
        return Err(JobError::Invalid("a binding number appears twice in bindings".into()));
    }
    let tasks = specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let context = |e: JobError| match e {
                JobError::BindingMismatch(m) => JobError::BindingMismatch(format!("task {index}: {m}")),
                JobError::Invalid(m) => JobError::Invalid(format!("task {index}: {m}")),
                other => other,
            };
            let workgroups = spec.workgroups.or(job.workgroups).ok_or_else(|| {
                context(JobError::Invalid("no workgroups: set them on the job or on the task".into()))
            })?;
            check_workgroups(workgroups, limits).map_err(context)?;
            let bindings =
                resolve_bindings(&defaults, &spec.bindings, &shader_bindings, limits, blob_sizes).map_err(context)?;
            Ok(TaskRecord { index: index as u32, body: TaskBody::Kernel { workgroups: workgroups.0, bindings } })
        })
        .collect::<Result<Vec<_>, JobError>>()?;

    Ok(ValidatedJob {
        hand_off: false,
        work: JobWork::Kernel {
            shader: job.shader,
            entry_point: entry.name,
            workgroup_size: entry.workgroup_size,
            workgroup_storage: entry.workgroup_storage,
        },
        redundancy,
        tolerance,
        credits_per_task: job.credits_per_task.unwrap_or(limits.default_credits_per_task),
        check: job.verify.map(|Check::Matmul(check)| check_matmul(check, &tasks).map(SelfCheck::Matmul)).transpose()?,
        tasks,
    })
}

/// A matmul check must name an f32 output `c` and f32 inputs `a` and `b` of a consistent shape
/// in every task, with `dims` (when the shape comes from a binding) inline.
fn check_matmul(check: MatmulCheck, tasks: &[TaskRecord]) -> Result<MatmulCheck, JobError> {
    let invalid = |m: String| JobError::Invalid(format!("verify.matmul: {m}"));
    match (check.dims, check.m, check.k, check.n) {
        (Some(_), None, None, None) | (None, Some(_), Some(_), Some(_)) => {}
        _ => return Err(invalid("give the shape as `dims` (a binding) or as all of `m`, `k` and `n`".into())),
    }
    for task in tasks {
        let TaskBody::Kernel { bindings, .. } = &task.body else { unreachable!("kernel jobs have kernel tasks") };
        let context = |m: String| invalid(format!("task {}: {m}", task.index));
        let binding = |n: u32, access: Access, dtype: Dtype| {
            bindings
                .iter()
                .find(|b| b.binding == n && b.access == access && b.dtype == dtype)
                .ok_or_else(|| context(format!("binding {n} is not an {dtype:?} {access:?} buffer")))
        };
        let (a, b, c) = (
            binding(check.a, Access::Read, Dtype::F32)?,
            binding(check.b, Access::Read, Dtype::F32)?,
            binding(check.c, Access::ReadWrite, Dtype::F32)?,
        );
        let shape = matmul_shape(&check, bindings).map_err(context)?;
        for (name, binding, elements) in
            [("a", a, shape.m * shape.k), ("b", b, shape.k * shape.n), ("c", c, shape.m * shape.n)]
        {
            if binding.size != elements as u64 * 4 {
                return Err(context(format!(
                    "{name} is {} bytes; a {}×{}·{}×{} product needs {}",
                    binding.size,
                    shape.m,
                    shape.k,
                    shape.k,
                    shape.n,
                    elements * 4
                )));
            }
        }
    }
    Ok(check)
}

/// The shape a matmul check reads a task's buffers with.
pub fn matmul_shape(check: &MatmulCheck, bindings: &[TaskBinding]) -> Result<freivalds::Shape, String> {
    if let (Some(m), Some(k), Some(n)) = (check.m, check.k, check.n) {
        return Ok(freivalds::Shape { m: m as usize, k: k as usize, n: n as usize });
    }
    let dims = check.dims.ok_or("no shape")?;
    let source = bindings.iter().find(|b| b.binding == dims && b.dtype == Dtype::U32).and_then(|b| b.source.as_ref());
    let Some(Source::Inline(bytes)) = source else {
        return Err(format!("dims binding {dims} must be a u32 input given inline"));
    };
    let values: Vec<u32> = u32s(&bytes.0).collect();
    match values[..] {
        [m, n, k, ..] => Ok(freivalds::Shape { m: m as usize, k: k as usize, n: n as usize }),
        _ => Err(format!("dims binding {dims} holds {} values, not [M, N, K]", values.len())),
    }
}

fn check_entry_point<'a>(info: &'a ShaderInfo, name: &str) -> Result<&'a EntryPointInfo, JobError> {
    match info.entry_point(name) {
        Some(ep) if ep.stage == "compute" => Ok(ep),
        Some(ep) => Err(JobError::Invalid(format!("entry point '{name}' is a {} shader, not compute", ep.stage))),
        None => {
            let names: Vec<&str> =
                info.entry_points.iter().filter(|e| e.stage == "compute").map(|e| e.name.as_str()).collect();
            Err(JobError::Invalid(format!(
                "entry point '{name}' not found; the shader's compute entry points: {}",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            )))
        }
    }
}

/// The shader's buffers by binding number: access and, where the type says it, element type.
fn shader_storage_bindings(info: &ShaderInfo) -> Result<BTreeMap<u32, (Access, Option<Dtype>)>, JobError> {
    let mut out = BTreeMap::new();
    for b in &info.bindings {
        if b.group != 0 {
            return Err(JobError::BindingMismatch(format!(
                "@group({}) @binding({}): only @group(0) is supported",
                b.group, b.binding
            )));
        }
        match b.kind {
            BindingKind::Storage { access } => {
                out.insert(b.binding, (access, b.element));
            }
            BindingKind::Uniform | BindingKind::Other => {
                return Err(JobError::BindingMismatch(format!(
                    "@binding({}): only var<storage> buffers are supported (use var<storage, read> for inputs)",
                    b.binding
                )));
            }
        }
    }
    Ok(out)
}

fn check_workgroups(workgroups: Workgroups, limits: &JobLimits) -> Result<(), JobError> {
    let [x, y, z] = workgroups.0;
    if workgroups.0.contains(&0) {
        return Err(JobError::Invalid(format!("workgroups [{x}, {y}, {z}] has a zero dimension")));
    }
    if workgroups.0.iter().any(|&d| d > limits.max_workgroups_per_dimension) {
        return Err(JobError::Invalid(format!(
            "workgroups [{x}, {y}, {z}] exceeds {} per dimension",
            limits.max_workgroups_per_dimension
        )));
    }
    Ok(())
}

fn resolve_bindings(
    defaults: &BTreeMap<u32, &BindingSpec>,
    overrides: &BTreeMap<u32, BindingOverride>,
    shader: &BTreeMap<u32, (Access, Option<Dtype>)>,
    limits: &JobLimits,
    blob_sizes: &HashMap<BlobId, u64>,
) -> Result<Vec<TaskBinding>, JobError> {
    let mut numbers: Vec<u32> = defaults.keys().chain(overrides.keys()).copied().collect();
    numbers.sort_unstable();
    numbers.dedup();
    for n in &numbers {
        if !shader.contains_key(n) {
            return Err(JobError::BindingMismatch(format!("binding {n} is not declared in the shader's @group(0)")));
        }
    }
    shader
        .iter()
        .map(|(&n, &(access, element))| {
            let base = defaults.get(&n);
            let over = overrides.get(&n);
            if base.is_none() && over.is_none() {
                return Err(JobError::BindingMismatch(format!("the shader declares @binding({n}) but the job does not provide it")));
            }
            let dtype = over.and_then(|o| o.dtype).or(base.map(|b| b.dtype)).ok_or_else(|| {
                JobError::Invalid(format!("binding {n}: dtype is required"))
            })?;
            let output = over.and_then(|o| o.output).or(base.map(|b| b.output)).unwrap_or(false);
            // A task that overrides data replaces the default's data and size together.
            let (data, size) = match over {
                Some(o) if o.data.is_some() || o.size.is_some() => (o.data.clone(), o.size),
                _ => (base.and_then(|b| b.data.clone()), base.and_then(|b| b.size)),
            };
            let declared = match access {
                Access::Read => "var<storage, read>",
                Access::ReadWrite => "var<storage, read_write>",
            };
            match (access, output) {
                (Access::Read, true) => {
                    return Err(JobError::BindingMismatch(format!(
                        "binding {n}: the shader declares {declared} but the job marks it as an output"
                    )));
                }
                (Access::ReadWrite, false) => {
                    return Err(JobError::BindingMismatch(format!(
                        "binding {n}: the shader declares {declared} but the job gives it as an input (set \"output\": true)"
                    )));
                }
                _ => {}
            }
            if let Some(element) = element
                && element != dtype
            {
                return Err(JobError::BindingMismatch(format!(
                    "binding {n}: the shader's elements are {element} but the job says {dtype}"
                )));
            }
            let (source, size) = resolve_contents(n, data, size, output, blob_sizes)?;
            if size == 0 || size % dtype.size() as u64 != 0 {
                return Err(JobError::Invalid(format!(
                    "binding {n}: {size} bytes is not a positive whole number of {dtype} elements"
                )));
            }
            if size > limits.max_binding_bytes {
                return Err(JobError::Invalid(format!(
                    "binding {n}: {size} bytes exceeds the relay's limit of {} bytes per binding",
                    limits.max_binding_bytes
                )));
            }
            Ok(TaskBinding { binding: n, dtype, access, source, size })
        })
        .collect()
}

fn resolve_contents(
    n: u32,
    data: Option<Data>,
    size: Option<u64>,
    output: bool,
    blob_sizes: &HashMap<BlobId, u64>,
) -> Result<(Option<Source>, u64), JobError> {
    let (source, data_len) = match data {
        Some(Data::Inline(Bytes(bytes))) => {
            let len = bytes.len() as u64;
            (Some(Source::Inline(Bytes(bytes))), len)
        }
        Some(Data::Blob { blob }) => {
            let len = *blob_sizes.get(&blob).ok_or_else(|| {
                JobError::Invalid(format!("binding {n}: blob {blob} not found; upload it with POST /v1/blobs first"))
            })?;
            (Some(Source::Blob(blob)), len)
        }
        None => (None, 0),
    };
    match (source, size, output) {
        (None, None, true) => Err(JobError::Invalid(format!("binding {n}: an output needs a size or initial data"))),
        (None, _, false) => Err(JobError::Invalid(format!("binding {n}: an input needs data"))),
        (None, Some(size), true) => Ok((None, size)),
        (Some(_), Some(size), _) if size != data_len => {
            Err(JobError::Invalid(format!("binding {n}: size {size} does not match the {data_len} bytes of data")))
        }
        (Some(source), _, _) => Ok((Some(source), data_len)),
    }
}

#[cfg(test)]
mod tests {
    use hyphae_proto::api::JobRequest;

    use super::*;

    const DOUBLE: &str = "@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read_write> b: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&a)) { b[id.x] = a[id.x] * 2u; }
}";

    fn job(json: serde_json::Value) -> WgslJob {
        let mut body = serde_json::json!({"kind": "wgsl", "shader": DOUBLE, "workgroups": [1]});
        body.as_object_mut().unwrap().extend(json.as_object().unwrap().clone());
        let JobRequest::Wgsl(job) = serde_json::from_value(body).unwrap();
        job
    }

    fn check(json: serde_json::Value) -> Result<ValidatedJob, JobError> {
        validate(job(json), &JobLimits::default(), &HashMap::new())
    }

    #[test]
    fn tasks_inherit_and_override_the_job_bindings() {
        let ok = check(serde_json::json!({
            "bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAAIAAAA="},
                         {"binding": 1, "dtype": "u32", "output": true, "size": 8}],
            "tasks": [{}, {"bindings": {"0": {"data": "BQAAAA=="}, "1": {"size": 4}}}]
        }))
        .unwrap();
        assert_eq!(ok.tasks.len(), 2);
        let sizes = |t: &TaskRecord| match &t.body {
            TaskBody::Kernel { bindings, .. } => bindings.iter().map(|b| b.size).collect::<Vec<_>>(),
            TaskBody::Shard { .. } => unreachable!("kernel jobs have kernel tasks"),
        };
        assert_eq!(sizes(&ok.tasks[0]), vec![8, 8]);
        assert_eq!(sizes(&ok.tasks[1]), vec![4, 4]);
        assert_eq!(ok.redundancy, 2);
    }

    #[test]
    fn a_matmul_check_must_name_f32_buffers_of_the_shape_it_gives() {
        const MATMUL: &str = "@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(1) fn main() { c[0] = a[0] * b[0]; }";
        let matmul = |check: serde_json::Value, c_size: u64| {
            let mut j = job(serde_json::json!({
                "bindings": [{"binding": 0, "dtype": "f32", "data": "AACAPwAAAEA="},
                             {"binding": 1, "dtype": "f32", "data": "AABAQAAAgEA="},
                             {"binding": 2, "dtype": "f32", "output": true, "size": c_size}],
                "verify": {"matmul": check}
            }));
            j.shader = MATMUL.into();
            validate(j, &JobLimits::default(), &HashMap::new())
        };
        // A 1×2 times a 2×1: C is one element.
        let ok = matmul(serde_json::json!({"a": 0, "b": 1, "c": 2, "m": 1, "k": 2, "n": 1}), 4).unwrap();
        let Some(SelfCheck::Matmul(check)) = ok.check else { panic!("a matmul check: {:?}", ok.check) };
        assert_eq!((check.m, check.k, check.n), (Some(1), Some(2), Some(1)));
        let refused = [
            (serde_json::json!({"a": 0, "b": 1, "c": 2, "m": 1, "k": 2, "n": 1}), 8, "c is 8 bytes"),
            (serde_json::json!({"a": 0, "b": 1, "c": 2, "m": 1, "k": 2}), 4, "as all of `m`, `k` and `n`"),
            (serde_json::json!({"a": 2, "b": 1, "c": 0, "m": 1, "k": 2, "n": 1}), 4, "binding 2 is not an F32 Read"),
            (serde_json::json!({"a": 0, "b": 1, "c": 2, "dims": 1}), 4, "dims binding 1 must be a u32 input"),
        ];
        for (check, c_size, expected) in refused {
            match matmul(check.clone(), c_size) {
                Err(JobError::Invalid(message)) => assert!(message.contains(expected), "{check}: {message}"),
                other => panic!("{check}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_wgsl_names_line_and_column() {
        let mut j = job(serde_json::json!({}));
        j.shader = "@compute @workgroup_size(1)\nfn main() {\n  let x = ;\n}".into();
        match validate(j, &JobLimits::default(), &HashMap::new()) {
            Err(JobError::InvalidWgsl(e)) => {
                assert_eq!(e.line, Some(3), "{e}");
                assert!(e.to_string().starts_with("line 3, column"), "{e}");
            }
            other => panic!("expected InvalidWgsl, got {other:?}"),
        }
    }

    #[test]
    fn bindings_that_do_not_match_the_shader_are_mismatches() {
        let cases = [
            // Output marked as input.
            serde_json::json!({"bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAA=="},
                                            {"binding": 1, "dtype": "u32", "data": "AQAAAA=="}]}),
            // Wrong element type.
            serde_json::json!({"bindings": [{"binding": 0, "dtype": "f32", "data": "AQAAAA=="},
                                            {"binding": 1, "dtype": "u32", "output": true, "size": 4}]}),
            // Missing binding.
            serde_json::json!({"bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAA=="}]}),
            // Binding the shader does not have.
            serde_json::json!({"bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAA=="},
                                            {"binding": 1, "dtype": "u32", "output": true, "size": 4},
                                            {"binding": 2, "dtype": "u32", "output": true, "size": 4}]}),
        ];
        for case in cases {
            match check(case.clone()) {
                Err(JobError::BindingMismatch(_)) => {}
                other => panic!("{case}: expected BindingMismatch, got {other:?}"),
            }
        }
    }

    #[test]
    fn sizes_are_checked_against_data_and_limits() {
        let misaligned = serde_json::json!({"bindings": [{"binding": 0, "dtype": "u32", "data": "AQAA"},
                                                         {"binding": 1, "dtype": "u32", "output": true, "size": 4}]});
        assert!(matches!(check(misaligned), Err(JobError::Invalid(_))));
        let huge = serde_json::json!({"bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAA=="},
                                                   {"binding": 1, "dtype": "u32", "output": true, "size": 1u64 << 40}]});
        assert!(matches!(check(huge), Err(JobError::Invalid(m)) if m.contains("exceeds")));
        let missing_blob = serde_json::json!({"bindings": [
            {"binding": 0, "dtype": "u32", "data": {"blob": BlobId::of(b"x").to_string()}},
            {"binding": 1, "dtype": "u32", "output": true, "size": 4}]});
        assert!(matches!(check(missing_blob), Err(JobError::Invalid(m)) if m.contains("not found")));
    }

    #[test]
    fn an_override_without_a_default_is_refused_at_submission() {
        let mut j = job(serde_json::json!({"bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAA=="},
                                                        {"binding": 1, "dtype": "u32", "output": true, "size": 4}]}));
        j.shader = format!("override scale: u32;\n{DOUBLE}");
        match validate(j, &JobLimits::default(), &HashMap::new()) {
            Err(JobError::Invalid(m)) => assert!(m.contains("scale"), "{m}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn redundancy_and_entry_point_are_checked() {
        let base = serde_json::json!({"bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAA=="},
                                                   {"binding": 1, "dtype": "u32", "output": true, "size": 4}]});
        let mut zero = base.clone();
        zero["redundancy"] = 0.into();
        assert!(matches!(check(zero), Err(JobError::Invalid(_))));
        let mut entry = base;
        entry["entry_point"] = "nope".into();
        assert!(matches!(check(entry), Err(JobError::Invalid(m)) if m.contains("main")));
    }
}
