//! Reference for `l2_normalize`: rows scaled to unit length, `x / max(‖x‖, 1e-12)`.

pub fn l2_normalize(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert!(x.len() >= rows * cols, "l2_normalize input shorter than {rows}×{cols}");
    let mut y = vec![0.0f32; rows * cols];
    for row in 0..rows {
        let xs = &x[row * cols..(row + 1) * cols];
        let norm = xs.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt().max(1e-12);
        for (c, &v) in xs.iter().enumerate() {
            y[row * cols + c] = (f64::from(v) / norm) as f32;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_normalize_makes_unit_rows_and_keeps_zero_rows() {
        assert_eq!(l2_normalize(&[3.0, 4.0, 0.0, 0.0], 2, 2), vec![0.6, 0.8, 0.0, 0.0]);
    }
}
