//! Credit amounts. 1 credit is 1 GFLOP of verified work (DESIGN.md §3); amounts are fixed-point
//! with six decimals so sums are exact, and travel as decimal strings so no JSON reader rounds them.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ProtoError;

/// An amount of credits, counted in millionths.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credits {
    micros: u64,
}

impl Credits {
    pub const ZERO: Credits = Credits { micros: 0 };
    pub const DECIMALS: u32 = 6;
    const SCALE: u64 = 10u64.pow(Self::DECIMALS);

    pub const fn from_micros(micros: u64) -> Credits {
        Credits { micros }
    }

    pub const fn whole(credits: u64) -> Credits {
        Credits { micros: credits * Self::SCALE }
    }

    pub const fn micros(self) -> u64 {
        self.micros
    }

    pub fn checked_add(self, other: Credits) -> Option<Credits> {
        self.micros.checked_add(other.micros).map(Credits::from_micros)
    }

    pub fn checked_sub(self, other: Credits) -> Option<Credits> {
        self.micros.checked_sub(other.micros).map(Credits::from_micros)
    }

    pub fn checked_mul(self, n: u64) -> Option<Credits> {
        self.micros.checked_mul(n).map(Credits::from_micros)
    }
}

impl Add for Credits {
    type Output = Credits;

    /// Saturates: a ledger that overflows u64 millionths (18 trillion credits) has other problems.
    fn add(self, other: Credits) -> Credits {
        Credits::from_micros(self.micros.saturating_add(other.micros))
    }
}

impl AddAssign for Credits {
    fn add_assign(&mut self, other: Credits) {
        *self = *self + other;
    }
}

impl Sum for Credits {
    fn sum<I: Iterator<Item = Credits>>(iter: I) -> Credits {
        iter.fold(Credits::ZERO, Add::add)
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.micros / Self::SCALE;
        let frac = self.micros % Self::SCALE;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credits({self})")
    }
}

impl FromStr for Credits {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| ProtoError::InvalidCredits { value: s.to_owned(), reason };
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || (s.contains('.') && frac.is_empty()) {
            return Err(invalid("expected a non-negative decimal such as 12 or 0.5"));
        }
        if frac.len() > Self::DECIMALS as usize {
            return Err(invalid("at most 6 decimals"));
        }
        let whole: u64 = whole.parse().map_err(|_| invalid("too large"))?;
        let frac_micros: u64 =
            if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().expect("six ascii digits") };
        whole
            .checked_mul(Self::SCALE)
            .and_then(|m| m.checked_add(frac_micros))
            .map(Credits::from_micros)
            .ok_or_else(|| invalid("too large"))
    }
}

impl Serialize for Credits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.micros)
        }
    }
}

impl<'de> Deserialize<'de> for Credits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            u64::deserialize(deserializer).map(Credits::from_micros)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_print_as_short_decimals_and_parse_back() {
        for (text, micros) in [("0", 0), ("1", 1_000_000), ("0.5", 500_000), ("12.000001", 12_000_001)] {
            let c: Credits = text.parse().unwrap();
            assert_eq!(c.micros(), micros);
            assert_eq!(c.to_string(), text);
        }
        assert_eq!("2.50".parse::<Credits>().unwrap().to_string(), "2.5");
    }

    #[test]
    fn malformed_amounts_are_rejected() {
        for bad in ["", "-1", "1.", ".5", "1e3", "0.0000001", "1,5", "+1", "99999999999999999999"] {
            assert!(bad.parse::<Credits>().is_err(), "{bad:?} parsed");
        }
    }
}
