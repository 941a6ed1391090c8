//! Reference for `embeddings`: `(word[id] + token_type[0]) + position[pos]` per token of a
//! batch of sequences, before the embeddings' LayerNorm.

/// `ids` holds batch·seq token ids (each below `word.len() / hidden`); returns batch·seq·hidden.
pub fn embeddings(
    ids: &[u32],
    word: &[f32],
    position: &[f32],
    token_type: &[f32],
    seq: usize,
    hidden: usize,
) -> Vec<f32> {
    assert!(seq > 0 && position.len() >= seq * hidden && token_type.len() >= hidden, "embeddings tables too short");
    let mut out = Vec::with_capacity(ids.len() * hidden);
    for (t, &id) in ids.iter().enumerate() {
        let word_row = &word[id as usize * hidden..(id as usize + 1) * hidden];
        let pos_row = &position[(t % seq) * hidden..(t % seq + 1) * hidden];
        out.extend((0..hidden).map(|c| (word_row[c] + token_type[c]) + pos_row[c]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_add_word_type_and_position_rows() {
        let word = [1.0, 2.0, 10.0, 20.0];
        let position = [0.5, 0.5, 0.25, 0.25];
        let token_type = [100.0, 200.0, -1.0, -1.0];
        // Two sequences of 2 tokens: positions restart at 0.
        let got = embeddings(&[1, 0, 0, 1], &word, &position, &token_type, 2, 2);
        assert_eq!(got, vec![110.5, 220.5, 101.25, 202.25, 101.5, 202.5, 110.25, 220.25]);
    }
}
