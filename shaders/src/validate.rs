//! WGSL through naga: parse, validate, and reflect the entry points and bindings. No wgpu here;
//! the relay calls [`validate`] on every submitted shader, the executor before it builds a
//! pipeline.
//!
//! **Capabilities.** The validator allows what a WebGPU device may offer for compute: naga's
//! defaults (the WebGPU core set) plus the two optional WebGPU features that matter to kernels,
//! `shader-f16` ([`naga::valid::Capabilities::SHADER_FLOAT16`]) and `subgroups`
//! ([`naga::valid::Capabilities::SUBGROUP`]). A shader using them passes here; a worker whose
//! device lacks the feature refuses it at pipeline creation ([`crate::ExecError::InvalidShader`])
//! and the relay places the task elsewhere. Native-only capabilities (f64, int64, binding
//! arrays, ray queries, immediates) are refused: no browser worker could run them.
//!
//! naga accepts `workgroupBarrier` in non-uniform control flow, which browsers reject
//! (DESIGN.md §7); kernels are tested in Chromium as well for that reason.

use hyphae_proto::Dtype;
use hyphae_proto::frame::Access;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, ScalarKind, ShaderStage, StorageAccess, TypeInner};

pub use crate::error::ShaderError;

/// What naga learned about a valid shader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShaderInfo {
    /// In declaration order.
    pub entry_points: Vec<EntryPointInfo>,
    /// Every global with `@group/@binding`, sorted by group then binding.
    pub bindings: Vec<ShaderBinding>,
    /// Pipeline-overridable constants (`override x: u32 = …;`), in declaration order.
    pub overrides: Vec<OverrideInfo>,
}

/// An `override` declaration. One without a default cannot run unless the pipeline sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideInfo {
    pub name: Option<String>,
    pub has_default: bool,
}

impl ShaderInfo {
    pub fn entry_point(&self, name: &str) -> Option<&EntryPointInfo> {
        self.entry_points.iter().find(|ep| ep.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPointInfo {
    pub name: String,
    /// `compute`, `vertex` or `fragment` (naga's other stages are named too: `task`, `mesh`, ...).
    pub stage: String,
    /// `[0, 0, 0]` for non-compute stages; overridable sizes report naga's value before overrides.
    pub workgroup_size: [u32; 3],
    /// Bytes of `var<workgroup>` the entry point uses, each variable rounded up to 16 as WebGPU
    /// counts them. wgpu-core does not check this against the device limit (browsers do), so the
    /// executor and the relay's placement must.
    pub workgroup_storage: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShaderBinding {
    pub group: u32,
    pub binding: u32,
    pub name: Option<String>,
    pub kind: BindingKind,
    /// The scalar type of `array<T>`, `array<vecN<T>>`, `atomic<T>` or `T` for 4-byte `u32`,
    /// `i32` and `f32`; `None` for structs, matrices and anything else.
    pub element: Option<Dtype>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// `var<storage, read>` is [`Access::Read`]; `read_write` is [`Access::ReadWrite`].
    Storage {
        access: Access,
    },
    Uniform,
    /// Textures, samplers and other handles.
    Other,
}

/// Parses and validates `wgsl`, returning its entry points and bindings or the first error with
/// naga's line and column.
pub fn validate(wgsl: &str) -> Result<ShaderInfo, ShaderError> {
    analyze(wgsl).map(|analysis| analysis.info)
}

/// [`ShaderInfo`] plus what the executor needs to check a launch against the shader before
/// wgpu sees it. Crate-private: the public API stays [`ShaderInfo`].
#[derive(Clone, Debug)]
pub(crate) struct Analysis {
    pub info: ShaderInfo,
    /// One per entry of `info.bindings`, same order.
    pub resources: Vec<Resource>,
}

#[derive(Clone, Debug)]
pub(crate) struct Resource {
    /// The smallest buffer wgpu accepts for this binding (one element of a runtime-sized
    /// array), computed the way wgpu-core does; `None` when naga cannot size the type.
    pub min_size: Option<u64>,
    /// Indices into `info.entry_points` of the entry points that use this binding.
    pub used_by: Vec<usize>,
}

pub(crate) fn analyze(wgsl: &str) -> Result<Analysis, ShaderError> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| {
        let location = e.location(wgsl);
        ShaderError {
            line: location.map(|l| l.line_number),
            column: location.map(|l| l.line_position),
            message: e.message().to_owned(),
        }
    })?;
    let module_info = Validator::new(ValidationFlags::all(), capabilities()).validate(&module).map_err(|e| {
        let location = e.location(wgsl);
        ShaderError {
            line: location.map(|l| l.line_number),
            column: location.map(|l| l.line_position),
            message: validation_message(&e),
        }
    })?;

    let gctx = module.to_ctx();
    let mut bound: Vec<(ShaderBinding, Resource)> = module
        .global_variables
        .iter()
        .filter_map(|(handle, var)| {
            let rb = var.binding.as_ref()?;
            let inner = &module.types[var.ty].inner;
            let kind = match var.space {
                AddressSpace::Storage { access } => BindingKind::Storage {
                    access: if access.contains(StorageAccess::STORE) { Access::ReadWrite } else { Access::Read },
                },
                AddressSpace::Uniform => BindingKind::Uniform,
                _ => BindingKind::Other,
            };
            let element = element_dtype(inner, &module.types);
            let min_size = inner.try_size(gctx).map(u64::from);
            let used_by = (0..module.entry_points.len())
                .filter(|&i| !module_info.get_entry_point(i)[handle].is_empty())
                .collect();
            Some((
                ShaderBinding { group: rb.group, binding: rb.binding, name: var.name.clone(), kind, element },
                Resource { min_size, used_by },
            ))
        })
        .collect();
    bound.sort_by_key(|(b, _)| (b.group, b.binding));
    let (bindings, resources) = bound.into_iter().unzip();

    let entry_points = module
        .entry_points
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let uses = module_info.get_entry_point(i);
            let workgroup_storage = module
                .global_variables
                .iter()
                .filter(|(handle, var)| var.space == AddressSpace::WorkGroup && !uses[*handle].is_empty())
                .map(|(_, var)| {
                    let size = module.types[var.ty].inner.try_size(gctx).unwrap_or(u32::MAX);
                    u64::from(size).div_ceil(16) * 16
                })
                .sum();
            EntryPointInfo {
                name: ep.name.clone(),
                stage: stage_name(ep.stage).to_owned(),
                workgroup_size: ep.workgroup_size,
                workgroup_storage,
            }
        })
        .collect();

    let overrides = module
        .overrides
        .iter()
        .map(|(_, o)| OverrideInfo { name: o.name.clone(), has_default: o.init.is_some() })
        .collect();

    Ok(Analysis { info: ShaderInfo { entry_points, bindings, overrides }, resources })
}

fn capabilities() -> Capabilities {
    Capabilities::default() | Capabilities::SHADER_FLOAT16 | Capabilities::SUBGROUP
}

/// naga's validation errors nest ("Entry point main at Compute is invalid" → "Expression [2]
/// is invalid" → the actual cause); the message joins the chain so the cause is not lost.
fn validation_message(error: &naga::WithSpan<naga::valid::ValidationError>) -> String {
    use std::error::Error as _;
    let mut message = error.as_inner().to_string();
    let mut source = error.as_inner().source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn stage_name(stage: ShaderStage) -> &'static str {
    match stage {
        ShaderStage::Compute => "compute",
        ShaderStage::Vertex => "vertex",
        ShaderStage::Fragment => "fragment",
        ShaderStage::Task => "task",
        ShaderStage::Mesh => "mesh",
        _ => "other",
    }
}

fn element_dtype(inner: &TypeInner, types: &naga::UniqueArena<naga::Type>) -> Option<Dtype> {
    let scalar = match *inner {
        TypeInner::Array { base, .. } => match types[base].inner {
            TypeInner::Scalar(s) | TypeInner::Atomic(s) | TypeInner::Vector { scalar: s, .. } => s,
            _ => return None,
        },
        TypeInner::Scalar(s) | TypeInner::Atomic(s) | TypeInner::Vector { scalar: s, .. } => s,
        _ => return None,
    };
    match (scalar.kind, scalar.width) {
        (ScalarKind::Uint, 4) => Some(Dtype::U32),
        (ScalarKind::Sint, 4) => Some(Dtype::I32),
        (ScalarKind::Float, 4) => Some(Dtype::F32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
struct Params { n: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> counter: atomic<i32>;
@group(0) @binding(3) var<storage, read> params: Params;
@group(1) @binding(0) var<uniform> u: vec4<f32>;

@compute @workgroup_size(8, 4, 2)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    out[id.x] = vec4<u32>(u32(xs[id.x] * params.scale + u.x));
    atomicAdd(&counter, 1);
}

@compute @workgroup_size(64)
fn other() {}
"#;

    #[test]
    fn reflects_entry_points_and_workgroup_sizes() {
        let info = validate(GOOD).unwrap();
        assert_eq!(info.entry_points.len(), 2);
        let main = info.entry_point("main").unwrap();
        assert_eq!(main.stage, "compute");
        assert_eq!(main.workgroup_size, [8, 4, 2]);
        assert_eq!(info.entry_point("other").unwrap().workgroup_size, [64, 1, 1]);
        assert!(info.entry_point("missing").is_none());
    }

    #[test]
    fn reflects_bindings_access_and_element_dtypes() {
        let info = validate(GOOD).unwrap();
        let got: Vec<_> =
            info.bindings.iter().map(|b| (b.group, b.binding, b.name.as_deref(), b.kind, b.element)).collect();
        let read = BindingKind::Storage { access: Access::Read };
        let read_write = BindingKind::Storage { access: Access::ReadWrite };
        assert_eq!(
            got,
            vec![
                (0, 0, Some("xs"), read, Some(Dtype::F32)),
                (0, 1, Some("out"), read_write, Some(Dtype::U32)),
                (0, 2, Some("counter"), read_write, Some(Dtype::I32)),
                (0, 3, Some("params"), read, None),
                (1, 0, Some("u"), BindingKind::Uniform, Some(Dtype::F32)),
            ]
        );
    }

    #[test]
    fn min_sizes_and_uses_follow_the_entry_points() {
        let analysis = analyze(GOOD).unwrap();
        let min: Vec<_> = analysis.resources.iter().map(|r| r.min_size).collect();
        // Runtime-sized arrays need one element; the struct and the atomic their full size.
        assert_eq!(min, vec![Some(4), Some(16), Some(4), Some(8), Some(16)]);
        assert!(analysis.resources.iter().all(|r| r.used_by == vec![0]));
    }

    #[test]
    fn workgroup_storage_counts_used_variables_rounded_to_16() {
        let wgsl = "var<workgroup> a: array<f32, 5>;\n\
                    var<workgroup> b: array<u32, 64>;\n\
                    var<workgroup> unused: array<u32, 1000>;\n\
                    @compute @workgroup_size(1) fn main() { a[0] = 1.0; b[0] = 2u; }\n\
                    @compute @workgroup_size(1) fn none() {}";
        let info = validate(wgsl).unwrap();
        let storage: Vec<u64> = info.entry_points.iter().map(|e| e.workgroup_storage).collect();
        assert_eq!(storage, vec![32 + 256, 0]);
    }

    #[test]
    fn overrides_are_reflected_with_whether_they_have_a_default() {
        let info =
            validate("override a: u32 = 4u;\noverride b: f32;\n@compute @workgroup_size(1) fn main() {}").unwrap();
        let names: Vec<_> = info.overrides.iter().map(|o| (o.name.as_deref(), o.has_default)).collect();
        assert_eq!(names, vec![(Some("a"), true), (Some("b"), false)]);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let err = validate("fn main() {\n    let a = 1;\n    let b = 2 x;\n}\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert_eq!(err.column, Some(15), "{err}");
        assert!(err.to_string().starts_with("line 3, column 15: "), "{err}");
        assert!(err.message.contains("expected"), "{err}");
    }

    #[test]
    fn validator_error_has_line_and_column() {
        // Parses fine; naga's validator (not the front end) refuses the store.
        let wgsl = "@group(0) @binding(0) var<storage, read> src: array<u32>;\n\
                    @compute @workgroup_size(1) fn main() {\n  src[0] = 1u;\n}\n";
        assert!(naga::front::wgsl::parse_str(wgsl).is_ok());
        let err = validate(wgsl).unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(3)), "{err}");
        assert!(err.message.contains("store"), "{err}");
    }

    #[test]
    fn type_mismatch_has_line_and_column() {
        let wgsl = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n\
                    @compute @workgroup_size(1)\n\
                    fn main() {\n    out[0] = 1.5f;\n}\n";
        let err = validate(wgsl).unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.column.is_some(), "{err}");
        assert!(err.to_string().starts_with("line 4, column "), "{err}");
    }

    #[test]
    fn native_only_capabilities_are_refused() {
        let wgsl = "@compute @workgroup_size(1) fn main() { var x: f64 = 1.0lf; }";
        assert!(validate(wgsl).is_err());
    }

    #[test]
    fn shader_f16_is_accepted_as_a_webgpu_feature() {
        let wgsl = "enable f16;\n@compute @workgroup_size(1) fn main() { var x: f16 = 1.0h; }";
        validate(wgsl).unwrap();
    }
}
