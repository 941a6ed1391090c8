//! Text to token ids, on the relay (workers receive ids, so browsers need no tokenizer). Built
//! from the model's `tokenizer.json` with its padding turned off and truncation set to the
//! model's `max_seq_length`: the shipped all-MiniLM-L6-v2 file says 128, which
//! sentence-transformers overrides with 256 (DESIGN.md §5).

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::ModelError;

pub struct TextTokenizer {
    /// Truncates at `max_seq_length`, as the model is run.
    truncating: Tokenizer,
    /// Does not truncate: counts what a long text would have been, for the length limit.
    counting: Tokenizer,
    max_seq_length: u32,
}

/// One input, tokenized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Ids with the special tokens, truncated to `max_seq_length`.
    pub ids: Vec<u32>,
    /// How many tokens the whole text has, before truncation.
    pub untruncated: usize,
}

impl TextTokenizer {
    pub fn new(tokenizer_json: &str, max_seq_length: u32) -> Result<TextTokenizer, ModelError> {
        let parse = || -> Result<Tokenizer, ModelError> {
            let mut t: Tokenizer =
                tokenizer_json.parse().map_err(|e| ModelError::Invalid(format!("tokenizer.json: {e}")))?;
            t.with_padding(None);
            Ok(t)
        };
        let mut truncating = parse()?;
        truncating
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length as usize,
                strategy: TruncationStrategy::LongestFirst,
                direction: TruncationDirection::Right,
                stride: 0,
            }))
            .map_err(|e| ModelError::Invalid(format!("tokenizer truncation: {e}")))?;
        let mut counting = parse()?;
        counting.with_truncation(None).map_err(|e| ModelError::Invalid(format!("tokenizer: {e}")))?;
        Ok(TextTokenizer { truncating, counting, max_seq_length })
    }

    pub fn encode(&self, text: &str) -> Result<Tokens, ModelError> {
        let failed = |e: tokenizers::Error| ModelError::Invalid(format!("tokenizing: {e}"));
        let ids = self.truncating.encode(text, true).map_err(failed)?.get_ids().to_vec();
        // WordPiece never makes more tokens than characters (plus [CLS] and [SEP]): a text that
        // short cannot have been truncated, and needs no second pass.
        let untruncated = if text.chars().count() + 2 <= self.max_seq_length as usize {
            ids.len()
        } else {
            self.counting.encode(text, true).map_err(failed)?.len()
        };
        Ok(Tokens { ids, untruncated })
    }
}
