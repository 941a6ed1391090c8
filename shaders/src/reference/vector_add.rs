//! Reference for `vector_add`: `c[i] = a[i] + b[i]` over the shorter input.

pub fn vector_add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_add_adds_elementwise_over_the_shorter_input() {
        assert_eq!(vector_add(&[1.0, 2.5, -3.0], &[0.5, 0.5]), vec![1.5, 3.0]);
    }
}
