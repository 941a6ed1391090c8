//! Which workers may talk to each other. The relay carries signals and relayed peer frames only
//! between workers it introduced for a pipeline step (the next shard's worker and the holders of
//! its input or weights), and only for a while, so a worker cannot use the relay to reach, probe
//! or flood arbitrary peers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hyphae_proto::Address;

/// How long an introduction lasts after the lease that made it.
pub const PAIRING_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Pairs {
    until: HashMap<(Address, Address), Instant>,
}

fn key(a: Address, b: Address) -> (Address, Address) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Pairs {
    /// Lets `a` and `b` talk until `until` (either may start).
    pub fn pair(&mut self, a: Address, b: Address, until: Instant) {
        if a == b {
            return;
        }
        let entry = self.until.entry(key(a, b)).or_insert(until);
        *entry = (*entry).max(until);
        if self.until.len() > 4096 {
            self.prune(until - PAIRING_LIFETIME);
        }
    }

    pub fn allowed(&self, a: Address, b: Address, now: Instant) -> bool {
        self.until.get(&key(a, b)).is_some_and(|until| *until > now)
    }

    pub fn prune(&mut self, now: Instant) {
        self.until.retain(|_, until| *until > now);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u8) -> Address {
        Address([n; 20])
    }

    #[test]
    fn only_introduced_workers_may_talk_and_only_for_a_while() {
        let now = Instant::now();
        let mut pairs = Pairs::default();
        pairs.pair(address(1), address(2), now + Duration::from_secs(10));
        assert!(pairs.allowed(address(2), address(1), now), "introductions go both ways");
        assert!(!pairs.allowed(address(1), address(3), now));
        assert!(!pairs.allowed(address(1), address(2), now + Duration::from_secs(11)));
        pairs.prune(now + Duration::from_secs(11));
        assert_eq!(pairs.len(), 0);
    }

    #[test]
    fn a_later_introduction_extends_an_earlier_one() {
        let now = Instant::now();
        let mut pairs = Pairs::default();
        pairs.pair(address(1), address(2), now + Duration::from_secs(20));
        pairs.pair(address(2), address(1), now + Duration::from_secs(5));
        assert!(pairs.allowed(address(1), address(2), now + Duration::from_secs(10)));
    }
}
