//! Reference for `matmul`: C[M×N] = A[M×K]·B[K×N], row-major f32, accumulating in k order with
//! fused multiply-add like the kernel (GPUs may still round differently: compare with a
//! tolerance).

/// `a` holds M·K elements, `b` K·N; returns M·N. Panics if the slices are shorter than the dims
/// say (callers build both).
pub fn matmul(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    assert!(a.len() >= m * k && b.len() >= k * n, "matmul inputs shorter than {m}×{n}×{k}");
    let mut c = vec![0.0f32; m * n];
    for row in 0..m {
        for col in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc = a[row * k + p].mul_add(b[p * n + col], acc);
            }
            c[row * n + col] = acc;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_multiplies_small_matrices() {
        // [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [58 64; 139 154]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        assert_eq!(matmul(&a, &b, 2, 2, 3), vec![58.0, 64.0, 139.0, 154.0]);
        assert_eq!(matmul(&[], &[], 2, 2, 0), vec![0.0; 4]);
    }
}
