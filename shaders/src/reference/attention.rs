//! Reference for `attention`: per batch, head and query, `softmax(q·kⱼ/√d over real keys j)·V`,
//! computed the textbook way (all scores, max-subtracted softmax, weighted sum) in f64. Q, K, V
//! and the output are [batch, seq, heads·head_dim]; a query with no real key gets zeros.

/// The shape of Q, K, V and the output: [batch, seq, heads·head_dim].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// `mask` holds batch·seq entries, 1 = real token.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], mask: &[u32], shape: Shape) -> Vec<f32> {
    let Shape { batch, seq, heads, head_dim } = shape;
    let width = heads * head_dim;
    let len = batch * seq * width;
    assert!(q.len() >= len && k.len() >= len && v.len() >= len, "attention inputs too short");
    assert!(mask.len() >= batch * seq, "attention mask shorter than {batch}×{seq}");
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut out = vec![0.0f32; len];
    for b in 0..batch {
        let keys: Vec<usize> = (0..seq).filter(|&j| mask[b * seq + j] != 0).collect();
        if keys.is_empty() {
            continue;
        }
        for h in 0..heads {
            let at = |t: usize, j: usize| (b * seq + t) * width + h * head_dim + j;
            for i in 0..seq {
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        (0..head_dim).map(|c| f64::from(q[at(i, c)]) * f64::from(k[at(j, c)])).sum::<f64>() * scale
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for c in 0..head_dim {
                    let sum: f64 = keys.iter().zip(&weights).map(|(&j, w)| w * f64::from(v[at(j, c)])).sum();
                    out[at(i, c)] = (sum / total) as f32;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_averages_values_of_equal_scores_and_skips_padding() {
        // One sequence of 3 tokens, the last padded; one head of dim 1; q·k equal for all keys.
        let q = [0.0, 0.0, 0.0];
        let k = [1.0, 2.0, 3.0];
        let v = [2.0, 4.0, 100.0];
        let shape = Shape { batch: 1, seq: 3, heads: 1, head_dim: 1 };
        assert_eq!(attention(&q, &k, &v, &[1, 1, 0], shape), vec![3.0, 3.0, 3.0]);
        // No real key at all: zeros.
        assert_eq!(attention(&q, &k, &v, &[0, 0, 0], shape), vec![0.0; 3]);
    }
}
