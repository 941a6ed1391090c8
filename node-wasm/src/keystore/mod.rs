//! Where a worker keeps its secp256k1 key: a file on native nodes (`file.rs`), IndexedDB in the
//! browser (added with the browser worker). The key is the worker's identity: its address is what
//! the relay's reputation and receipts name.

#[cfg(not(target_arch = "wasm32"))]
mod file;

#[cfg(not(target_arch = "wasm32"))]
pub use file::{KeyFileError, load_or_create};
