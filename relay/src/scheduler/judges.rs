//! The thread that verifies answers: votes on replicas, checks canaries and the relay's own
//! checks, then waits for receipts to be signed and the verdict to be committed.
//!
//! It runs apart from the runtime that reads results and hands out tasks, as batch work (see
//! [`crate::background`]). On the runtime, every judge was one more task in the run queue that
//! socket readers and writers waited behind, so a worker's next task went out late whenever many
//! results came back together; as a thread of its own, the kernel runs dispatch first and
//! judging in the time that is left, and the reader's back-pressure (`MAX_JUDGING`) keeps that
//! from falling behind without bound. Blocking checks it starts (`spawn_blocking`) run on
//! threads of its own runtime, also as batch work.

use std::future::Future;

use prometheus_client::metrics::gauge::Gauge;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A handle on the judging thread; dropping it stops the thread, and with it any judging that
/// has not finished (their tasks are redone, as after a restart).
pub(super) struct Judges {
    runtime: Handle,
    /// How many judgings are started and not finished (`answers_awaiting_verification`).
    awaiting: Gauge,
    _stop: oneshot::Sender<()>,
}

impl Judges {
    pub(super) fn start(awaiting: Gauge) -> Judges {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .thread_name("judge-blocking")
            .on_thread_start(crate::background::run_as_batch_work)
            .build()
            .expect("building the judging runtime");
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("judge".into())
            .spawn(move || {
                crate::background::run_as_batch_work();
                // Err once the handle is dropped: the runtime then drops here, outside itself.
                let _ = runtime.block_on(stopped);
            })
            .expect("spawning the judging thread");
        Judges { runtime: handle, awaiting, _stop: stop }
    }

    pub(super) fn spawn(&self, judging: impl Future<Output = ()> + Send + 'static) {
        let awaiting = Awaiting::new(&self.awaiting);
        self.runtime.spawn(async move {
            judging.await;
            drop(awaiting);
        });
    }
}

/// One judging counted in the gauge until it finishes or is dropped unfinished.
struct Awaiting(Gauge);

impl Awaiting {
    fn new(gauge: &Gauge) -> Awaiting {
        gauge.inc();
        Awaiting(gauge.clone())
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn judging_runs_on_a_thread_of_its_own_as_batch_work() {
        let judges = Judges::start(Gauge::default());
        let (tx, rx) = mpsc::channel();
        judges.spawn(async move {
            let name = std::thread::current().name().map(str::to_owned);
            #[cfg(target_os = "linux")]
            let scheduling = Some(crate::background::this_thread_nice_and_policy());
            #[cfg(not(target_os = "linux"))]
            let scheduling: Option<(String, String)> = None;
            let _ = tx.send((name, scheduling));
        });
        let (name, scheduling) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(name.as_deref(), Some("judge"));
        // Linux reports it; elsewhere there is no batch policy to check.
        if let Some((_, policy)) = scheduling {
            assert_eq!(policy, "3", "policy (3 is SCHED_BATCH)");
        }
    }

    #[test]
    fn judgings_are_counted_until_they_finish_or_are_dropped() {
        let awaiting = Gauge::default();
        let judges = Judges::start(awaiting.clone());
        let (finish, finished) = oneshot::channel::<()>();
        judges.spawn(async move {
            let _ = finished.await;
        });
        judges.spawn(std::future::pending());
        assert_eq!(awaiting.get(), 2);
        let _ = finish.send(());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while awaiting.get() != 1 {
            assert!(std::time::Instant::now() < deadline, "a finished judging is still counted");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Dropping the judges stops the thread, and the judging still pending with it.
        drop(judges);
        while awaiting.get() != 0 {
            assert!(std::time::Instant::now() < deadline, "a dropped judging is still counted");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
