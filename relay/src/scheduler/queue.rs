//! Replica slots waiting for a worker. A task that needs `n` more results has `n` entries; a worker
//! takes the first entry it is eligible for (a task it has not touched, within its limits), so
//! two replicas of one task always land on two distinct workers.

use std::collections::VecDeque;
use std::time::Instant;

use hyphae_proto::TaskId;

/// How far down the queue a worker looks for a task it may take. Entries it skips are tasks it
/// already holds or returned; a bounded scan keeps one dispatch O(1) however long the backlog.
const SCAN: usize = 1024;
/// How far past the first task it may take a worker looks for one it is better placed for.
const PREFERENCE_LOOKAHEAD: usize = 32;

/// How well a worker fits a queued task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    No,
    Yes,
    /// It can take it and holds its weights already.
    Preferred,
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub task: TaskId,
    pub since: Instant,
}

#[derive(Debug, Default)]
pub struct Queue {
    entries: VecDeque<Entry>,
}

impl Queue {
    pub fn push_back(&mut self, task: TaskId, now: Instant) {
        self.entries.push_back(Entry { task, since: now });
    }

    /// Re-queues a replica that a worker lost or gave back, ahead of fresh work: it is older.
    pub fn push_front(&mut self, task: TaskId, now: Instant) {
        self.entries.push_front(Entry { task, since: now });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes and returns the first entry `fit` accepts, or better, within a short look-ahead,
    /// the first it prefers (a shard whose weights the worker already holds). `fit` returns `None`
    /// for an entry whose task no longer exists; such entries are dropped on the way.
    pub fn take_best(&mut self, mut fit: impl FnMut(&Entry) -> Option<Fit>) -> Option<Entry> {
        let mut i = 0;
        let mut scanned = 0;
        let mut first = None;
        while i < self.entries.len() && scanned < SCAN {
            scanned += 1;
            match fit(&self.entries[i]) {
                None => {
                    self.entries.remove(i);
                    continue;
                }
                Some(Fit::Preferred) => return self.entries.remove(i),
                Some(Fit::Yes) if first.is_none() => first = Some(i),
                Some(_) => {}
            }
            if first.is_some_and(|f| i >= f + PREFERENCE_LOOKAHEAD) {
                break;
            }
            i += 1;
        }
        first.and_then(|f| self.entries.remove(f))
    }

    /// Drops every entry of tasks `gone` says are gone.
    pub fn retain(&mut self, mut keep: impl FnMut(&TaskId) -> bool) {
        self.entries.retain(|e| keep(&e.task));
    }
}

#[cfg(test)]
mod tests {
    use hyphae_proto::JobId;

    use super::*;

    fn t(index: u32) -> TaskId {
        TaskId { job: JobId([0; 12]), index }
    }

    #[test]
    fn workers_skip_entries_they_are_not_eligible_for() {
        let now = Instant::now();
        let mut q = Queue::default();
        for i in 0..3 {
            q.push_back(t(i), now);
        }
        let taken = q.take_best(|entry| Some(if entry.task.index != 0 { Fit::Yes } else { Fit::No })).unwrap();
        assert_eq!(taken.task, t(1));
        assert_eq!(q.take_best(|_| Some(Fit::Yes)).unwrap().task, t(0));
        assert_eq!(q.take_best(|_| Some(Fit::Yes)).unwrap().task, t(2));
    }

    #[test]
    fn entries_of_vanished_tasks_are_dropped_while_scanning() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.push_back(t(0), now);
        q.push_back(t(1), now);
        let taken = q.take_best(|entry| if entry.task.index == 0 { None } else { Some(Fit::Yes) }).unwrap();
        assert_eq!(taken.task, t(1));
        assert!(q.is_empty());
    }

    #[test]
    fn a_worker_takes_a_task_it_is_warm_for_over_an_earlier_one() {
        let now = Instant::now();
        let mut q = Queue::default();
        for i in 0..4 {
            q.push_back(t(i), now);
        }
        let taken = q.take_best(|entry| Some(if entry.task.index == 2 { Fit::Preferred } else { Fit::Yes })).unwrap();
        assert_eq!(taken.task, t(2));
        assert_eq!(q.take_best(|_| Some(Fit::Yes)).unwrap().task, t(0));
    }
}
