//! Where a worker keeps its secp256k1 key: a file on native nodes (`file.rs`), IndexedDB in the
//! browser (`indexeddb.rs`). The key is the worker's identity: its address is what the relay's
//! reputation and receipts name.

#[cfg(not(target_arch = "wasm32"))]
mod file;
#[cfg(target_arch = "wasm32")]
mod indexeddb;

#[cfg(not(target_arch = "wasm32"))]
pub use file::{KeyFileError, load_or_create};
#[cfg(target_arch = "wasm32")]
pub use indexeddb::{KeyStoreError, load_or_create};
