//! Threads that do the relay's batch work (the store's committer, the receipt signer and the
//! judging thread) run as batch work (`SCHED_BATCH`): the kernel does not let them preempt a
//! running thread when they wake. On a small machine they share the cores with the threads that
//! read results and hand out tasks; preempted each time a commit or a signature was due, those
//! threads left workers waiting for their next task behind a batch that is not in the dispatch
//! path at all (a worker gets its next task before its result is verified). Their share of the
//! processor stays the same (nice 0): verification must keep up with dispatch, also beside other
//! processes.

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

/// The calling thread's nice value and scheduling policy (3 is `SCHED_BATCH`), as the kernel
/// reports them in `/proc/thread-self/stat`.
#[cfg(all(test, target_os = "linux"))]
pub fn this_thread_nice_and_policy() -> (String, String) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name: nice is the 17th, the policy the 39th.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (fields[16].to_owned(), fields[38].to_owned())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_background_thread_runs_as_batch_work_with_an_equal_share() {
        std::thread::spawn(|| {
            super::run_as_batch_work();
            assert_eq!(super::this_thread_nice_and_policy(), ("0".to_owned(), "3".to_owned()), "nice, policy");
        })
        .join()
        .unwrap();
    }
}
