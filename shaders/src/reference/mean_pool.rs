//! Reference for `mean_pool`: the masked mean over the sequence; no real token pools to zeros.

/// `x` holds batch·seq·hidden, `mask` batch·seq (1 = real token); returns batch·hidden.
pub fn mean_pool(x: &[f32], mask: &[u32], batch: usize, seq: usize, hidden: usize) -> Vec<f32> {
    assert!(x.len() >= batch * seq * hidden && mask.len() >= batch * seq, "mean_pool inputs too short");
    let mut out = vec![0.0f32; batch * hidden];
    for b in 0..batch {
        let real: Vec<usize> = (0..seq).filter(|&s| mask[b * seq + s] != 0).collect();
        if real.is_empty() {
            continue;
        }
        for c in 0..hidden {
            let sum: f64 = real.iter().map(|&s| f64::from(x[(b * seq + s) * hidden + c])).sum();
            out[b * hidden + c] = (sum / real.len() as f64) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_averages_real_tokens_only() {
        let x = [1.0, 10.0, 3.0, 30.0, 100.0, 100.0, 7.0, 7.0, 8.0, 8.0, 9.0, 9.0];
        let got = mean_pool(&x, &[1, 1, 0, 0, 0, 0], 2, 3, 2);
        assert_eq!(got, vec![2.0, 20.0, 0.0, 0.0]);
    }
}
