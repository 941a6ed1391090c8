//! WGSL kernels, their CPU references, and the one wgpu executor shared by browser and native
//! workers.
//!
//! - [`mod@validate`]: naga parse + validate + reflection; the relay uses it to reject bad WGSL with a
//!   line and column before a job is queued.
//! - [`executor`]: [`Gpu`], the only code here that touches wgpu. One code path for native and
//!   browser; they differ only in how the instance is found and how readback waits.
//! - [`kernels`]: the built-in kernels (`wgsl/*.wgsl`), their bindings and dispatch rules.
//! - [`matmul`]: matrix products tuned per adapter: a family of tiled kernels generated from one
//!   template, the autotuner that picks one per adapter (cached on disk natively), and
//!   [`MatmulPlan`], what model shards dispatch for their linear layers.
//! - [`mod@reference`]: a CPU reference of every built-in kernel, for tests and for relay canaries.
//! - [`model`]: model runtimes split into pipeline shards (BERT / all-MiniLM-L6-v2): configs,
//!   shard plans and FLOPs, per-shard weights, and shards run as multi-dispatch programs.
//! - [`testsuite`]: kernel-vs-reference and executor-behaviour checks as async functions over a
//!   `&Gpu`, run natively on lavapipe (`tests/lavapipe.rs`) and in Chromium (`tests/browser.rs`).
//!
//! **Architecture invariant:** a launch that fails never yields buffers. Invalid WGSL, bindings
//! that do not match the shader, limits, wgpu validation errors, out-of-memory and device loss
//! all come back as [`ExecError`]; wgpu is never allowed to panic and a zeroed buffer is never
//! returned in place of an error (STYLE.md, "Errors must reach the caller").
//!
//! This crate compiles to `wasm32-unknown-unknown` (wgpu's `webgpu` backend) and natively
//! (Vulkan, Metal, DX12, GL); the split is by target in `Cargo.toml`, never by Cargo feature.

pub mod error;
pub mod executor;
pub mod kernels;
pub mod matmul;
pub mod model;
pub mod reference;
pub mod testsuite;
pub mod validate;

pub use executor::{Contents, ExecError, Gpu, GpuBuffer, Launch, LaunchBinding, Pipeline, Program};
pub use matmul::{Layout, MatmulPlan, TuneCache};
pub use validate::{BindingKind, EntryPointInfo, OverrideInfo, ShaderBinding, ShaderError, ShaderInfo, validate};
