//! Matrix products tuned per adapter: one family of WGSL kernels generated from one template
//! (`wgsl/matmul_tiled.wgsl`, filled in by `wgsl.rs`), the choice among them per adapter
//! (`tune.rs`), and [`MatmulPlan`], the pipeline and workgroups for one shape, which model
//! shards use for their linear layers and `cargo xtask bench gpu` measures.
//!
//! Two layouts share the family: [`Layout::Matmul`] (C = A·B, B as K×N, the bindings of the
//! built-in `matmul` kernel) and [`Layout::Linear`] (Y = X·Wᵀ + b, W as N×K, the bindings of
//! `matmul_bias`). A [`Scheme`] is how a variant splits the work: [`Scheme::Registers`] is the
//! built-in kernel itself (64×64 register tiles, no workgroup memory), [`Scheme::Tiled`] a
//! [`Tile`] of the template (workgroup memory, double-buffered K steps, register tiles). A [`Variant`] is a scheme for one layout with vec4
//! or scalar memory access, vec4 where K and N are multiples of 4.
//!
//! **Invariant: every variant gives the same bits.** Each element of the output is one fma
//! chain over k in ascending order from 0, plus the bias last: no split-k, no `dot`, no tree
//! reduction. So workers that picked different variants agree on a shard's digest; the
//! testsuite (`testsuite/matmul.rs`) checks it on ragged and aligned shapes.
//!
//! Every candidate stays within WebGPU's minimum limits (256 invocations, 16 KiB of workgroup
//! memory), which SwiftShader enforces; a unit test checks it, and candidates are also checked
//! against the adapter's own limits before they are timed.

pub mod tune;
mod wgsl;

#[cfg_attr(not(target_arch = "wasm32"), path = "native.rs")]
#[cfg_attr(target_arch = "wasm32", path = "browser.rs")]
mod platform;

use std::borrow::Cow;

use hyphae_proto::frame::{Access, DeviceLimits};

use crate::executor::Pipeline;
use crate::kernels::{self, Kernel};

pub use tune::{Measurement, Origin, Timing, TuneCache, TuneReport};

/// Where B lives and what the bindings are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// C[M×N] = A[M×K]·B[K×N]; bindings `params` [M, N, K], `a`, `b`, `c` (as `matmul`).
    Matmul,
    /// Y[M×N] = X[M×K]·Wᵀ + b with W as [N×K] (PyTorch's Linear); bindings `params`
    /// [M, N, K, has_bias], `x`, `w`, `bias`, `y` (as `matmul_bias`).
    Linear,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::Matmul, Layout::Linear];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Matmul => "matmul",
            Layout::Linear => "linear",
        }
    }

    pub fn parse(name: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|layout| layout.name() == name)
    }

    /// The built-in kernel with this layout's bindings: [`Scheme::Registers`].
    pub fn kernel(self) -> &'static Kernel {
        match self {
            Layout::Matmul => &kernels::MATMUL,
            Layout::Linear => &kernels::MATMUL_BIAS,
        }
    }

    /// `(binding, access)` of every variant of this layout.
    pub fn bindings(self) -> Vec<(u32, Access)> {
        self.kernel().bindings.iter().map(|b| (b.binding, b.access)).collect()
    }

    /// The params buffer (binding 0): [M, N, K] or [M, N, K, has_bias].
    pub fn params(self, m: u32, n: u32, k: u32, has_bias: bool) -> Vec<u32> {
        match self {
            Layout::Matmul => vec![m, n, k],
            Layout::Linear => kernels::matmul_bias_params(m, n, k, has_bias).to_vec(),
        }
    }
}

/// A tiled variant's shape: a BM×BN tile of C per workgroup, K in steps of BK, TM×TN elements
/// per invocation (TM and TN multiples of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
}

impl Tile {
    const fn new(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Tile {
        Tile { bm, bn, bk, tm, tn }
    }

    pub fn invocations(self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Bytes of `var<workgroup>`: two buffers each of the A and B tiles.
    pub fn workgroup_bytes(self) -> u32 {
        2 * self.bk * (self.bm + self.bn) * 4
    }
}

/// How a variant splits the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// The built-in `matmul` / `matmul_bias`: 64×64 register tiles, no workgroup memory.
    Registers,
    Tiled(Tile),
}

/// The schemes the tuner times, in the order it times them (the default for a GPU first).
pub const CANDIDATES: [Scheme; 6] = [
    Scheme::Tiled(Tile::new(128, 128, 8, 8, 8)),
    Scheme::Tiled(Tile::new(128, 64, 8, 8, 4)),
    Scheme::Tiled(Tile::new(64, 128, 8, 4, 8)),
    Scheme::Tiled(Tile::new(64, 64, 16, 4, 4)),
    Scheme::Tiled(Tile::new(64, 64, 8, 8, 8)),
    Scheme::Registers,
];

/// What a GPU runs when it could not time the candidates.
pub const GPU_DEFAULT: Scheme = CANDIDATES[0];
/// What a CPU adapter (lavapipe, SwiftShader) runs without timing: the fastest there when
/// timed. At 256³ on 2 cores, lavapipe: 10.8 GFLOP/s against 3.2 for `Registers` (and 6.0 to
/// 9.4 for the other tiles); SwiftShader in Chromium: 1.7 against 0.19 (linear 256×384×384:
/// 2.2 against 0.21). Workgroup memory pays there once loads are vec4 and each invocation
/// computes 8×8.
pub const CPU_DEFAULT: Scheme = CANDIDATES[4];

impl Scheme {
    /// A stable name, as the tuning cache stores it: `registers` or `tiled-128x128x8-8x8`.
    pub fn name(self) -> String {
        match self {
            Scheme::Registers => "registers".to_owned(),
            Scheme::Tiled(Tile { bm, bn, bk, tm, tn }) => format!("tiled-{bm}x{bn}x{bk}-{tm}x{tn}"),
        }
    }

    /// One of [`CANDIDATES`] by name; `None` for anything else (such as a scheme an older
    /// build tuned), so stale choices are never run.
    pub fn parse(name: &str) -> Option<Scheme> {
        CANDIDATES.into_iter().find(|scheme| scheme.name() == name)
    }

    pub fn invocations(self) -> u32 {
        match self {
            Scheme::Registers => 256,
            Scheme::Tiled(tile) => tile.invocations(),
        }
    }

    pub fn workgroup_bytes(self) -> u32 {
        match self {
            Scheme::Registers => 0,
            Scheme::Tiled(tile) => tile.workgroup_bytes(),
        }
    }

    /// Whether a device with these limits can run it.
    pub fn fits(self, limits: &DeviceLimits) -> bool {
        self.invocations() <= limits.max_compute_invocations_per_workgroup
            && self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
    }
}

/// A scheme for one layout, with vec4 or scalar memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    pub layout: Layout,
    pub scheme: Scheme,
    /// vec4 loads and stores: only where K and N are multiples of 4 (never for `Registers`).
    pub vec4: bool,
}

impl Variant {
    /// `scheme` for an M×N×K product: vec4 where K and N allow.
    pub fn for_shape(layout: Layout, scheme: Scheme, n: u32, k: u32) -> Variant {
        let vec4 = matches!(scheme, Scheme::Tiled(_)) && n.is_multiple_of(4) && k.is_multiple_of(4);
        Variant { layout, scheme, vec4 }
    }

    /// Every variant of `layout`: each candidate, tiled ones both vec4 and scalar.
    pub fn all(layout: Layout) -> Vec<Variant> {
        CANDIDATES
            .into_iter()
            .flat_map(|scheme| {
                let vec4s: &[bool] = if scheme == Scheme::Registers { &[false] } else { &[true, false] };
                vec4s.iter().map(move |&vec4| Variant { layout, scheme, vec4 })
            })
            .collect()
    }

    /// E.g. `linear tiled-128x128x8-8x8 vec4`.
    pub fn name(&self) -> String {
        let access = if self.vec4 { " vec4" } else { "" };
        format!("{} {}{access}", self.layout.name(), self.scheme.name())
    }

    /// The WGSL (entry point `main`).
    pub fn source(&self) -> Cow<'static, str> {
        match self.scheme {
            Scheme::Registers => Cow::Borrowed(self.layout.kernel().source),
            Scheme::Tiled(tile) => Cow::Owned(wgsl::source(self.layout, tile, self.vec4)),
        }
    }

    pub fn workgroup_size(&self) -> [u32; 3] {
        match self.scheme {
            Scheme::Registers => self.layout.kernel().workgroup_size,
            Scheme::Tiled(tile) => [tile.bn / tile.tn, tile.bm / tile.tm, 1],
        }
    }

    /// Workgroups for an M×N output.
    pub fn workgroups(&self, m: u32, n: u32) -> [u32; 3] {
        match (self.scheme, self.layout) {
            (Scheme::Registers, Layout::Matmul) => kernels::matmul_workgroups(m, n),
            (Scheme::Registers, Layout::Linear) => kernels::matmul_bias_workgroups(m, n),
            (Scheme::Tiled(tile), _) => [n.div_ceil(tile.bn), m.div_ceil(tile.bm), 1],
        }
    }
}

/// What [`crate::Gpu::matmul_plan`] returns: the variant this adapter runs for a shape, its
/// compiled pipeline and the workgroups to dispatch.
#[derive(Clone, Debug)]
pub struct MatmulPlan {
    pub variant: Variant,
    pub pipeline: Pipeline,
    pub workgroups: [u32; 3],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate;

    #[test]
    fn every_variant_validates_with_its_declared_workgroup_and_bindings() {
        for layout in Layout::ALL {
            for variant in Variant::all(layout) {
                let source = variant.source();
                let info = validate(&source).unwrap_or_else(|e| panic!("{}: {e}\n{source}", variant.name()));
                let entry = info.entry_point("main").unwrap();
                assert_eq!(entry.workgroup_size, variant.workgroup_size(), "{}", variant.name());
                let declared: Vec<(u32, Access)> = info
                    .bindings
                    .iter()
                    .map(|b| match b.kind {
                        crate::BindingKind::Storage { access } => (b.binding, access),
                        _ => panic!("{}: binding {} is not storage", variant.name(), b.binding),
                    })
                    .collect();
                assert_eq!(declared, layout.bindings(), "{}", variant.name());
            }
        }
    }

    #[test]
    fn every_candidate_fits_webgpu_minimum_limits() {
        // WebGPU's defaults, which SwiftShader in Chromium enforces.
        let minimum = DeviceLimits {
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroup_storage_size: 16384,
            ..DeviceLimits::default()
        };
        for scheme in CANDIDATES {
            assert!(scheme.fits(&minimum), "{}", scheme.name());
            if let Scheme::Tiled(tile) = scheme {
                assert!(tile.tm.is_multiple_of(4) && tile.tn.is_multiple_of(4), "{}", scheme.name());
                assert!(tile.bm.is_multiple_of(tile.tm) && tile.bn.is_multiple_of(tile.tn), "{}", scheme.name());
                assert!(tile.bk.is_multiple_of(4), "{}", scheme.name());
            }
        }
        let tiny = DeviceLimits { max_compute_workgroup_storage_size: 8192, ..minimum };
        assert!(!GPU_DEFAULT.fits(&tiny));
        assert!(Scheme::Registers.fits(&tiny));
    }

    #[test]
    fn scheme_names_round_trip_and_unknown_names_do_not_parse() {
        for scheme in CANDIDATES {
            assert_eq!(Scheme::parse(&scheme.name()), Some(scheme));
        }
        assert_eq!(Scheme::parse("tiled-256x256x8-16x16"), None);
        assert_eq!(Layout::parse("linear"), Some(Layout::Linear));
    }

    #[test]
    fn vec4_only_where_k_and_n_are_multiples_of_4() {
        let tiled = GPU_DEFAULT;
        assert!(Variant::for_shape(Layout::Matmul, tiled, 8, 12).vec4);
        assert!(!Variant::for_shape(Layout::Matmul, tiled, 8, 13).vec4);
        assert!(!Variant::for_shape(Layout::Linear, tiled, 6, 12).vec4);
        assert!(!Variant::for_shape(Layout::Linear, Scheme::Registers, 8, 8).vec4);
        assert_eq!(Variant::for_shape(Layout::Linear, tiled, 8, 8).workgroups(129, 256), [2, 2, 1]);
    }
}
