//! Threads that do the relay's batch work (the store's committer, the receipt signer and the
//! judging thread) run as batch work (`SCHED_BATCH`): the kernel does not let them preempt a
//! running thread when they wake. On a small machine they share the cores with the threads that
//! read results and hand out tasks; preempted each time a commit or a signature was due, those
//! threads left workers waiting for their next task behind a batch that is not in the dispatch
//! path at all (a worker gets its next task before its result is verified). Their share of the processor stays the
//! same (nice 0): verification must keep up with dispatch, also beside other processes.

/// Moves the calling thread to `SCHED_BATCH` at nice 0. Where that is refused (a platform without
/// it, a sandbox), the thread runs as it was.
pub fn run_as_batch_work() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        // The crate maps 0..=99 onto nice 19..=-20: 47 is nice 0.
        let Ok(nice_0) = ThreadPriorityValue::try_from(47u8) else { return };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        if let Err(e) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Crossplatform(nice_0), policy)
        {
            tracing::debug!(error = ?e, "could not make a background thread batch work");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_background_thread_runs_as_batch_work_with_an_equal_share() {
        std::thread::spawn(|| {
            super::run_as_batch_work();
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            // Fields after the command name: nice is the 17th, the policy the 39th.
            let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
            assert_eq!(fields[16], "0", "nice");
            assert_eq!(fields[38], "3", "policy (3 is SCHED_BATCH)");
        })
        .join()
        .unwrap();
    }
}
