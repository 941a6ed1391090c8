//! Idle GPU buffers kept between launches, by use (storage or staging) and size class, so a
//! worker running the same shape of task again allocates nothing.
//!
//! A pooled buffer holds whatever the last launch left in it. The executor binds only the
//! launch's declared size (so `arrayLength` and readback see exactly that), writes every input
//! and clears every zero-initialised output with `clear_buffer` before the dispatch; nothing
//! here may skip that. The pool only stores and hands out buffers: it is generic over the buffer
//! type so its bookkeeping is tested without a device.

use std::collections::HashMap;

/// The smallest size class: tiny buffers share one class instead of one class per size.
pub const MIN_CLASS: u64 = 256;
/// Idle buffers kept per (use, class); more are dropped on release.
pub const MAX_IDLE_PER_CLASS: usize = 4;
/// Total bytes of idle buffers kept; a release beyond it drops the buffer.
pub const MAX_IDLE_BYTES: u64 = 512 << 20;

/// What a pooled buffer is for; each use has its own wgpu usage flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferUse {
    /// Bound to the shader: `STORAGE | COPY_DST | COPY_SRC`.
    Storage,
    /// Readback target: `MAP_READ | COPY_DST`.
    Staging,
}

/// The allocation size for a request of `size` bytes: the next power of two (at least
/// [`MIN_CLASS`]), or `size` rounded up to 4 when the power of two would pass
/// `max_buffer_size`. Never smaller than `size`.
pub fn size_class(size: u64, max_buffer_size: u64) -> u64 {
    let class = size.max(MIN_CLASS).checked_next_power_of_two().unwrap_or(u64::MAX);
    if class <= max_buffer_size { class } else { size.div_ceil(4) * 4 }
}

/// Counters for tests and the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub created: u64,
    pub reused: u64,
    pub idle_buffers: usize,
    pub idle_bytes: u64,
}

#[derive(Debug)]
pub struct Pool<B> {
    idle: HashMap<(BufferUse, u64), Vec<B>>,
    stats: PoolStats,
}

impl<B> Default for Pool<B> {
    fn default() -> Self {
        Pool { idle: HashMap::new(), stats: PoolStats::default() }
    }
}

impl<B> Pool<B> {
    /// An idle buffer of exactly this use and class, counted as reused; `None` means the caller
    /// creates one (and calls [`Pool::note_created`]).
    pub fn take(&mut self, use_: BufferUse, class: u64) -> Option<B> {
        let buffer = self.idle.get_mut(&(use_, class))?.pop()?;
        self.stats.reused += 1;
        self.stats.idle_buffers -= 1;
        self.stats.idle_bytes -= class;
        Some(buffer)
    }

    pub fn note_created(&mut self) {
        self.stats.created += 1;
    }

    /// Keeps `buffer` for reuse unless its class or the pool is full; returns it when it was
    /// not kept, for the caller to drop (or destroy).
    pub fn put(&mut self, use_: BufferUse, class: u64, buffer: B) -> Option<B> {
        let slot = self.idle.entry((use_, class)).or_default();
        if slot.len() >= MAX_IDLE_PER_CLASS || self.stats.idle_bytes + class > MAX_IDLE_BYTES {
            return Some(buffer);
        }
        slot.push(buffer);
        self.stats.idle_buffers += 1;
        self.stats.idle_bytes += class;
        None
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_powers_of_two_within_the_device() {
        assert_eq!(size_class(4, 1 << 30), MIN_CLASS);
        assert_eq!(size_class(256, 1 << 30), 256);
        assert_eq!(size_class(1000, 1 << 30), 1024);
        assert_eq!(size_class(1024, 1 << 30), 1024);
        // The power of two would not fit the device: the exact size (4-aligned) does.
        assert_eq!(size_class(600 << 20, 1 << 30), 1 << 30);
        assert_eq!(size_class((600 << 20) + 4, 1000 << 20), (600 << 20) + 4);
    }

    #[test]
    fn released_buffer_is_handed_out_again_for_its_class_only() {
        let mut pool = Pool::default();
        assert_eq!(pool.take(BufferUse::Storage, 1024), None);
        pool.note_created();
        assert_eq!(pool.put(BufferUse::Storage, 1024, 7u32), None);
        assert_eq!(pool.take(BufferUse::Staging, 1024), None);
        assert_eq!(pool.take(BufferUse::Storage, 2048), None);
        assert_eq!(pool.take(BufferUse::Storage, 1024), Some(7));
        let stats = pool.stats();
        assert_eq!((stats.created, stats.reused, stats.idle_buffers, stats.idle_bytes), (1, 1, 0, 0));
    }

    #[test]
    fn pool_is_bounded_per_class_and_in_bytes() {
        let mut pool = Pool::default();
        for i in 0..MAX_IDLE_PER_CLASS as u32 {
            assert_eq!(pool.put(BufferUse::Storage, 256, i), None);
        }
        assert_eq!(pool.put(BufferUse::Storage, 256, 99), Some(99));
        assert_eq!(pool.put(BufferUse::Staging, MAX_IDLE_BYTES, 5), Some(5));
        assert_eq!(pool.stats().idle_bytes, 256 * MAX_IDLE_PER_CLASS as u64);
    }
}
