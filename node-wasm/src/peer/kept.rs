//! Outputs kept for peers, by digest: the newest first, up to a byte budget. A handed-off
//! output is needed for one pipeline step, so the oldest go first when room runs out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use hyphae_proto::Sha256;

/// Bytes kept at most: a few batches of a small model's activations.
pub const BUDGET: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct Kept {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    budget: usize,
    bytes: usize,
    /// Oldest first.
    entries: VecDeque<(Sha256, Arc<[u8]>)>,
}

impl Default for Kept {
    fn default() -> Self {
        Kept::with_budget(BUDGET)
    }
}

impl Kept {
    pub fn with_budget(budget: usize) -> Kept {
        Kept { inner: Arc::new(Mutex::new(Inner { budget, bytes: 0, entries: VecDeque::new() })) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, sha256: Sha256, bytes: Vec<u8>) {
        let mut inner = self.lock();
        if bytes.len() > inner.budget || inner.entries.iter().any(|(s, _)| *s == sha256) {
            return;
        }
        inner.bytes += bytes.len();
        inner.entries.push_back((sha256, bytes.into()));
        while inner.bytes > inner.budget {
            let Some((_, old)) = inner.entries.pop_front() else { break };
            inner.bytes -= old.len();
        }
    }

    pub fn get(&self, sha256: &Sha256) -> Option<Arc<[u8]>> {
        self.lock().entries.iter().find(|(s, _)| s == sha256).map(|(_, b)| b.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_outputs_go_when_the_budget_is_spent() {
        let kept = Kept::with_budget(10);
        let (a, b) = (Sha256::of(b"a"), Sha256::of(b"b"));
        kept.insert(a, vec![1; 6]);
        kept.insert(b, vec![2; 6]);
        assert!(kept.get(&a).is_none());
        assert_eq!(kept.get(&b).as_deref(), Some(&[2u8; 6][..]));
        kept.insert(Sha256::of(b"huge"), vec![0; 11]);
        assert!(kept.get(&b).is_some(), "an output over the whole budget is not kept and evicts nothing");
    }
}
