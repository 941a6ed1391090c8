//! What the worker's owner (a page through the SDK, or a command line) can change while the worker
//! runs: pausing it, and the duty-cycle cap that keeps a volunteer's GPU mostly free for them.

use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throttle {
    /// Paused workers leave the relay (their leases go to others at once) until resumed.
    pub paused: bool,
    /// The most of the time the GPU may be busy with tasks, in (0, 1].
    pub max_utilization: f64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { paused: false, max_utilization: 1.0 }
    }
}

impl Throttle {
    /// The smallest cap honoured: below it a worker would mostly hold leases it does not run.
    pub const MIN_UTILIZATION: f64 = 0.01;

    /// How long to rest after a task that kept the GPU busy for `busy`, so that over time
    /// busy / (busy + rest) stays at or under `max_utilization`.
    pub fn rest_after(&self, busy: Duration) -> Duration {
        let u =
            if self.max_utilization.is_finite() { self.max_utilization.clamp(Self::MIN_UTILIZATION, 1.0) } else { 1.0 };
        busy.mul_f64(1.0 / u - 1.0)
    }
}

/// The owner's side: changes the throttle.
#[derive(Debug)]
pub struct ControlHandle {
    tx: watch::Sender<Throttle>,
}

/// The worker's side: reads the throttle and waits for changes.
#[derive(Debug, Clone)]
pub struct Control {
    rx: watch::Receiver<Throttle>,
}

/// A control pair starting at `initial`.
pub fn control(initial: Throttle) -> (ControlHandle, Control) {
    let (tx, rx) = watch::channel(initial);
    (ControlHandle { tx }, Control { rx })
}

impl ControlHandle {
    pub fn pause(&self) {
        self.tx.send_modify(|t| t.paused = true);
    }

    pub fn resume(&self) {
        self.tx.send_modify(|t| t.paused = false);
    }

    pub fn set_max_utilization(&self, max_utilization: f64) {
        self.tx.send_modify(|t| t.max_utilization = max_utilization);
    }

    pub fn current(&self) -> Throttle {
        *self.tx.borrow()
    }
}

impl Control {
    pub fn current(&self) -> Throttle {
        *self.rx.borrow()
    }

    /// Resolves when the throttle changes; never, once the owner is gone.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the worker is not paused.
    pub async fn resumed(&mut self) {
        while self.current().paused {
            self.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_keeps_the_duty_cycle_under_the_cap() {
        let busy = Duration::from_millis(100);
        let t = |max_utilization| Throttle { paused: false, max_utilization };
        assert_eq!(t(1.0).rest_after(busy), Duration::ZERO);
        assert_eq!(t(0.5).rest_after(busy), busy);
        assert_eq!(t(0.25).rest_after(busy), busy * 3);
        assert_eq!(t(0.0).rest_after(busy), busy * 99, "clamped to the minimum");
        assert_eq!(t(f64::NAN).rest_after(busy), Duration::ZERO);
    }

    #[test]
    fn the_worker_sees_the_owners_changes() {
        let (handle, control) = control(Throttle::default());
        handle.pause();
        handle.set_max_utilization(0.3);
        assert_eq!(control.current(), Throttle { paused: true, max_utilization: 0.3 });
    }
}
