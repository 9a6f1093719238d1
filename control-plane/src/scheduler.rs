//! Pure planning of slot moves for `rebalance` and `drain`: no I/O, no state changes.
//!
//! A plan moves the fewest slots that reach the goal, in contiguous blocks: a donor gives
//! away the tail of its slot list, and donors' give-aways are handed to receivers in
//! order, so each move is a handful of ranges.

use std::collections::BTreeMap;

use ember_core::{NodeId, SlotMap, SlotSet, SLOT_COUNT};

/// One planned migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub source: NodeId,
    pub target: NodeId,
    pub slots: SlotSet,
}

/// Moves that even the assigned slots out across `primaries` (within one slot).
/// Nodes already holding the most slots keep the extra ones, so nothing moves needlessly.
pub fn rebalance(slots: &SlotMap, primaries: &[NodeId]) -> Vec<Move> {
    if primaries.is_empty() {
        return vec![];
    }
    let current = counts(slots, primaries);
    let total: usize = current.values().sum();
    let (base, extra) = (total / primaries.len(), total % primaries.len());
    let mut by_size: Vec<NodeId> = primaries.to_vec();
    // Largest first; ties by id so the plan is deterministic.
    by_size.sort_by(|a, b| current[b].cmp(&current[a]).then(a.cmp(b)));
    let goal: BTreeMap<NodeId, usize> = by_size
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, base + usize::from(i < extra)))
        .collect();
    plan(slots, &current, &goal)
}

/// Moves that empty `drained` onto the other `primaries`, filling the emptiest first.
pub fn drain(slots: &SlotMap, primaries: &[NodeId], drained: NodeId) -> Vec<Move> {
    let others: Vec<NodeId> = primaries
        .iter()
        .copied()
        .filter(|p| *p != drained)
        .collect();
    let mut all = others.clone();
    all.push(drained);
    let current = counts(slots, &all);
    if others.is_empty() || current[&drained] == 0 {
        return vec![];
    }
    // Water-fill: hand out the drained slots one at a time to the currently smallest.
    let mut goal: BTreeMap<NodeId, usize> = others.iter().map(|o| (*o, current[o])).collect();
    for _ in 0..current[&drained] {
        let smallest = *goal
            .iter()
            .min_by_key(|(id, n)| (**n, **id))
            .expect("others non-empty")
            .0;
        *goal.get_mut(&smallest).unwrap() += 1;
    }
    goal.insert(drained, 0);
    plan(slots, &current, &goal)
}

fn counts(slots: &SlotMap, nodes: &[NodeId]) -> BTreeMap<NodeId, usize> {
    nodes.iter().map(|n| (*n, slots.count_of(n))).collect()
}

/// Turns per-node goals into moves: donors give the tail of their slots, receivers take
/// them in order.
fn plan(
    slots: &SlotMap,
    current: &BTreeMap<NodeId, usize>,
    goal: &BTreeMap<NodeId, usize>,
) -> Vec<Move> {
    let mut give: Vec<(NodeId, u16)> = Vec::new();
    for (id, &cur) in current {
        let surplus = cur.saturating_sub(goal[id]);
        let owned: Vec<u16> = (0..SLOT_COUNT)
            .filter(|s| slots.owner(*s) == Some(*id))
            .collect();
        give.extend(owned[owned.len() - surplus..].iter().map(|s| (*id, *s)));
    }
    let mut moves: Vec<Move> = Vec::new();
    let mut give = give.into_iter();
    for (id, &cur) in current {
        for _ in cur..goal[id] {
            let (source, slot) = give.next().expect("surpluses equal deficits");
            match moves.last_mut() {
                Some(m) if m.source == source && m.target == *id => m.slots.insert(slot),
                _ => moves.push(Move {
                    source,
                    target: *id,
                    slots: SlotSet::from_iter([slot]),
                }),
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn apply(slots: &SlotMap, moves: &[Move]) -> SlotMap {
        let mut out = slots.clone();
        for m in moves {
            for s in m.slots.iter() {
                assert_eq!(
                    out.owner(s),
                    Some(m.source),
                    "a move takes slots from their owner"
                );
                out.set(s, Some(m.target));
            }
        }
        out
    }

    #[test]
    fn one_to_three_gives_the_redis_split() {
        let ids: Vec<NodeId> = (1..=3).map(Uuid::from_u128).collect();
        let mut map = SlotMap::default();
        (0..SLOT_COUNT).for_each(|s| map.set(s, Some(ids[0])));
        let moves = rebalance(&map, &ids);
        assert_eq!(moves.len(), 2);
        assert_eq!(moves[0].slots.to_string(), "5462-10922");
        assert_eq!(moves[1].slots.to_string(), "10923-16383");
        let after = apply(&map, &moves);
        let counts: Vec<usize> = ids.iter().map(|i| after.count_of(i)).collect();
        assert_eq!(counts, vec![5462, 5461, 5461]);
    }

    proptest! {
        #[test]
        fn rebalance_is_even_and_minimal(owners in proptest::collection::vec(0u128..5, 1..6), n in 1usize..6, cuts in proptest::collection::vec(0u16..SLOT_COUNT, 0..8)) {
            let ids: Vec<NodeId> = (0..n as u128).map(Uuid::from_u128).collect();
            // A random map: contiguous runs owned by random existing nodes.
            let mut cuts = cuts;
            cuts.sort();
            let mut map = SlotMap::default();
            let mut run = 0;
            for s in 0..SLOT_COUNT {
                while run < cuts.len() && cuts[run] <= s { run += 1; }
                map.set(s, Some(ids[(owners[run % owners.len()] as usize) % n]));
            }
            let moves = rebalance(&map, &ids);
            let after = apply(&map, &moves);
            let counts: Vec<usize> = ids.iter().map(|i| after.count_of(i)).collect();
            let (max, min) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
            prop_assert!(max - min <= 1, "uneven: {:?}", counts);
            // Minimal: exactly the sum of surpluses above the even share moves.
            let moved: usize = moves.iter().map(|m| m.slots.len()).sum();
            let before: Vec<usize> = ids.iter().map(|i| map.count_of(i)).collect();
            let share = 16384 / n;
            let lower_bound: usize = before.iter().map(|c| c.saturating_sub(share + 1)).sum();
            prop_assert!(moved >= lower_bound);
            let upper: usize = before.iter().map(|c| c.saturating_sub(share)).sum();
            prop_assert!(moved <= upper, "moved {} > {}", moved, upper);
            // Running it again plans nothing.
            prop_assert!(rebalance(&after, &ids).is_empty());
        }

        #[test]
        fn drain_empties_the_node(n in 2usize..6, drained in 0usize..6) {
            let ids: Vec<NodeId> = (0..n as u128).map(Uuid::from_u128).collect();
            let drained = ids[drained % n];
            let mut map = SlotMap::default();
            for (i, r) in ember_core::slots::split_evenly(n).iter().enumerate() {
                r.iter().for_each(|s| map.set(s, Some(ids[i])));
            }
            let after = apply(&map, &drain(&map, &ids, drained));
            prop_assert_eq!(after.count_of(&drained), 0);
            prop_assert_eq!(after.assigned(), 16384);
            let counts: Vec<usize> = ids.iter().filter(|i| **i != drained).map(|i| after.count_of(i)).collect();
            prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        }
    }
}
