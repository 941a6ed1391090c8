//! Reference for `collatz`: steps from n to 1, with the kernel's cap and overflow rule.

use crate::kernels::{COLLATZ_DIVERGED, COLLATZ_MAX_STEPS};

/// Steps from `start` to 1 (n/2 if even, 3n+1 if odd), or [`COLLATZ_DIVERGED`] for 0, when
/// 3n+1 would overflow u32, or when 1 is not reached within [`COLLATZ_MAX_STEPS`] steps.
pub fn collatz_steps(start: u32) -> u32 {
    let mut n = start;
    for steps in 0..=COLLATZ_MAX_STEPS {
        if n == 1 {
            return steps;
        }
        if n == 0 {
            return COLLATZ_DIVERGED;
        }
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            match n.checked_mul(3).and_then(|x| x.checked_add(1)) {
                Some(next) => next,
                None => return COLLATZ_DIVERGED,
            }
        };
    }
    COLLATZ_DIVERGED
}

/// The kernel over a whole input.
pub fn collatz(input: &[u32]) -> Vec<u32> {
    input.iter().map(|&n| collatz_steps(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collatz_counts_known_sequences() {
        assert_eq!(collatz(&[1, 2, 3, 6, 7, 27, 97]), vec![0, 1, 7, 8, 16, 111, 118]);
    }

    #[test]
    fn collatz_diverges_on_zero_and_overflow() {
        assert_eq!(collatz_steps(0), COLLATZ_DIVERGED);
        assert_eq!(collatz_steps(u32::MAX), COLLATZ_DIVERGED);
        // 0x55555555 is odd and 3n+1 = 2^32: overflow.
        assert_eq!(collatz_steps(0x5555_5555), COLLATZ_DIVERGED);
        // 2^31 halves down to 1 in 31 steps without ever overflowing.
        assert_eq!(collatz_steps(1 << 31), 31);
    }
}
