//! Cursors and random picks over a collection whose elements sit at dense positions
//! `0..len`, where a removal moves only the last element into the hole (swap-remove).
//!
//! Such a layout gives Redis's `SCAN` guarantee with an O(1) cursor: scanning from the
//! last position down to 0, the positions not yet visited are always `0..cursor`.
//! - A removal at `i` moves the element at `len - 1` into `i`. If `i < cursor`, the moved
//!   element was already visited (it is returned again: a duplicate, which SCAN allows)
//!   or, when `len - 1 < cursor`, it stays below the cursor. If `i >= cursor`, both
//!   positions were visited. Either way no element below the cursor leaves it.
//! - An insertion appends at `len`, above the cursor: an element added during the scan
//!   may be missed, which SCAN allows too; growth of the storage moves nothing.
//!
//! So every element present for the whole scan is returned at least once, however the
//! collection grows or shrinks meanwhile, and the scan ends after at most `len / count`
//! calls (plus one per removal below the cursor).
//!
//! Cursor encoding: 0 starts (and, returned, ends) a scan; any other value `c` means the
//! positions `0..c` remain. A cursor from another collection or a stale one is clamped
//! to the length, never an error, as in Redis.

use std::ops::Range;

use rand::Rng;

/// Collections at most this long are returned whole by a scan started at 0 (as Redis
/// does for its compact encodings), so small ones need a single call.
pub const SMALL: usize = 128;

/// The positions a `SCAN`-family call visits, highest first, and the cursor to return.
pub fn scan(len: usize, cursor: u64, count: usize) -> (u64, std::iter::Rev<Range<usize>>) {
    let take = if cursor == 0 && len <= SMALL {
        len
    } else {
        count
    };
    page(len, cursor, take)
}

/// As [`scan`], without returning small collections whole: exactly `count` positions
/// (at least 1) unless fewer remain. The keyspace `SCAN` pages a slot's table with it.
pub fn page(len: usize, cursor: u64, count: usize) -> (u64, std::iter::Rev<Range<usize>>) {
    let end = match cursor {
        0 => len,
        c => usize::try_from(c).unwrap_or(usize::MAX).min(len),
    };
    let start = end.saturating_sub(count.max(1));
    (start as u64, (start..end).rev())
}

/// Positions for `SRANDMEMBER` / `HRANDFIELD` / `ZRANDMEMBER` with a count, as Redis
/// answers: `count >= 0` gives distinct positions (all of them when the collection has no
/// more than `count`), `count < 0` gives `|count|` independent picks (repeats allowed).
/// O(|count|), whatever the length.
pub fn random(len: usize, count: i64) -> Vec<usize> {
    let mut rng = rand::rng();
    if count >= 0 {
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        if n >= len {
            return (0..len).collect();
        }
        let mut picked = rand::seq::index::sample(&mut rng, len, n).into_vec();
        // `sample` may return them in order for some strategies: Redis's are unordered.
        use rand::seq::SliceRandom;
        picked.shuffle(&mut rng);
        picked
    } else if len == 0 {
        Vec::new()
    } else {
        (0..count.unsigned_abs())
            .map(|_| rng.random_range(0..len))
            .collect()
    }
}

/// One uniformly random position (`None` when empty).
pub fn one(len: usize) -> Option<usize> {
    (len > 0).then(|| rand::rng().random_range(0..len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn small_collections_come_whole_and_big_ones_in_pages() {
        let (next, p) = scan(100, 0, 10);
        assert_eq!((next, p.len()), (0, 100));
        let (next, p) = scan(1000, 0, 10);
        assert_eq!(
            (next, p.collect::<Vec<_>>()),
            (990, (990..1000).rev().collect())
        );
        let (next, p) = scan(1000, 5, 10);
        assert_eq!((next, p.len()), (0, 5));
        // A stale cursor beyond the length is clamped.
        let (next, p) = scan(50, 990, 10);
        assert_eq!((next, p.len()), (40, 10));
        // `page` pages small collections too.
        let (next, p) = page(100, 0, 10);
        assert_eq!((next, p.len()), (90, 10));
        assert_eq!(page(5, 0, 0).0, 4, "at least one position");
    }

    #[test]
    fn random_counts_follow_redis() {
        assert_eq!(random(5, 10).into_iter().collect::<BTreeSet<_>>().len(), 5);
        let distinct = random(1000, 10);
        assert_eq!(distinct.iter().collect::<BTreeSet<_>>().len(), 10);
        assert!(distinct.iter().all(|&i| i < 1000));
        assert_eq!(random(1, -7), vec![0; 7]);
        assert!(random(0, -7).is_empty());
        assert_eq!(one(0), None);
    }

    proptest! {
        /// The SCAN guarantee under swap-remove and appends between calls: every element
        /// present for the whole scan is returned, and the scan ends.
        #[test]
        fn every_element_present_throughout_is_returned(
            n in 0usize..600,
            count in 1usize..40,
            churn in proptest::collection::vec((any::<bool>(), any::<u16>()), 0..300),
        ) {
            let mut items: Vec<u32> = (0..n as u32).collect();
            let mut next_new = n as u32;
            let mut removed = BTreeSet::new();
            let mut seen = BTreeSet::new();
            let mut cursor = 0u64;
            let mut churn = churn.into_iter();
            let mut calls = 0;
            loop {
                let (next, positions) = scan(items.len(), cursor, count);
                seen.extend(positions.map(|p| items[p]));
                calls += 1;
                prop_assert!(calls <= n / count + 700, "the scan does not end");
                if next == 0 {
                    break;
                }
                cursor = next;
                if let Some((add, at)) = churn.next() {
                    if add {
                        items.push(next_new);
                        next_new += 1;
                    } else if !items.is_empty() {
                        let i = usize::from(at) % items.len();
                        removed.insert(items.swap_remove(i));
                    }
                }
            }
            for x in 0..n as u32 {
                prop_assert!(removed.contains(&x) || seen.contains(&x), "{} missed", x);
            }
        }
    }
}
