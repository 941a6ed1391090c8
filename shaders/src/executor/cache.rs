//! Compiled pipelines kept between launches, keyed by the sha256 of the WGSL, the entry point
//! and the bind group layout the launch asks for, in a bounded LRU. A hit skips naga, the
//! device's compiler and layout creation; only pipelines that compiled without any captured
//! error are ever inserted.
//!
//! Generic over the cached value so the keying and the bound are tested without a device.

use std::num::NonZeroUsize;

use hyphae_proto::frame::Access;
use lru::LruCache;
use sha2::{Digest, Sha256};

/// Pipelines kept per `Gpu`. A worker sees few distinct shaders (one per job), so 64 covers
/// every job in flight with room to spare.
pub const CAPACITY: usize = 64;

pub type Key = [u8; 32];

/// The cache key of a launch: WGSL, entry point and `(binding, access)` in binding order. Each
/// part is length-prefixed so no two different launches hash the same bytes.
pub fn key(shader: &str, entry_point: &str, layout: &[(u32, Access)]) -> Key {
    let mut hasher = Sha256::new();
    hasher.update((shader.len() as u64).to_le_bytes());
    hasher.update(shader.as_bytes());
    hasher.update((entry_point.len() as u64).to_le_bytes());
    hasher.update(entry_point.as_bytes());
    hasher.update((layout.len() as u64).to_le_bytes());
    for &(binding, access) in layout {
        hasher.update(binding.to_le_bytes());
        hasher.update([match access {
            Access::Read => 0u8,
            Access::ReadWrite => 1,
        }]);
    }
    hasher.finalize().into()
}

/// Counters for tests and the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub len: usize,
    pub hits: u64,
    pub misses: u64,
}

#[derive(Debug)]
pub struct PipelineCache<V> {
    lru: LruCache<Key, V>,
    hits: u64,
    misses: u64,
}

impl<V: Clone> PipelineCache<V> {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        PipelineCache { lru: LruCache::new(capacity), hits: 0, misses: 0 }
    }

    /// The cached value (marking it most recently used), counting a hit or a miss.
    pub fn get(&mut self, key: &Key) -> Option<V> {
        let found = self.lru.get(key).cloned();
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    pub fn insert(&mut self, key: Key, value: V) {
        self.lru.put(key, value);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats { len: self.lru.len(), hits: self.hits, misses: self.misses }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_shader_entry_point_and_layout() {
        let base = key("a", "main", &[(0, Access::Read), (1, Access::ReadWrite)]);
        assert_eq!(base, key("a", "main", &[(0, Access::Read), (1, Access::ReadWrite)]));
        assert_ne!(base, key("b", "main", &[(0, Access::Read), (1, Access::ReadWrite)]));
        assert_ne!(base, key("a", "other", &[(0, Access::Read), (1, Access::ReadWrite)]));
        assert_ne!(base, key("a", "main", &[(0, Access::ReadWrite), (1, Access::ReadWrite)]));
        assert_ne!(base, key("a", "main", &[(0, Access::Read), (2, Access::ReadWrite)]));
        // Length prefixes keep the shader/entry point boundary from sliding.
        assert_ne!(key("ab", "c", &[]), key("a", "bc", &[]));
    }

    #[test]
    fn cache_counts_hits_and_evicts_least_recently_used() {
        let mut cache = PipelineCache::new(2);
        let (k1, k2, k3) = ([1; 32], [2; 32], [3; 32]);
        assert_eq!(cache.get(&k1), None);
        cache.insert(k1, "one");
        cache.insert(k2, "two");
        assert_eq!(cache.get(&k1), Some("one"));
        cache.insert(k3, "three");
        assert_eq!(cache.get(&k2), None, "k2 was least recently used");
        assert_eq!(cache.get(&k1), Some("one"));
        assert_eq!(cache.stats(), CacheStats { len: 2, hits: 2, misses: 2 });
    }
}
