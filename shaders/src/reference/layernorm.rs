//! Reference for `layernorm`: `LN(x + r)` over rows of `cols`, biased variance, as PyTorch.

/// `x` (and `residual`, if any) hold rows·cols elements, `gamma` and `beta` cols.
pub fn layernorm(
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
) -> Vec<f32> {
    assert!(x.len() >= rows * cols && gamma.len() >= cols && beta.len() >= cols, "layernorm inputs too short");
    assert!(residual.is_none_or(|r| r.len() >= rows * cols), "layernorm residual too short");
    let mut y = vec![0.0f32; rows * cols];
    for row in 0..rows {
        let v: Vec<f64> = (0..cols)
            .map(|c| {
                let i = row * cols + c;
                f64::from(x[i]) + residual.map_or(0.0, |r| f64::from(r[i]))
            })
            .collect();
        let mean = v.iter().sum::<f64>() / cols as f64;
        let variance = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / cols as f64;
        let inv_std = 1.0 / (variance + f64::from(eps)).sqrt();
        for c in 0..cols {
            y[row * cols + c] = ((v[c] - mean) * inv_std * f64::from(gamma[c]) + f64::from(beta[c])) as f32;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layernorm_centres_scales_and_adds_the_residual() {
        // Row [1, 3]: mean 2, variance 1 → [-1, 1]; then gamma [2, 1], beta [0, 10].
        let y = layernorm(&[1.0, 3.0], None, &[2.0, 1.0], &[0.0, 10.0], 1, 2, 0.0);
        assert_eq!(y, vec![-2.0, 11.0]);
        let y = layernorm(&[0.0, 0.0], Some(&[1.0, 3.0]), &[2.0, 1.0], &[0.0, 10.0], 1, 2, 0.0);
        assert_eq!(y, vec![-2.0, 11.0]);
        // A constant row normalises to beta.
        assert_eq!(layernorm(&[5.0; 3], None, &[1.0; 3], &[0.5; 3], 1, 3, 1e-12), vec![0.5; 3]);
    }
}
