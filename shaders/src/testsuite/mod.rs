//! Checks of kernels and of the executor as `pub async fn`s over a `&Gpu`, so one suite runs
//! natively on lavapipe (`tests/lavapipe.rs`, through pollster) and in headless Chromium
//! (`tests/browser.rs`, wasm-bindgen-test), as CubeCL's `testgen_all!` does per backend. Where a
//! backend legitimately differs, the check declares it per backend with the reason (see
//! [`executor::BarrierUniformity`]) instead of being skipped there. Each returns
//! `Err(Failure)` naming the case instead of panicking, so a browser harness can report it.
//!
//! Kernels are always compared with their CPU reference in [`crate::reference`]: integers
//! exactly, floats within `|got - want| <= F32_ABS + F32_REL * |want|` (DESIGN.md §4).
//!
//! Tests that read [`crate::executor::GpuStats`] counters assume nobody else runs launches on
//! the same `Gpu` meanwhile: give them a `Gpu` of their own when tests run in parallel.

pub mod executor;
pub mod kernels;
pub mod matmul;
pub mod model;
pub mod transformer;

use hyphae_proto::tensor::{f32s, u32s};

use crate::ExecError;

/// Absolute tolerance for f32 results.
pub const F32_ABS: f32 = 1e-6;
/// Relative tolerance for f32 results.
pub const F32_REL: f32 = 1e-5;

/// Why a check failed, naming its case.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{case}: launch failed: {source}")]
    Exec {
        case: String,
        #[source]
        source: ExecError,
    },
    #[error("{case}: expected {want} output buffers or bytes, got {got}")]
    Length { case: String, want: usize, got: usize },
    #[error("{case}: element {index} is {got}, want {want}")]
    Mismatch { case: String, index: usize, got: String, want: String },
    #[error("{case}: {message}")]
    Unexpected { case: String, message: String },
}

pub(crate) fn exec(case: &str) -> impl FnOnce(ExecError) -> Failure + '_ {
    move |source| Failure::Exec { case: case.to_owned(), source }
}

pub(crate) fn unexpected(case: &str, message: impl Into<String>) -> Failure {
    Failure::Unexpected { case: case.to_owned(), message: message.into() }
}

/// `outputs` must be exactly one buffer; returns it.
pub(crate) fn single(case: &str, outputs: Vec<Vec<u8>>) -> Result<Vec<u8>, Failure> {
    let got = outputs.len();
    let mut outputs = outputs.into_iter();
    match (outputs.next(), outputs.next()) {
        (Some(only), None) => Ok(only),
        _ => Err(Failure::Length { case: case.to_owned(), want: 1, got }),
    }
}

/// Compares a little-endian f32 buffer with the reference within the tolerance.
pub fn compare_f32(case: &str, got: &[u8], want: &[f32]) -> Result<(), Failure> {
    if got.len() != want.len() * 4 {
        return Err(Failure::Length { case: case.to_owned(), want: want.len() * 4, got: got.len() });
    }
    for (index, (g, w)) in f32s(got).zip(want).enumerate() {
        let close = (g - w).abs() <= F32_ABS + F32_REL * w.abs();
        if !close {
            return Err(Failure::Mismatch { case: case.to_owned(), index, got: g.to_string(), want: w.to_string() });
        }
    }
    Ok(())
}

/// How close a float result must be to its reference: `|got - want| <= abs + rel·|want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub abs: f32,
    pub rel: f32,
}

/// The default: [`F32_ABS`] and [`F32_REL`].
pub const F32_TOLERANCE: Tolerance = Tolerance { abs: F32_ABS, rel: F32_REL };

impl Tolerance {
    pub fn accepts(&self, got: f32, want: f32) -> bool {
        (got - want).abs() <= self.abs + self.rel * want.abs()
    }
}

/// Compares f32 values with the reference within `tolerance` (NaN never matches).
pub fn compare_f32_values(case: &str, got: &[f32], want: &[f32], tolerance: Tolerance) -> Result<(), Failure> {
    if got.len() != want.len() {
        return Err(Failure::Length { case: case.to_owned(), want: want.len(), got: got.len() });
    }
    match got.iter().zip(want).position(|(&g, &w)| !tolerance.accepts(g, w)) {
        None => Ok(()),
        Some(index) => Err(Failure::Mismatch {
            case: case.to_owned(),
            index,
            got: got[index].to_string(),
            want: want[index].to_string(),
        }),
    }
}

/// The largest `|got - want| / (abs + rel·|want|)` over the elements: at most 1 within the
/// tolerance. For reporting how much headroom a check has.
pub fn tolerance_used(got: &[f32], want: &[f32], tolerance: Tolerance) -> f32 {
    got.iter().zip(want).map(|(&g, &w)| (g - w).abs() / (tolerance.abs + tolerance.rel * w.abs())).fold(0.0, f32::max)
}

/// Compares a little-endian u32 buffer with the reference exactly.
pub fn compare_u32(case: &str, got: &[u8], want: &[u32]) -> Result<(), Failure> {
    if got.len() != want.len() * 4 {
        return Err(Failure::Length { case: case.to_owned(), want: want.len() * 4, got: got.len() });
    }
    match u32s(got).zip(want).position(|(g, &w)| g != w) {
        None => Ok(()),
        Some(index) => Err(Failure::Mismatch {
            case: case.to_owned(),
            index,
            got: u32s(got).nth(index).unwrap_or_default().to_string(),
            want: want[index].to_string(),
        }),
    }
}

/// A small deterministic generator: test data must be the same in every run and on every
/// target, without a `rand` dependency in the browser build.
pub(crate) struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u32(&mut self) -> u32 {
        // Knuth's MMIX constants; the high half has the better bits.
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }

    /// A multiple of 1/4 in [-2, 2]. Products and sums of these stay exact in f32 for any
    /// realistic K, so a matmul on any GPU must equal the reference whatever its summation
    /// order or FMA use: a mismatch is a bug, not rounding.
    pub fn dyadic(&mut self) -> f32 {
        (self.next_u32() % 17) as f32 / 4.0 - 2.0
    }

    /// Uniform in [-scale, scale).
    pub fn uniform(&mut self, scale: f32) -> f32 {
        (self.next_u32() as f32 / 4_294_967_296.0 * 2.0 - 1.0) * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyphae_proto::tensor::to_bytes;

    #[test]
    fn f32_comparison_allows_the_tolerance_and_no_more() {
        let want = [1000.0f32, 0.0];
        let close = to_bytes(&[1000.0 + 0.009, 0.0000009], f32::to_le_bytes);
        compare_f32("close", &close, &want).unwrap();
        let far = to_bytes(&[1000.0 + 0.02, 0.0], f32::to_le_bytes);
        assert!(matches!(compare_f32("far", &far, &want), Err(Failure::Mismatch { index: 0, .. })));
        assert!(matches!(compare_f32("short", &far[..4], &want), Err(Failure::Length { .. })));
    }

    #[test]
    fn u32_comparison_is_exact() {
        let got = to_bytes(&[1u32, 2, 3], u32::to_le_bytes);
        compare_u32("same", &got, &[1, 2, 3]).unwrap();
        assert!(matches!(compare_u32("off", &got, &[1, 2, 4]), Err(Failure::Mismatch { index: 2, .. })));
    }
}
