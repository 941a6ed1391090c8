//! Reference for `matmul_bias`: Y[M×N] = X[M×K]·Wᵀ + b with W as [N×K] (PyTorch's Linear).

/// `x` holds M·K elements, `w` N·K, `bias` (if any) N; returns M·N. Panics if the slices are
/// shorter than the dims say (callers build them).
pub fn matmul_bias(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
    assert!(x.len() >= m * k && w.len() >= n * k, "matmul_bias inputs shorter than {m}×{n}×{k}");
    assert!(bias.is_none_or(|b| b.len() >= n), "matmul_bias bias shorter than {n}");
    let mut y = vec![0.0f32; m * n];
    for row in 0..m {
        let x_row = &x[row * k..(row + 1) * k];
        for col in 0..n {
            let w_row = &w[col * k..(col + 1) * k];
            let dot: f64 = x_row.iter().zip(w_row).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let b = bias.map_or(0.0, |b| f64::from(b[col]));
            y[row * n + col] = (dot + b) as f32;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_bias_uses_the_linear_layout() {
        // X = [1 2; 3 4], W = [[1 0]; [1 1]; [0 2]] (3 outputs of 2 inputs), b = [0.5, 0, -1]
        let x = [1.0, 2.0, 3.0, 4.0];
        let w = [1.0, 0.0, 1.0, 1.0, 0.0, 2.0];
        let b = [0.5, 0.0, -1.0];
        assert_eq!(matmul_bias(&x, &w, Some(&b), 2, 3, 2), vec![1.5, 3.0, 3.0, 3.5, 7.0, 7.0]);
        assert_eq!(matmul_bias(&x, &w, None, 2, 3, 2), vec![1.0, 3.0, 4.0, 3.0, 7.0, 8.0]);
        assert_eq!(matmul_bias(&[], &[], Some(&b), 1, 3, 0), vec![0.5, 0.0, -1.0]);
    }
}
