//! The sorted set: members ordered by (score, member bytes), with rank in O(log n).
//!
//! Members live at dense positions in one `Vec` of nodes (one allocation per member: its
//! bytes); a hash table maps a member to its position, and the nodes form a treap (a
//! binary search tree by (score, member), heap-ordered by a priority drawn from the
//! member's hash with the process's random seed) whose nodes count their subtree. So:
//! - `ZSCORE` / membership: O(1) through the table;
//! - `ZADD` / `ZREM` / `ZRANK` / select by rank / the first rank past a score or lex
//!   bound: O(log n) expected (the treap's depth);
//! - a range by rank, score or lex: O(log n + m), iterating in either direction;
//! - a random member (`ZRANDMEMBER`) and `ZSCAN` cursors: O(1), by position
//!   ([`super::positions`]: removal is swap-remove, an update keeps the member's
//!   position).
//!
//! The positions and the member table are a [`Dense`] (as sets' and hashes'). A node
//! costs 40 bytes plus the member's allocation, and the table 3-5 bytes per bucket: less
//! than the former `HashMap` + `BTreeSet` pair, which held every member twice.

use std::cmp::Ordering;

use super::dense::{Dense, Keyed};
use super::{hash, Key};

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    member: Key,
    score: f64,
    left: u32,
    right: u32,
    /// Nodes in the subtree rooted here, this one included.
    size: u32,
    /// Treap priority: a parent's is never below its children's.
    prio: u32,
}

impl Keyed for Node {
    fn key(&self) -> &[u8] {
        &self.member
    }
}

/// Compares scores as Redis does: numerically, `-0.0 == 0.0` (NaN is never stored).
fn cmp_score(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

fn cmp_key(score: f64, member: &[u8], node: &Node) -> Ordering {
    cmp_score(score, node.score).then_with(|| member.cmp(&node.member))
}

/// A sorted set. See the module documentation.
#[derive(Clone)]
pub struct ZSet {
    /// The nodes at their positions, found by member.
    nodes: Dense<Node>,
    root: u32,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet {
            nodes: Dense::default(),
            root: NIL,
        }
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn position(&self, member: &[u8]) -> Option<u32> {
        self.nodes.position(member).map(|p| p as u32)
    }

    fn node(&self, x: u32) -> &Node {
        &self.nodes.as_slice()[x as usize]
    }

    fn node_mut(&mut self, x: u32) -> &mut Node {
        self.nodes
            .get_index_mut(x as usize)
            .expect("a linked node exists")
    }

    fn size(&self, x: u32) -> usize {
        if x == NIL {
            0
        } else {
            self.node(x).size as usize
        }
    }

    fn update(&mut self, x: u32) {
        let n = self.node(x);
        let size = 1 + self.size(n.left) + self.size(n.right);
        self.node_mut(x).size = size as u32;
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.position(member).map(|p| self.node(p).score)
    }

    /// Inserts or updates; returns whether the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        if let Some(p) = self.position(member) {
            let old = self.node(p).score;
            // Same ordering key: nothing moves (a -0.0 / 0.0 change only rewrites it).
            if cmp_score(old, score) == Ordering::Equal {
                self.node_mut(p).score = score;
            } else {
                self.unlink(p);
                let n = self.node_mut(p);
                n.score = score;
                (n.left, n.right, n.size) = (NIL, NIL, 1);
                self.link(p);
            }
            return false;
        }
        let p = self.nodes.len() as u32;
        self.nodes.push_unique(Node {
            member: member.into(),
            score,
            left: NIL,
            right: NIL,
            size: 1,
            prio: (hash(member) >> 32) as u32,
        });
        self.link(p);
        true
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        let Some(p) = self.position(member) else {
            return false;
        };
        self.unlink(p);
        // The last node moves into `p` (the table follows it, and gives memory back
        // when the set has shrunk); whoever points at it, its parent or the root, must
        // point at `p`.
        let last = (self.nodes.len() - 1) as u32;
        if p != last {
            match self.parent(last) {
                None => self.root = p,
                Some(parent) => {
                    let n = self.node_mut(parent);
                    if n.left == last {
                        n.left = p;
                    } else {
                        n.right = p;
                    }
                }
            }
        }
        self.nodes.swap_remove_index(p as usize);
        true
    }

    /// The parent of the linked node `x` (`None` for the root).
    fn parent(&self, x: u32) -> Option<u32> {
        let target = self.node(x);
        let mut parent = None;
        let mut cur = self.root;
        while cur != x {
            debug_assert_ne!(cur, NIL, "node not in the tree");
            parent = Some(cur);
            cur = match cmp_key(target.score, &target.member, self.node(cur)) {
                Ordering::Less => self.node(cur).left,
                _ => self.node(cur).right,
            };
        }
        parent
    }

    /// Links the detached node `p` (no children, size 1) into the tree.
    fn link(&mut self, p: u32) {
        let prio = self.node(p).prio;
        // Walk down while the nodes outrank `p`; each of them gains `p` below it.
        let mut parent: Option<(u32, bool)> = None;
        let mut cur = self.root;
        while cur != NIL && self.node(cur).prio >= prio {
            self.node_mut(cur).size += 1;
            let left = self.goes_left(p, cur);
            parent = Some((cur, left));
            cur = if left {
                self.node(cur).left
            } else {
                self.node(cur).right
            };
        }
        // `p` takes `cur`'s place, with `cur`'s subtree split around it.
        let (l, r) = self.split(cur, p);
        let n = self.node_mut(p);
        (n.left, n.right) = (l, r);
        self.update(p);
        self.set_child(parent, p);
    }

    /// Whether `p` sorts before `x`.
    fn goes_left(&self, p: u32, x: u32) -> bool {
        let n = self.node(p);
        cmp_key(n.score, &n.member, self.node(x)) == Ordering::Less
    }

    fn set_child(&mut self, parent: Option<(u32, bool)>, child: u32) {
        match parent {
            None => self.root = child,
            Some((x, true)) => self.node_mut(x).left = child,
            Some((x, false)) => self.node_mut(x).right = child,
        }
    }

    /// Splits the subtree `t` into the nodes before `p` and those after it.
    fn split(&mut self, t: u32, p: u32) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.goes_left(p, t) {
            let (l, r) = self.split(self.node(t).left, p);
            self.node_mut(t).left = r;
            self.update(t);
            (l, t)
        } else {
            let (l, r) = self.split(self.node(t).right, p);
            self.node_mut(t).right = l;
            self.update(t);
            (t, r)
        }
    }

    /// Joins two subtrees, every node of `a` before every node of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.node(a).prio >= self.node(b).prio {
            let right = self.merge(self.node(a).right, b);
            self.node_mut(a).right = right;
            self.update(a);
            a
        } else {
            let left = self.merge(a, self.node(b).left);
            self.node_mut(b).left = left;
            self.update(b);
            b
        }
    }

    /// Takes the node at `p` out of the tree (it stays at its position).
    fn unlink(&mut self, p: u32) {
        let mut parent: Option<(u32, bool)> = None;
        let mut cur = self.root;
        while cur != p {
            self.node_mut(cur).size -= 1;
            let left = self.goes_left(p, cur);
            parent = Some((cur, left));
            cur = if left {
                self.node(cur).left
            } else {
                self.node(cur).right
            };
        }
        let (l, r) = (self.node(p).left, self.node(p).right);
        let joined = self.merge(l, r);
        self.set_child(parent, joined);
    }

    /// 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let p = self.position(member)?;
        let mut rank = 0;
        let mut cur = self.root;
        while cur != p {
            if self.goes_left(p, cur) {
                cur = self.node(cur).left;
            } else {
                rank += self.size(self.node(cur).left) + 1;
                cur = self.node(cur).right;
            }
        }
        Some(rank + self.size(self.node(p).left))
    }

    /// How many members, in order, satisfy `below` before the first that does not
    /// (`below` must hold for a prefix of the order: e.g. "score < min").
    pub fn count_while(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut count = 0;
        let mut cur = self.root;
        while cur != NIL {
            let n = self.node(cur);
            if below(n.score, &n.member) {
                count += self.size(n.left) + 1;
                cur = n.right;
            } else {
                cur = n.left;
            }
        }
        count
    }

    /// The members of ranks `range` (clamped to the length), in either direction.
    pub fn range(&self, range: std::ops::Range<usize>) -> Iter<'_> {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        let mut it = Iter {
            z: self,
            front: Vec::new(),
            back: Vec::new(),
            remaining: end - start,
        };
        if start < end {
            it.front = self.path_to(start, true);
            it.back = self.path_to(end - 1, false);
        }
        it
    }

    /// Every member in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.range(0..self.len())
    }

    /// The stack of an in-order walk standing at rank `rank`: the ancestors still to
    /// visit going forward (`forward`) or backward.
    fn path_to(&self, mut rank: usize, forward: bool) -> Vec<u32> {
        let mut stack = Vec::new();
        let mut cur = self.root;
        while cur != NIL {
            let n = self.node(cur);
            let left = self.size(n.left);
            match rank.cmp(&left) {
                Ordering::Less => {
                    if forward {
                        stack.push(cur);
                    }
                    cur = n.left;
                }
                Ordering::Equal => {
                    stack.push(cur);
                    break;
                }
                Ordering::Greater => {
                    if !forward {
                        stack.push(cur);
                    }
                    rank -= left + 1;
                    cur = n.right;
                }
            }
        }
        stack
    }

    /// The member at dense position `i` (for `ZSCAN`, `ZRANDMEMBER`, snapshots): positions
    /// are `0..len`, in no particular order.
    pub fn at(&self, i: usize) -> (&[u8], f64) {
        let n = &self.nodes.as_slice()[i];
        (&n.member, n.score)
    }

    /// Checks the structure (tests): order, sizes, heap order, table.
    #[cfg(test)]
    fn check(&self) {
        fn walk(z: &ZSet, x: u32, out: &mut Vec<u32>) -> usize {
            if x == NIL {
                return 0;
            }
            let n = z.node(x);
            for c in [n.left, n.right] {
                if c != NIL {
                    assert!(z.node(c).prio <= n.prio, "heap order");
                }
            }
            let l = walk(z, n.left, out);
            out.push(x);
            let r = walk(z, n.right, out);
            assert_eq!(n.size as usize, l + r + 1, "size");
            l + r + 1
        }
        let mut order = Vec::new();
        assert_eq!(walk(self, self.root, &mut order), self.len());
        for w in order.windows(2) {
            let (a, b) = (self.node(w[0]), self.node(w[1]));
            assert_eq!(cmp_key(a.score, &a.member, b), Ordering::Less, "order");
        }
        for (i, n) in self.nodes.as_slice().iter().enumerate() {
            assert_eq!(self.position(&n.member), Some(i as u32));
        }
    }
}

/// Members with their scores over a rank range, double-ended.
pub struct Iter<'a> {
    z: &'a ZSet,
    front: Vec<u32>,
    back: Vec<u32>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let x = self.front.pop()?;
        let n = self.z.node(x);
        let mut cur = n.right;
        while cur != NIL {
            self.front.push(cur);
            cur = self.z.node(cur).left;
        }
        Some((&n.member, n.score))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let x = self.back.pop()?;
        let n = self.z.node(x);
        let mut cur = n.left;
        while cur != NIL {
            self.back.push(cur);
            cur = self.z.node(cur).right;
        }
        Some((&n.member, n.score))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct S(f64);
    impl Eq for S {}
    impl PartialOrd for S {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for S {
        fn cmp(&self, o: &Self) -> Ordering {
            cmp_score(self.0, o.0)
        }
    }

    fn model_order(m: &HashMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let set: BTreeSet<(S, Vec<u8>)> = m.iter().map(|(k, &s)| (S(s), k.clone())).collect();
        set.into_iter().map(|(s, k)| (k, s.0)).collect()
    }

    proptest! {
        /// Behaves like a (member -> score) map ordered by (score, member), under random
        /// inserts, updates and removes; ranks, ranges and bounds agree with the model.
        #[test]
        fn behaves_like_an_ordered_model(
            ops in proptest::collection::vec((0u8..4, 0u16..300, -20i8..20), 0..600),
            probe in (0usize..400, 0usize..400),
        ) {
            let mut z = ZSet::default();
            let mut model: HashMap<Vec<u8>, f64> = HashMap::new();
            for (op, m, s) in ops {
                let member = format!("m{m}").into_bytes();
                let score = f64::from(s) / 4.0;
                if op == 0 {
                    prop_assert_eq!(z.remove(&member), model.remove(&member).is_some());
                } else {
                    prop_assert_eq!(z.insert(&member, score), model.insert(member, score).is_none());
                }
            }
            z.check();
            let order = model_order(&model);
            let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
            prop_assert_eq!(&got, &order);
            let back: Vec<(Vec<u8>, f64)> = z.iter().rev().map(|(m, s)| (m.to_vec(), s)).collect();
            prop_assert_eq!(back.into_iter().rev().collect::<Vec<_>>(), order.clone());
            for (rank, (m, _)) in order.iter().enumerate() {
                prop_assert_eq!(z.rank(m), Some(rank));
            }
            let (a, b) = (probe.0.min(probe.1), probe.0.max(probe.1));
            let want: Vec<_> = order.iter().skip(a).take(b.saturating_sub(a)).cloned().collect();
            let got: Vec<_> = z.range(a..b).map(|(m, s)| (m.to_vec(), s)).collect();
            prop_assert_eq!(&got, &want);
            // Mixed directions on one iterator meet in the middle without overlap.
            let mut it = z.range(a..b);
            let mut both = Vec::new();
            while let Some(x) = it.next() {
                both.push(x.0.to_vec());
                if let Some(y) = it.next_back() {
                    both.push(y.0.to_vec());
                }
            }
            prop_assert_eq!(both.len(), want.len());
            let min = (probe.0 as f64 - 200.0) / 40.0;
            prop_assert_eq!(
                z.count_while(|s, _| s < min),
                order.iter().filter(|(_, s)| *s < min).count()
            );
            for i in 0..z.len() {
                let (m, s) = z.at(i);
                prop_assert_eq!(model.get(m), Some(&s));
            }
        }
    }

    #[test]
    fn a_big_set_stays_shallow_and_shrinks() {
        let mut z = ZSet::default();
        for i in 0..100_000u32 {
            z.insert(format!("member:{i}").as_bytes(), f64::from(i % 1000));
        }
        fn depth(z: &ZSet, x: u32) -> usize {
            if x == NIL {
                0
            } else {
                1 + depth(z, z.node(x).left).max(depth(z, z.node(x).right))
            }
        }
        let d = depth(&z, z.root);
        assert!(d < 60, "depth {d}");
        assert_eq!(z.rank(b"member:0"), Some(0));
        for i in 0..99_000u32 {
            assert!(z.remove(format!("member:{i}").as_bytes()));
        }
        z.check();
        let bytes = z.nodes.table_bytes();
        assert!(bytes < 10_000 * size_of::<Node>(), "{bytes}");
    }

    #[test]
    fn negative_zero_equals_zero() {
        let mut z = ZSet::default();
        z.insert(b"a", 0.0);
        z.insert(b"b", -0.0);
        assert!(!z.insert(b"a", -0.0));
        assert_eq!(z.score(b"a").map(f64::is_sign_negative), Some(true));
        assert_eq!(z.rank(b"b"), Some(1));
        z.check();
    }
}
