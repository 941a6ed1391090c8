//! When two replicas' outputs "match": integer buffers bit for bit, float buffers element by
//! element within `|a - b| <= abs + rel * |b|`. GPUs do not promise identical float bits (no
//! WebGPU determinism), so the tolerance is what lets a browser and a native GPU agree.

use hyphae_proto::Dtype;
use hyphae_proto::api::Tolerance;
use hyphae_proto::tensor::f32s;

/// Compares two whole results: one buffer per output binding, `dtypes` in the same order.
pub fn outputs_match(a: &[impl AsRef<[u8]>], b: &[impl AsRef<[u8]>], dtypes: &[Dtype], tolerance: &Tolerance) -> bool {
    a.len() == b.len()
        && a.len() == dtypes.len()
        && a.iter().zip(b).zip(dtypes).all(|((a, b), dtype)| buffers_match(a.as_ref(), b.as_ref(), *dtype, tolerance))
}

pub fn buffers_match(a: &[u8], b: &[u8], dtype: Dtype, tolerance: &Tolerance) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true;
    }
    if !dtype.is_float() {
        return false;
    }
    f32s(a).zip(f32s(b)).all(|(x, y)| floats_match(x, y, tolerance))
}

pub fn floats_match(a: f32, b: f32, tolerance: &Tolerance) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let (a, b) = (f64::from(a), f64::from(b));
    (a - b).abs() <= tolerance.abs + tolerance.rel * b.abs()
}

#[cfg(test)]
mod tests {
    use hyphae_proto::tensor::to_bytes;

    use super::*;

    fn f(values: &[f32]) -> Vec<u8> {
        to_bytes(values, f32::to_le_bytes)
    }

    #[test]
    fn floats_within_tolerance_match_and_beyond_do_not() {
        let tol = Tolerance { rel: 1e-5, abs: 1e-6 };
        assert!(buffers_match(&f(&[1.0, 100.0]), &f(&[1.000_005, 100.000_9]), Dtype::F32, &tol));
        assert!(!buffers_match(&f(&[1.0]), &f(&[1.001]), Dtype::F32, &tol));
        assert!(buffers_match(&f(&[0.0]), &f(&[5e-7]), Dtype::F32, &tol));
    }

    #[test]
    fn integers_must_match_exactly() {
        let tol = Tolerance { rel: 1.0, abs: 1.0 };
        assert!(!buffers_match(&[1, 0, 0, 0], &[2, 0, 0, 0], Dtype::U32, &tol));
        assert!(buffers_match(&[1, 0, 0, 0], &[1, 0, 0, 0], Dtype::I32, &tol));
    }

    #[test]
    fn nan_matches_only_nan_and_infinities_only_themselves() {
        let tol = Tolerance { rel: 1.0, abs: 1.0 };
        assert!(buffers_match(&f(&[f32::NAN]), &f(&[-f32::NAN]), Dtype::F32, &tol));
        assert!(!buffers_match(&f(&[f32::NAN]), &f(&[0.0]), Dtype::F32, &tol));
        assert!(!buffers_match(&f(&[f32::INFINITY]), &f(&[f32::MAX]), Dtype::F32, &tol));
        assert!(!buffers_match(&f(&[f32::INFINITY]), &f(&[f32::NEG_INFINITY]), Dtype::F32, &tol));
    }

    #[test]
    fn different_lengths_never_match() {
        let tol = Tolerance::default();
        assert!(!buffers_match(&f(&[1.0]), &f(&[1.0, 1.0]), Dtype::F32, &tol));
        assert!(!outputs_match(&[f(&[1.0])], &[f(&[1.0]), f(&[1.0])], &[Dtype::F32], &tol));
    }
}
