//! Per-second counts of the last minute, for the dashboard's chart and rate: tasks verified and
//! replica results rejected in each whole second since the relay started.

use std::collections::VecDeque;

/// Seconds kept: the chart's width plus the second still filling.
const KEPT: usize = hyphae_proto::api::Stats::HISTORY + 1;

#[derive(Debug, Default)]
pub struct History {
    /// (second since start, verified, rejected), oldest first, one entry per second that saw any.
    buckets: VecDeque<(u64, u32, u32)>,
}

impl History {
    fn bucket(&mut self, second: u64) -> &mut (u64, u32, u32) {
        if self.buckets.back().is_none_or(|b| b.0 != second) {
            self.buckets.push_back((second, 0, 0));
            while self.buckets.front().is_some_and(|b| b.0 + KEPT as u64 <= second) {
                self.buckets.pop_front();
            }
        }
        self.buckets.back_mut().expect("just pushed")
    }

    pub fn verified(&mut self, second: u64) {
        self.bucket(second).1 += 1;
    }

    pub fn rejected(&mut self, second: u64, n: u32) {
        if n > 0 {
            self.bucket(second).2 += n;
        }
    }

    /// Verified and rejected counts of the last `HISTORY` whole seconds before `now`, oldest first.
    pub fn series(&self, now: u64) -> (Vec<u32>, Vec<u32>) {
        let len = hyphae_proto::api::Stats::HISTORY;
        let mut verified = vec![0; len];
        let mut rejected = vec![0; len];
        for &(second, v, r) in &self.buckets {
            if second < now && second + len as u64 >= now {
                let i = len - (now - second) as usize;
                verified[i] = v;
                rejected[i] = r;
            }
        }
        (verified, rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_covers_the_last_whole_seconds_oldest_first() {
        let mut h = History::default();
        h.verified(3);
        h.verified(3);
        h.verified(9);
        h.rejected(9, 4);
        h.verified(10); // still filling at now = 10
        let (verified, rejected) = h.series(10);
        assert_eq!(verified.len(), 60);
        assert_eq!(verified[59], 1, "second 9");
        assert_eq!(verified[53], 2, "second 3");
        assert_eq!(rejected[59], 4);
        assert_eq!(verified.iter().sum::<u32>(), 3);
    }

    #[test]
    fn old_seconds_fall_out() {
        let mut h = History::default();
        h.verified(0);
        h.verified(100);
        assert_eq!(h.series(101).0.iter().sum::<u32>(), 1);
        assert_eq!(h.buckets.len(), 1);
    }
}
