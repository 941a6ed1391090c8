//! Freivalds' check of a matrix product: C = A·B is believed when C·r = A·(B·r) for secret random
//! vectors r, in O(mk + kn + mn) instead of the O(mkn) of computing the product again. A wrong C
//! (E = C − A·B ≠ 0) passes only if E·r ≈ 0 for every r drawn, which for r with independent
//! entries uniform in [−1, 1] needs E's nonzero rows to be nearly orthogonal to each r: for an
//! error above the tolerance, a vanishing chance per vector, and the worker never sees r.
//!
//! Floats: both sides are computed in f64 and compared per row within
//! `abs + rel · (|A|·(|B|·|r|))_i`, the scale of the sums that row adds up, so honest rounding
//! of a GPU (f32 accumulation, any order) passes and a perturbation of one element beyond the
//! job's tolerance does not.

use hyphae_proto::api::Tolerance;
use rand::Rng;

/// The shape of `C (m×n) = A (m×k) · B (k×n)`, all row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

/// Random vectors drawn per check: each one alone makes a wrong answer pass with negligible
/// probability; two guard against an unlucky draw.
const ROUNDS: usize = 2;

/// Why a product was not believed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FreivaldsError {
    #[error("{what} has {got} elements; a {m}×{k}·{k}×{n} product needs {want}", m = shape.m, k = shape.k, n = shape.n)]
    Size { what: &'static str, got: usize, want: usize, shape: Shape },
    #[error("row {row} of C·r is {got}, A·(B·r) gives {want}")]
    Mismatch { row: usize, got: f64, want: f64 },
}

/// Checks `c = a · b` with fresh random vectors from `rng`.
pub fn check(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    shape: Shape,
    tolerance: &Tolerance,
    rng: &mut impl Rng,
) -> Result<(), FreivaldsError> {
    let Shape { m, k, n } = shape;
    for (what, got, want) in [("A", a.len(), m * k), ("B", b.len(), k * n), ("C", c.len(), m * n)] {
        if got != want {
            return Err(FreivaldsError::Size { what, got, want, shape });
        }
    }
    for _ in 0..ROUNDS {
        let r: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..=1.0)).collect();
        let r_abs: Vec<f64> = r.iter().map(|x| x.abs()).collect();
        let br = mat_vec(b, k, n, &r);
        let br_abs = mat_vec_abs(b, k, n, &r_abs);
        let abr = mat_vec(a, m, k, &br);
        let scale = mat_vec_abs(a, m, k, &br_abs);
        let cr = mat_vec(c, m, n, &r);
        for row in 0..m {
            let (got, want) = (cr[row], abr[row]);
            if !got.is_finite() || (got - want).abs() > tolerance.abs + tolerance.rel * scale[row] {
                return Err(FreivaldsError::Mismatch { row, got, want });
            }
        }
    }
    Ok(())
}

/// `x (rows×cols) · v`, in f64.
fn mat_vec(x: &[f32], rows: usize, cols: usize, v: &[f64]) -> Vec<f64> {
    (0..rows).map(|i| x[i * cols..(i + 1) * cols].iter().zip(v).map(|(&e, &r)| f64::from(e) * r).sum()).collect()
}

/// `|x| · v` for a nonnegative `v`: the scale of each row's sum.
fn mat_vec_abs(x: &[f32], rows: usize, cols: usize, v: &[f64]) -> Vec<f64> {
    (0..rows).map(|i| x[i * cols..(i + 1) * cols].iter().zip(v).map(|(&e, &r)| f64::from(e).abs() * r).sum()).collect()
}

#[cfg(test)]
mod tests {
    use hyphae_shaders::reference::matmul::matmul;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const TOL: Tolerance = Tolerance { rel: 1e-5, abs: 1e-6 };

    fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn a_correct_product_passes_even_summed_in_another_order() {
        let mut rng = StdRng::seed_from_u64(1);
        let shape = Shape { m: 33, k: 70, n: 17 };
        let (a, b) = (random(33 * 70, &mut rng), random(70 * 17, &mut rng));
        let mut c = matmul(&a, &b, 33, 17, 70);
        // Another summation order rounds differently, as another GPU would.
        for row in 0..33 {
            for col in 0..17 {
                c[row * 17 + col] = (0..70).rev().fold(0.0f32, |acc, p| acc + a[row * 70 + p] * b[p * 17 + col]);
            }
        }
        assert_eq!(check(&a, &b, &c, shape, &TOL, &mut rng), Ok(()));
    }

    #[test]
    fn one_wrong_element_is_caught() {
        let mut rng = StdRng::seed_from_u64(2);
        let shape = Shape { m: 24, k: 24, n: 24 };
        let (a, b) = (random(24 * 24, &mut rng), random(24 * 24, &mut rng));
        for trial in 0..200 {
            let mut c = matmul(&a, &b, 24, 24, 24);
            let at = (trial * 7) % c.len();
            c[at] += 0.01;
            assert!(
                matches!(check(&a, &b, &c, shape, &TOL, &mut rng), Err(FreivaldsError::Mismatch { .. })),
                "trial {trial} passed a wrong product"
            );
        }
    }

    #[test]
    fn the_perturbation_of_a_lying_worker_is_caught() {
        let mut rng = StdRng::seed_from_u64(3);
        let shape = Shape { m: 8, k: 16, n: 4 };
        let (a, b) = (random(8 * 16, &mut rng), random(16 * 4, &mut rng));
        let mut c = matmul(&a, &b, 8, 4, 16);
        for x in &mut c {
            *x = f32::from_bits(x.to_bits() ^ 0x4000_0000);
        }
        assert!(check(&a, &b, &c, shape, &TOL, &mut rng).is_err());
    }

    #[test]
    fn outputs_of_the_wrong_size_are_refused() {
        let mut rng = StdRng::seed_from_u64(4);
        let shape = Shape { m: 2, k: 2, n: 2 };
        let err = check(&[0.0; 4], &[0.0; 4], &[0.0; 3], shape, &TOL, &mut rng).unwrap_err();
        assert!(matches!(err, FreivaldsError::Size { what: "C", got: 3, want: 4, .. }));
    }
}
