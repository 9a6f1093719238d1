//! Hash slots and inclusive slot ranges: parsing operator input such as `0-5460 7000`,
//! and compacting sets of slots back into the fewest ranges for display and transport.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Number of hash slots in a cluster (fixed by the Redis Cluster specification).
pub const SLOT_COUNT: u16 = 16384;

/// An inclusive range of slots, `start <= end < SLOT_COUNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

/// Why a slot specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("slot {0} is out of range: slots are 0-16383")]
    OutOfRange(u64),
    #[error("slot range {0}-{1} is reversed: write it as {1}-{0}")]
    Reversed(u16, u16),
    #[error("'{0}' is not a slot: expected a number like 7000 or a range like 0-5460")]
    Syntax(String),
    #[error("no slots given")]
    Empty,
}

impl SlotRange {
    /// A checked range.
    pub fn new(start: u16, end: u16) -> Result<Self, SlotError> {
        if start >= SLOT_COUNT {
            return Err(SlotError::OutOfRange(start.into()));
        }
        if end >= SLOT_COUNT {
            return Err(SlotError::OutOfRange(end.into()));
        }
        if start > end {
            return Err(SlotError::Reversed(start, end));
        }
        Ok(Self { start, end })
    }

    pub fn single(slot: u16) -> Self {
        Self {
            start: slot,
            end: slot,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, slot: u16) -> bool {
        self.start <= slot && slot <= self.end
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl std::str::FromStr for SlotRange {
    type Err = SlotError;

    fn from_str(s: &str) -> Result<Self, SlotError> {
        let s = s.trim();
        let num = |part: &str| -> Result<u16, SlotError> {
            let n: u64 = part
                .trim()
                .parse()
                .map_err(|_| SlotError::Syntax(s.to_string()))?;
            u16::try_from(n)
                .ok()
                .filter(|n| *n < SLOT_COUNT)
                .ok_or(SlotError::OutOfRange(n))
        };
        match s.split_once('-') {
            Some((a, b)) => SlotRange::new(num(a)?, num(b)?),
            None => Ok(SlotRange::single(num(s)?)),
        }
    }
}

/// A set of slots as a bitmap: cheap membership, union and compaction into ranges.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotSet {
    bits: Box<[u64; SLOT_COUNT as usize / 64]>,
}

impl Default for SlotSet {
    fn default() -> Self {
        Self {
            bits: Box::new([0; SLOT_COUNT as usize / 64]),
        }
    }
}

impl fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotSet({})", self)
    }
}

impl fmt::Display for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self.ranges().iter().map(ToString::to_string).collect();
        f.write_str(&ranges.join(" "))
    }
}

impl SlotSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every slot.
    pub fn full() -> Self {
        Self::from_ranges(&[SlotRange {
            start: 0,
            end: SLOT_COUNT - 1,
        }])
    }

    pub fn from_ranges(ranges: &[SlotRange]) -> Self {
        let mut set = Self::new();
        for r in ranges {
            for s in r.iter() {
                set.insert(s);
            }
        }
        set
    }

    /// Parses operator arguments such as `["0-5460", "7000"]` (each may also hold several
    /// space- or comma-separated parts).
    pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Self, SlotError> {
        let mut set = Self::new();
        let mut any = false;
        for arg in args {
            for part in arg.as_ref().split([' ', ',']).filter(|p| !p.is_empty()) {
                let r: SlotRange = part.parse()?;
                r.iter().for_each(|s| set.insert(s));
                any = true;
            }
        }
        if any {
            Ok(set)
        } else {
            Err(SlotError::Empty)
        }
    }

    pub fn insert(&mut self, slot: u16) {
        self.bits[usize::from(slot) / 64] |= 1 << (slot % 64);
    }

    pub fn remove(&mut self, slot: u16) {
        self.bits[usize::from(slot) / 64] &= !(1 << (slot % 64));
    }

    pub fn contains(&self, slot: u16) -> bool {
        slot < SLOT_COUNT && self.bits[usize::from(slot) / 64] & (1 << (slot % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..SLOT_COUNT).filter(move |s| self.contains(*s))
    }

    /// The fewest inclusive ranges covering exactly this set, in ascending order.
    pub fn ranges(&self) -> Vec<SlotRange> {
        compact(self.iter())
    }
}

impl FromIterator<u16> for SlotSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = Self::new();
        iter.into_iter().for_each(|s| set.insert(s));
        set
    }
}

/// Compacts ascending slots into the fewest inclusive ranges.
pub fn compact(slots: impl IntoIterator<Item = u16>) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for s in slots {
        match out.last_mut() {
            Some(r) if r.end + 1 == s => r.end = s,
            _ => out.push(SlotRange::single(s)),
        }
    }
    out
}

/// Formats ranges the way humans read them: `0-5460 7000`.
pub fn format_ranges(ranges: &[SlotRange]) -> String {
    ranges
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits `0..SLOT_COUNT` into `n` contiguous ranges whose sizes differ by at most one,
/// the larger ones first, exactly as `redis-cli --cluster create` does.
pub fn split_evenly(n: usize) -> Vec<SlotRange> {
    assert!(n > 0 && n <= usize::from(SLOT_COUNT));
    let total = usize::from(SLOT_COUNT);
    let (base, extra) = (total / n, total % n);
    let mut start = 0usize;
    (0..n)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = SlotRange {
                start: start as u16,
                end: (start + len - 1) as u16,
            };
            start += len;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ranges_and_singles() {
        let set = SlotSet::parse_args(&["0-5460", "7000", "8000,8001 8002"]).unwrap();
        assert_eq!(set.len(), 5461 + 1 + 3);
        assert_eq!(set.to_string(), "0-5460 7000 8000-8002");
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        assert_eq!(
            SlotSet::parse_args(&["16384"]),
            Err(SlotError::OutOfRange(16384))
        );
        assert_eq!(
            SlotSet::parse_args(&["10-5"]),
            Err(SlotError::Reversed(10, 5))
        );
        assert!(matches!(
            SlotSet::parse_args(&["abc"]),
            Err(SlotError::Syntax(_))
        ));
        assert!(matches!(
            SlotSet::parse_args(&["-5"]),
            Err(SlotError::Syntax(_))
        ));
        assert!(matches!(
            SlotSet::parse_args(&["1-2-3"]),
            Err(SlotError::Syntax(_))
        ));
        assert_eq!(SlotSet::parse_args::<&str>(&[]), Err(SlotError::Empty));
        assert_eq!(
            SlotSet::parse_args(&["99999999999999999999"]),
            Err(SlotError::Syntax("99999999999999999999".into()))
        );
    }

    #[test]
    fn even_split_matches_redis_cli() {
        let r = split_evenly(3);
        assert_eq!(format_ranges(&r), "0-5461 5462-10922 10923-16383");
        assert_eq!(
            split_evenly(1),
            vec![SlotRange {
                start: 0,
                end: 16383
            }]
        );
    }

    proptest! {
        #[test]
        fn compaction_round_trips(slots in proptest::collection::btree_set(0u16..SLOT_COUNT, 0..300)) {
            let set: SlotSet = slots.iter().copied().collect();
            let ranges = set.ranges();
            prop_assert_eq!(SlotSet::from_ranges(&ranges), set.clone());
            // Fewest ranges: no two adjacent ranges touch.
            for w in ranges.windows(2) {
                prop_assert!(w[0].end + 1 < w[1].start);
            }
            if !ranges.is_empty() {
                let text = set.to_string();
                let args: Vec<&str> = text.split(' ').collect();
                prop_assert_eq!(SlotSet::parse_args(&args).unwrap(), set);
            }
        }

        #[test]
        fn even_split_covers_everything_once(n in 1usize..200) {
            let ranges = split_evenly(n);
            prop_assert_eq!(ranges.len(), n);
            prop_assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), usize::from(SLOT_COUNT));
            let max = ranges.iter().map(|r| r.len()).max().unwrap();
            let min = ranges.iter().map(|r| r.len()).min().unwrap();
            prop_assert!(max - min <= 1);
        }
    }
}
