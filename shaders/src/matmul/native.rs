//! The native halves of tuning (the browser's are in `browser.rs`): a monotonic clock, and the
//! tuning cache as a JSON file on disk, so a worker tunes once per adapter and driver, not once
//! per start.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

/// Where tuning results are kept beyond the `Gpu` that measured them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TuneCache {
    /// Nowhere: each `Gpu` tunes for itself.
    Memory,
    /// This JSON file (created with its directory when first written).
    File(PathBuf),
}

/// Names the cache file; empty means [`TuneCache::Memory`].
pub const TUNE_CACHE_VAR: &str = "HYPHAE_TUNE_CACHE";

impl TuneCache {
    /// `$HYPHAE_TUNE_CACHE` if set (empty: memory only), else `$XDG_CACHE_HOME/hyphae/tune.json`,
    /// else `$HOME/.cache/hyphae/tune.json`, else memory only.
    pub fn from_env() -> TuneCache {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
        if let Some(value) = std::env::var_os(TUNE_CACHE_VAR) {
            return if value.is_empty() { TuneCache::Memory } else { TuneCache::File(value.into()) };
        }
        match var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|home| home.join(".cache"))) {
            Some(dir) => TuneCache::File(dir.join("hyphae").join("tune.json")),
            None => TuneCache::Memory,
        }
    }
}

/// Seconds since an arbitrary start, monotonic.
pub fn now() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The cache's text, if there is a readable one.
pub fn load_text(cache: &TuneCache) -> Option<String> {
    match cache {
        TuneCache::Memory => None,
        TuneCache::File(path) => std::fs::read_to_string(path).ok(),
    }
}

/// Replaces the cache's text: written beside it, then renamed over it, so a reader never sees
/// half a file and two workers writing at once leave one whole file.
pub fn store_text(cache: &TuneCache, text: &str) -> Result<(), String> {
    let TuneCache::File(path) = cache else { return Ok(()) };
    write_atomically(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}
