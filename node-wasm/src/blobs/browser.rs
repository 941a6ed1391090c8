//! Browser blob cache: in memory for the life of the worker.

use std::cell::RefCell;
use std::collections::HashMap;

use hyphae_proto::BlobId;

#[derive(Default)]
pub struct BlobCache {
    blobs: RefCell<HashMap<BlobId, Vec<u8>>>,
}

impl BlobCache {
    pub fn new() -> BlobCache {
        BlobCache::default()
    }

    pub async fn get(&self, id: &BlobId) -> Option<Vec<u8>> {
        self.blobs.borrow().get(id).cloned()
    }

    pub async fn put(&self, id: &BlobId, bytes: &[u8]) {
        self.blobs.borrow_mut().insert(*id, bytes.to_vec());
    }
}
