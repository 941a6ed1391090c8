//! Browser blob cache: the Cache API (`caches.open("hyphae-blobs")`), which outlives the page, so
//! a returning visitor's worker does not fetch a model shard's weights again. Where the Cache API
//! is missing (insecure contexts), nothing is cached.

use hyphae_proto::BlobId;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Response};

const CACHE: &str = "hyphae-blobs";

#[derive(Default)]
pub struct BlobCache;

impl BlobCache {
    pub fn new() -> BlobCache {
        BlobCache
    }

    async fn open() -> Option<Cache> {
        let caches: CacheStorage = js_sys::Reflect::get(&js_sys::global(), &"caches".into()).ok()?.dyn_into().ok()?;
        JsFuture::from(caches.open(CACHE)).await.ok()?.dyn_into().ok()
    }

    /// The cache's key for a blob: a same-origin path no server answers, so it only lives here.
    fn key(id: &BlobId) -> String {
        format!("/hyphae-blob-cache/{}", id.0.to_hex())
    }

    pub async fn get(&self, id: &BlobId) -> Option<Vec<u8>> {
        let cache = Self::open().await?;
        let found = JsFuture::from(cache.match_with_str(&Self::key(id))).await.ok()?;
        let response: Response = found.dyn_into().ok()?;
        let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
        Some(js_sys::Uint8Array::new(&buffer).to_vec())
    }

    pub async fn put(&self, id: &BlobId, bytes: &[u8]) {
        let Some(cache) = Self::open().await else { return };
        let mut copy = bytes.to_vec();
        let Ok(response) = Response::new_with_opt_u8_array(Some(&mut copy)) else { return };
        if let Err(e) = JsFuture::from(cache.put_with_str(&Self::key(id), &response)).await {
            web_sys::console::warn_2(&"hyphae: could not cache a blob".into(), &e);
        }
    }
}
