//! Content-addressed inputs: a task names a blob, the worker fetches it from the relay's
//! `GET /v1/blobs/{id}`, checks its SHA-256 against the id (a relay or proxy cannot swap it), and
//! keeps it in a per-target cache so a blob (a model shard, say) is fetched once.

#[cfg_attr(not(target_arch = "wasm32"), path = "native.rs")]
#[cfg_attr(target_arch = "wasm32", path = "browser.rs")]
mod cache;

use hyphae_proto::BlobId;
use hyphae_proto::frame::{FailureKind, TaskFailure};

pub use cache::BlobCache;

use crate::executor::failure;

pub struct BlobFetcher {
    relay: String,
    http: reqwest::Client,
    cache: BlobCache,
}

impl BlobFetcher {
    pub fn new(relay: &str, cache: BlobCache) -> BlobFetcher {
        BlobFetcher { relay: relay.trim_end_matches('/').to_owned(), http: reqwest::Client::new(), cache }
    }

    /// The blob's bytes if this worker has them cached (and they still hash to `id`).
    pub async fn cached(&self, id: &BlobId) -> Option<Vec<u8>> {
        self.cache.get(id).await.filter(|bytes| BlobId::of(bytes) == *id)
    }

    /// Caches bytes obtained elsewhere (from a peer); the caller checked them against `id`.
    pub async fn store(&self, id: &BlobId, bytes: &[u8]) {
        self.cache.put(id, bytes).await;
    }

    /// The blob's bytes, which are exactly `size` long and hash to `id`.
    pub async fn get(&self, id: &BlobId, size: u64) -> Result<Vec<u8>, TaskFailure> {
        if let Some(bytes) = self.cache.get(id).await
            && BlobId::of(&bytes) == *id
        {
            return check_size(id, bytes, size);
        }
        let url = format!("{}/v1/blobs/{id}", self.relay);
        let missing = |reason: String| failure(FailureKind::MissingBlob, format!("{id}: {reason}"));
        let response = self.http.get(&url).send().await.map_err(|e| missing(e.to_string()))?;
        if !response.status().is_success() {
            return Err(missing(format!("relay answered {}", response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| missing(e.to_string()))?.to_vec();
        if BlobId::of(&bytes) != *id {
            return Err(missing("content does not match its hash".into()));
        }
        self.cache.put(id, &bytes).await;
        check_size(id, bytes, size)
    }
}

fn check_size(id: &BlobId, bytes: Vec<u8>, size: u64) -> Result<Vec<u8>, TaskFailure> {
    if bytes.len() as u64 != size {
        return Err(failure(FailureKind::MissingBlob, format!("{id} is {} bytes, the task says {size}", bytes.len())));
    }
    Ok(bytes)
}
