//! Reference for `softmax`: row softmax with an optional key mask; masked columns and fully
//! masked rows are zeros.

/// `x` holds rows·cols; `mask`, if any, `(rows / rows_per_mask_row)·cols` (1 = keep).
pub fn softmax(x: &[f32], rows: usize, cols: usize, mask: Option<(&[u32], usize)>) -> Vec<f32> {
    assert!(x.len() >= rows * cols, "softmax input shorter than {rows}×{cols}");
    let mut y = vec![0.0f32; rows * cols];
    for row in 0..rows {
        let kept = |c: usize| mask.is_none_or(|(m, per)| m[(row / per.max(1)) * cols + c] != 0);
        let xs = &x[row * cols..(row + 1) * cols];
        let Some(max) = (0..cols).filter(|&c| kept(c)).map(|c| xs[c]).reduce(f32::max) else { continue };
        let total: f64 = (0..cols).filter(|&c| kept(c)).map(|c| (f64::from(xs[c]) - f64::from(max)).exp()).sum();
        for c in (0..cols).filter(|&c| kept(c)) {
            y[row * cols + c] = ((f64::from(xs[c]) - f64::from(max)).exp() / total) as f32;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_normalises_unmasked_columns_only() {
        let y = softmax(&[0.0, 0.0, 1000.0, 0.0], 2, 2, None);
        assert_eq!(y, vec![0.5, 0.5, 1.0, 0.0]);
        // Second mask row masks everything: zeros, not NaN.
        let y = softmax(&[1.0, 2.0, 3.0, 4.0], 2, 2, Some((&[1, 0, 0, 0], 1)));
        assert_eq!(y, vec![1.0, 0.0, 0.0, 0.0]);
    }
}
