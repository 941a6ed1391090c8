//! Spot checks of a model shard's result: the relay recomputes a few of the batch's sequences on
//! the shard's CPU reference ([`reference_shard`]) and compares their rows of the worker's output
//! within the job's tolerance. The sequences are drawn after the result is in, and no worker
//! sees which, so a worker cannot lie only where nobody looks.
//!
//! Sequences of a batch are independent (attention stays within a sequence, everything else is
//! per token), so a sequence recomputed alone, padded to the batch's length with its own mask,
//! gives exactly its rows of the batch. Checking `s` of `B` sequences costs `s/B` of the shard's
//! work on the relay's CPU. A result wrong in `w` sequences passes with probability
//! `C(B−w, s) / C(B, s)` ≤ `(1 − w/B)^s`: a worker lying on every sequence (noise, a stale
//! answer, a skipped layer) never passes; one lying on a single sequence is caught `s/B` of the
//! time, and each catch costs it its standing: a suspect's results count for nothing until it
//! earns trust back.

use hyphae_proto::api::Tolerance;
use hyphae_shaders::model::{BertConfig, ModelError, ShardInput, ShardPlan, ShardWeights, reference_shard};
use rand::Rng;
use rand::seq::index;

use super::tolerance::floats_match;

/// Why a shard's output was not believed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpotError {
    #[error("the output has {got} floats; {batch} sequences of this shard make {want}")]
    Size { got: usize, want: usize, batch: usize },
    #[error("sequence {sequence}, value {index}: the output has {got}, the reference {want}")]
    Mismatch { sequence: usize, index: usize, got: f32, want: f32 },
}

/// One batch of a shard task, as the relay handed it out.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub batch: u32,
    pub seq: u32,
    /// `[batch, seq]`: nonzero for a real token.
    pub mask: &'a [u32],
    pub input: ShardInput<'a>,
}

/// Draws up to `count` distinct sequences that hold at least one real token (an all-padding
/// sequence has nothing to check), all of them if there are fewer.
pub fn draw(batch: &Batch<'_>, count: usize, rng: &mut impl Rng) -> Vec<usize> {
    let seq = batch.seq as usize;
    let real: Vec<usize> =
        (0..batch.batch as usize).filter(|&b| batch.mask[b * seq..(b + 1) * seq].iter().any(|&m| m != 0)).collect();
    let mut drawn: Vec<usize> =
        index::sample(rng, real.len(), count.min(real.len())).into_iter().map(|i| real[i]).collect();
    drawn.sort_unstable();
    drawn
}

/// The reference's rows of the drawn sequences, to compare every replica's output with.
#[derive(Clone, Debug)]
pub struct Expected {
    batch: usize,
    /// Floats of one sequence in the output: `seq × hidden`, or `hidden` after pooling.
    per_sequence: usize,
    rows: Vec<(usize, Vec<f32>)>,
}

/// Runs the shard's reference on each of `sequences` alone. An input that does not fit the
/// shard is an error (it came from workers, through a digest the relay verified, but still).
pub fn expected(
    config: &BertConfig,
    plan: &ShardPlan,
    weights: &ShardWeights,
    batch: &Batch<'_>,
    sequences: &[usize],
) -> Result<Expected, ModelError> {
    let seq = batch.seq as usize;
    let hidden = config.hidden_size as usize;
    let tokens = batch.batch as usize * seq;
    if batch.mask.len() != tokens {
        return Err(ModelError::Input(format!("mask has {} entries, want {}×{seq}", batch.mask.len(), batch.batch)));
    }
    let input_len = match batch.input {
        ShardInput::Tokens(ids) => (ids.len(), tokens),
        ShardInput::Hidden(values) => (values.len(), tokens * hidden),
    };
    if input_len.0 != input_len.1 {
        return Err(ModelError::Input(format!("{} input values, want {}", input_len.0, input_len.1)));
    }
    let rows = sequences
        .iter()
        .map(|&b| {
            let mask = &batch.mask[b * seq..(b + 1) * seq];
            let input = match batch.input {
                ShardInput::Tokens(ids) => ShardInput::Tokens(&ids[b * seq..(b + 1) * seq]),
                ShardInput::Hidden(values) => ShardInput::Hidden(&values[b * seq * hidden..(b + 1) * seq * hidden]),
            };
            Ok((b, reference_shard(config, plan, weights, 1, batch.seq, mask, input)?))
        })
        .collect::<Result<_, ModelError>>()?;
    let per_sequence = if plan.pooling { hidden } else { seq * hidden };
    Ok(Expected { batch: batch.batch as usize, per_sequence, rows })
}

/// Compares a replica's whole output with the reference on the drawn sequences.
pub fn check(expected: &Expected, output: &[f32], tolerance: &Tolerance) -> Result<(), SpotError> {
    let want = expected.batch * expected.per_sequence;
    if output.len() != want {
        return Err(SpotError::Size { got: output.len(), want, batch: expected.batch });
    }
    for (sequence, rows) in &expected.rows {
        let got = &output[sequence * expected.per_sequence..(sequence + 1) * expected.per_sequence];
        if let Some(index) = got.iter().zip(rows).position(|(&g, &w)| !floats_match(g, w, tolerance)) {
            return Err(SpotError::Mismatch { sequence: *sequence, index, got: got[index], want: rows[index] });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hyphae_shaders::model::plan;
    use hyphae_shaders::testsuite::model::{random_model, small_config};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const TOLERANCE: Tolerance = Tolerance { abs: 1e-5, rel: 1e-5 };

    /// A small model in two shards, a batch of 4 sequences (the last all padding), and each
    /// shard's reference output on the whole batch.
    struct Fixture {
        config: BertConfig,
        plans: Vec<ShardPlan>,
        weights: Vec<ShardWeights>,
        ids: Vec<u32>,
        mask: Vec<u32>,
        hidden: Vec<f32>,
        pooled: Vec<f32>,
    }

    const BATCH: u32 = 4;
    const SEQ: u32 = 6;

    fn fixture() -> Fixture {
        let config = small_config();
        let file = random_model(&config, 7);
        let plans = plan(&config, 2).unwrap();
        let weights: Vec<ShardWeights> =
            plans.iter().map(|p| ShardWeights::parse(&config, p, &file).unwrap()).collect();
        let lengths = [6usize, 3, 1, 0];
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for (b, &len) in lengths.iter().enumerate() {
            for t in 0..SEQ as usize {
                ids.push(if t < len { (b * 7 + t * 3) as u32 % config.vocab_size } else { 0 });
                mask.push(u32::from(t < len));
            }
        }
        let hidden =
            reference_shard(&config, &plans[0], &weights[0], BATCH, SEQ, &mask, ShardInput::Tokens(&ids)).unwrap();
        let pooled =
            reference_shard(&config, &plans[1], &weights[1], BATCH, SEQ, &mask, ShardInput::Hidden(&hidden)).unwrap();
        Fixture { config, plans, weights, ids, mask, hidden, pooled }
    }

    impl Fixture {
        fn first(&self) -> Batch<'_> {
            Batch { batch: BATCH, seq: SEQ, mask: &self.mask, input: ShardInput::Tokens(&self.ids) }
        }

        fn last(&self) -> Batch<'_> {
            Batch { batch: BATCH, seq: SEQ, mask: &self.mask, input: ShardInput::Hidden(&self.hidden) }
        }
    }

    #[test]
    fn draws_distinct_sequences_with_real_tokens_only() {
        let f = fixture();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let drawn = draw(&f.first(), 2, &mut rng);
            assert_eq!(drawn.len(), 2);
            assert!(drawn[0] < drawn[1] && drawn[1] < 3, "{drawn:?}");
        }
        assert_eq!(draw(&f.first(), 10, &mut rng), vec![0, 1, 2]);
    }

    #[test]
    fn sequences_recomputed_alone_are_their_rows_of_the_batch() {
        let f = fixture();
        let first = expected(&f.config, &f.plans[0], &f.weights[0], &f.first(), &[0, 1, 2]).unwrap();
        check(&first, &f.hidden, &TOLERANCE).unwrap();
        let last = expected(&f.config, &f.plans[1], &f.weights[1], &f.last(), &[0, 1, 2]).unwrap();
        check(&last, &f.pooled, &TOLERANCE).unwrap();
    }

    #[test]
    fn a_wrong_value_in_a_drawn_sequence_is_caught_and_elsewhere_is_not_looked_at() {
        let f = fixture();
        let hidden = f.config.hidden_size as usize;
        let expected = expected(&f.config, &f.plans[1], &f.weights[1], &f.last(), &[1]).unwrap();
        let mut lie = f.pooled.clone();
        lie[hidden + 5] += 0.01;
        assert_eq!(
            check(&expected, &lie, &TOLERANCE),
            Err(SpotError::Mismatch { sequence: 1, index: 5, got: lie[hidden + 5], want: f.pooled[hidden + 5] })
        );
        let mut elsewhere = f.pooled.clone();
        elsewhere[2 * hidden] += 0.01;
        check(&expected, &elsewhere, &TOLERANCE).unwrap();
    }

    #[test]
    fn an_output_of_the_wrong_size_or_with_nan_fails() {
        let f = fixture();
        let expected = expected(&f.config, &f.plans[0], &f.weights[0], &f.first(), &[0]).unwrap();
        let short = &f.hidden[..f.hidden.len() - 1];
        assert!(matches!(check(&expected, short, &TOLERANCE), Err(SpotError::Size { .. })));
        let mut nan = f.hidden.clone();
        nan[3] = f32::NAN;
        assert!(matches!(check(&expected, &nan, &TOLERANCE), Err(SpotError::Mismatch { sequence: 0, index: 3, .. })));
    }

    #[test]
    fn an_input_that_does_not_fit_the_shard_is_an_error_not_a_panic() {
        let f = fixture();
        let short = Batch { input: ShardInput::Tokens(&f.ids[1..]), ..f.first() };
        assert!(matches!(expected(&f.config, &f.plans[0], &f.weights[0], &short, &[0]), Err(ModelError::Input(_))));
        let mut ids = f.ids.clone();
        ids[0] = f.config.vocab_size;
        let past = Batch { input: ShardInput::Tokens(&ids), ..f.first() };
        assert!(matches!(expected(&f.config, &f.plans[0], &f.weights[0], &past, &[0]), Err(ModelError::Input(_))));
    }
}
