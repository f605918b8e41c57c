//! The sparse Merkle tree that commits to every account of a shard.
//!
//! It is the binary variant of the Jellyfish Merkle tree (Gao et al.,
//! "Jellyfish Merkle Tree", Diem, 2021), also known as a compact sparse Merkle
//! tree: a key sits on the 256-bit path [`key_path`], a subtree holding exactly
//! one leaf is that leaf (stored at the shallowest depth where it is alone), an
//! empty subtree hashes to [`Hash::ZERO`], and an inner node never has two
//! empty children nor a leaf beside an empty subtree. The shape, and so the
//! root, is a function of the set of (key, value) pairs alone, whatever the
//! order or history of updates.
//!
//! Nodes are immutable and shared through [`Arc`]: an update rebuilds only the
//! paths to the changed keys (O(k log n) hashes for k changes over n leaves),
//! and cloning a [`StateTree`] is a cheap snapshot.

use super::proof::{bit, key_path, leaf_hash, node_hash, value_hash, ProofEnd, StateProof};
use atoll_primitives::{Hash, StateChange, StateKey, StateValue};
use rayon::prelude::*;
use std::fmt;
use std::sync::Arc;

/// Subtrees with fewer changes than this are updated on the calling thread:
/// each task then carries hundreds of hashes, far more than a rayon split
/// costs, while a block's batch still splits into many more tasks than cores.
const PARALLEL_MIN_CHANGES: usize = 256;

/// The authenticated state of a shard: a sparse Merkle tree over all accounts.
#[derive(Clone, Default)]
pub struct StateTree {
    root: Node,
}

/// A subtree; children are shared between versions of the tree.
#[derive(Clone, Default)]
enum Node {
    #[default]
    Empty,
    Leaf(Arc<Leaf>),
    Inner(Arc<Inner>),
}

struct Leaf {
    key_path: Hash,
    value_hash: Hash,
    /// `leaf_hash(key_path, value_hash)`, cached.
    hash: Hash,
}

struct Inner {
    left: Node,
    right: Node,
    /// `node_hash(left, right)`, cached.
    hash: Hash,
    /// Leaves below this node.
    leaves: usize,
}

/// One change of a batch, hashed: the key's path and its new value's hash
/// (`None`: delete).
#[derive(Clone, Copy)]
struct Change {
    key_path: Hash,
    value_hash: Option<Hash>,
}

impl Node {
    fn hash(&self) -> Hash {
        match self {
            Node::Empty => Hash::ZERO,
            Node::Leaf(leaf) => leaf.hash,
            Node::Inner(inner) => inner.hash,
        }
    }

    fn len(&self) -> usize {
        match self {
            Node::Empty => 0,
            Node::Leaf(_) => 1,
            Node::Inner(inner) => inner.leaves,
        }
    }

    fn leaf(key_path: Hash, value_hash: Hash) -> Node {
        Node::Leaf(Arc::new(Leaf {
            key_path,
            value_hash,
            hash: leaf_hash(&key_path, &value_hash),
        }))
    }

    /// Whether `self` is the very same subtree as `other` (no hashing).
    fn same_as(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::Empty, Node::Empty) => true,
            (Node::Leaf(a), Node::Leaf(b)) => Arc::ptr_eq(a, b),
            (Node::Inner(a), Node::Inner(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The subtree with children `left` and `right`, collapsed where the
    /// canonical shape demands: nothing below is empty, one leaf alone is
    /// that leaf (it moves up until it has a non-empty sibling).
    fn join(left: Node, right: Node) -> Node {
        match (&left, &right) {
            (Node::Empty, Node::Empty) => Node::Empty,
            (Node::Leaf(_), Node::Empty) => left,
            (Node::Empty, Node::Leaf(_)) => right,
            _ => {
                let hash = node_hash(&left.hash(), &right.hash());
                let leaves = left.len() + right.len();
                Node::Inner(Arc::new(Inner {
                    left,
                    right,
                    hash,
                    leaves,
                }))
            }
        }
    }
}

/// Runs `a` and `b`, on two rayon tasks when `parallel`.
fn join<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// Splits changes sorted by path into those going left and right at `depth`
/// (all of them share the first `depth` bits).
fn split_at_bit(changes: &[Change], depth: usize) -> (&[Change], &[Change]) {
    changes.split_at(changes.partition_point(|c| !bit(&c.key_path, depth)))
}

/// `node` at `depth` with `changes` (sorted, one per path, all under the
/// node's prefix) applied. Untouched subtrees are shared, not rehashed.
fn update_node(node: &Node, depth: usize, changes: &[Change], parallel_min: usize) -> Node {
    if changes.is_empty() {
        return node.clone();
    }
    match node {
        Node::Empty => build(None, depth, changes, parallel_min),
        Node::Leaf(leaf) => build(Some(leaf), depth, changes, parallel_min),
        Node::Inner(inner) => {
            let (to_left, to_right) = split_at_bit(changes, depth);
            let (left, right) = join(
                changes.len() >= parallel_min,
                || update_node(&inner.left, depth + 1, to_left, parallel_min),
                || update_node(&inner.right, depth + 1, to_right, parallel_min),
            );
            if left.same_as(&inner.left) && right.same_as(&inner.right) {
                return node.clone();
            }
            Node::join(left, right)
        }
    }
}

/// The subtree at `depth` holding `existing` (a leaf alone in its subtree, if
/// any) with `changes` applied.
fn build(
    existing: Option<&Arc<Leaf>>,
    depth: usize,
    changes: &[Change],
    parallel_min: usize,
) -> Node {
    match (existing, changes) {
        (None, []) => return Node::Empty,
        (Some(leaf), []) => return Node::Leaf(Arc::clone(leaf)),
        (None, [only]) => {
            return only
                .value_hash
                .map_or(Node::Empty, |value| Node::leaf(only.key_path, value))
        }
        (Some(leaf), [only]) if only.key_path == leaf.key_path => {
            return match only.value_hash {
                None => Node::Empty,
                Some(value) if value == leaf.value_hash => Node::Leaf(Arc::clone(leaf)),
                Some(value) => Node::leaf(only.key_path, value),
            };
        }
        // Deleting a key that is not there changes nothing.
        (Some(leaf), [only]) if only.value_hash.is_none() => return Node::Leaf(Arc::clone(leaf)),
        _ => {}
    }
    // Two distinct paths remain, so they part before the last bit.
    debug_assert!(
        depth < super::proof::MAX_DEPTH,
        "distinct paths part before bit 256"
    );
    let (to_left, to_right) = split_at_bit(changes, depth);
    let (left_leaf, right_leaf) = match existing {
        Some(leaf) if bit(&leaf.key_path, depth) => (None, Some(leaf)),
        Some(leaf) => (Some(leaf), None),
        None => (None, None),
    };
    let (left, right) = join(
        changes.len() >= parallel_min,
        || build(left_leaf, depth + 1, to_left, parallel_min),
        || build(right_leaf, depth + 1, to_right, parallel_min),
    );
    Node::join(left, right)
}

impl StateTree {
    /// An empty tree (root [`Hash::ZERO`]).
    pub fn new() -> StateTree {
        StateTree::default()
    }

    /// The root hash (cached, O(1)).
    pub fn root(&self) -> Hash {
        self.root.hash()
    }

    /// The number of keys in the tree.
    pub fn len(&self) -> usize {
        self.root.len()
    }

    /// Whether the tree holds no key.
    pub fn is_empty(&self) -> bool {
        matches!(self.root, Node::Empty)
    }

    /// Sets every key to its new value; `None` deletes the key. Keys may come
    /// in any order; a key given twice: last wins.
    pub fn update(&mut self, changes: &[StateChange]) {
        let changes = prepare(changes, false);
        self.root = update_node(&self.root, 0, &changes, usize::MAX);
    }

    /// Same result as [`StateTree::update`], with the hashing and disjoint
    /// subtrees spread over the current rayon pool.
    pub fn update_parallel(&mut self, changes: &[StateChange]) {
        let changes = prepare(changes, true);
        self.root = update_node(&self.root, 0, &changes, PARALLEL_MIN_CHANGES);
    }

    /// A tree holding exactly `entries` (a key given twice: last wins).
    pub fn from_entries(entries: impl IntoIterator<Item = (StateKey, StateValue)>) -> StateTree {
        let changes: Vec<_> = entries
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .collect();
        let mut tree = StateTree::new();
        tree.update_parallel(&changes);
        tree
    }

    /// A proof of the key's current value (inclusion) or of its absence
    /// (exclusion).
    pub fn prove(&self, key: &StateKey) -> StateProof {
        let path = key_path(key);
        let mut siblings = Vec::new();
        let mut node = &self.root;
        loop {
            match node {
                Node::Empty => {
                    return StateProof {
                        siblings,
                        end: ProofEnd::Empty,
                    }
                }
                Node::Leaf(leaf) => {
                    return StateProof {
                        siblings,
                        end: ProofEnd::Leaf {
                            key_path: leaf.key_path,
                            value_hash: leaf.value_hash,
                        },
                    }
                }
                Node::Inner(inner) => {
                    let (next, beside) = if bit(&path, siblings.len()) {
                        (&inner.right, &inner.left)
                    } else {
                        (&inner.left, &inner.right)
                    };
                    siblings.push(beside.hash());
                    node = next;
                }
            }
        }
    }
}

impl fmt::Debug for StateTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateTree")
            .field("root", &self.root())
            .field("len", &self.len())
            .finish()
    }
}

/// Hashes a batch and sorts it by path, keeping the last change of each key.
fn prepare(changes: &[StateChange], parallel: bool) -> Vec<Change> {
    let hash = |(key, value): &StateChange| Change {
        key_path: key_path(key),
        value_hash: value.as_ref().map(value_hash),
    };
    let parallel = parallel && changes.len() >= PARALLEL_MIN_CHANGES;
    let mut prepared: Vec<Change> = if parallel {
        changes.par_iter().map(hash).collect()
    } else {
        changes.iter().map(hash).collect()
    };
    // A stable sort keeps equal paths in the order given, so the last of a run
    // is the last given.
    if parallel {
        prepared.par_sort_by_key(|c| c.key_path);
    } else {
        prepared.sort_by_key(|c| c.key_path);
    }
    prepared.dedup_by(|later, kept| {
        let same = later.key_path == kept.key_path;
        if same {
            *kept = *later;
        }
        same
    });
    prepared
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    use crate::state::test_key as key;

    fn account(v: u64) -> StateValue {
        StateValue::Account(atoll_primitives::Account {
            balance: (u128::from(v) << 70) | u128::from(v),
            nonce: v,
        })
    }

    /// A deterministic stream of pseudo-random numbers (splitmix64).
    struct Stream(u64);

    impl Stream {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Checks the canonical shape: no collapsible inner node, every leaf
    /// under its own path prefix, cached hashes and counts right.
    fn check_shape(node: &Node, depth: usize, prefix: &Hash) {
        match node {
            Node::Empty => {}
            Node::Leaf(leaf) => {
                for d in 0..depth {
                    assert_eq!(bit(&leaf.key_path, d), bit(prefix, d), "leaf off its path");
                }
                assert_eq!(leaf.hash, leaf_hash(&leaf.key_path, &leaf.value_hash));
            }
            Node::Inner(inner) => {
                let collapsible = matches!(
                    (&inner.left, &inner.right),
                    (Node::Empty, Node::Empty | Node::Leaf(_)) | (Node::Leaf(_), Node::Empty)
                );
                assert!(!collapsible, "inner node at depth {depth} should collapse");
                assert_eq!(
                    inner.hash,
                    node_hash(&inner.left.hash(), &inner.right.hash())
                );
                assert_eq!(inner.leaves, inner.left.len() + inner.right.len());
                let mut right_prefix = *prefix;
                right_prefix.0[depth / 8] |= 0x80 >> (depth % 8);
                check_shape(&inner.left, depth + 1, prefix);
                check_shape(&inner.right, depth + 1, &right_prefix);
            }
        }
    }

    fn check(tree: &StateTree) {
        check_shape(&tree.root, 0, &Hash::ZERO);
    }

    #[test]
    fn empty_tree() {
        let mut tree = StateTree::new();
        assert_eq!(tree.root(), Hash::ZERO);
        assert!(tree.is_empty());
        assert_eq!(tree.len(), 0);
        tree.update(&[(key(1), None)]);
        assert_eq!(tree.root(), Hash::ZERO);
        tree.update(&[(key(1), Some(account(1))), (key(1), None)]);
        assert_eq!(tree.root(), Hash::ZERO);
        assert_eq!(StateTree::from_entries([]).root(), Hash::ZERO);
    }

    #[test]
    fn one_leaf_is_the_root() {
        let tree = StateTree::from_entries([(key(9), account(9))]);
        let expected = leaf_hash(&key_path(&key(9)), &value_hash(&account(9)));
        assert_eq!(tree.root(), expected);
        assert_eq!(tree.len(), 1);
    }

    #[test]
    fn two_leaves_meet_where_their_paths_part() {
        let (a, b) = (key_path(&key(1)), key_path(&key(2)));
        let leaf_a = leaf_hash(&a, &value_hash(&account(1)));
        let leaf_b = leaf_hash(&b, &value_hash(&account(2)));
        let part = (0..256)
            .find(|&d| bit(&a, d) != bit(&b, d))
            .expect("paths differ");
        let mut expected = if bit(&a, part) {
            node_hash(&leaf_b, &leaf_a)
        } else {
            node_hash(&leaf_a, &leaf_b)
        };
        for d in (0..part).rev() {
            expected = if bit(&a, d) {
                node_hash(&Hash::ZERO, &expected)
            } else {
                node_hash(&expected, &Hash::ZERO)
            };
        }
        let mut tree = StateTree::from_entries([(key(1), account(1)), (key(2), account(2))]);
        assert_eq!(tree.root(), expected);
        // Deleting one lifts the other back to the root.
        tree.update(&[(key(1), None)]);
        assert_eq!(tree.root(), leaf_hash(&b, &value_hash(&account(2))));
        check(&tree);
    }

    #[test]
    fn last_change_of_a_key_wins() {
        let mut tree = StateTree::new();
        tree.update(&[
            (key(1), Some(account(1))),
            (key(2), Some(account(2))),
            (key(1), Some(account(3))),
            (key(2), None),
        ]);
        assert_eq!(
            tree.root(),
            StateTree::from_entries([(key(1), account(3))]).root()
        );
    }

    #[test]
    fn snapshots_are_unaffected_by_later_updates() {
        let mut tree = StateTree::from_entries((0..100).map(|i| (key(i), account(i))));
        let snapshot = tree.clone();
        let before = snapshot.root();
        tree.update(&[(key(5), None), (key(500), Some(account(1)))]);
        assert_ne!(tree.root(), before);
        assert_eq!(snapshot.root(), before);
        assert_eq!(snapshot.len(), 100);
        assert!(snapshot
            .prove(&key(5))
            .verify(&before, &key(5), Some(&account(5))));
    }

    #[test]
    fn rewriting_the_same_values_shares_every_node() {
        let mut tree = StateTree::from_entries((0..50).map(|i| (key(i), account(i))));
        let before = tree.clone();
        tree.update(
            &(0..50)
                .map(|i| (key(i), Some(account(i))))
                .collect::<Vec<_>>(),
        );
        tree.update(&[(key(1_000), None)]);
        assert!(tree.root.same_as(&before.root));
    }

    #[test]
    fn parallel_update_matches_sequential() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .expect("a 4-thread pool starts");
        let mut stream = Stream(7);
        let mut sequential = StateTree::new();
        let mut parallel = StateTree::new();
        let mut model = BTreeMap::new();
        for round in 0..4 {
            let changes: Vec<_> = (0..5_000)
                .map(|_| {
                    let k = stream.next() % 8_000;
                    let value = (!stream.next().is_multiple_of(4)).then(|| account(stream.next()));
                    (key(k), value)
                })
                .collect();
            for (k, v) in &changes {
                match v {
                    Some(v) => model.insert(*k, v.clone()),
                    None => model.remove(k),
                };
            }
            sequential.update(&changes);
            pool.install(|| parallel.update_parallel(&changes));
            assert_eq!(sequential.root(), parallel.root(), "round {round}");
            assert_eq!(sequential.len(), model.len());
            assert_eq!(parallel.len(), model.len());
        }
        check(&parallel);
        let fresh = StateTree::from_entries(model.iter().map(|(k, v)| (*k, v.clone())));
        assert_eq!(fresh.root(), parallel.root());
        // Emptying the tree in one parallel batch collapses everything.
        let deletes: Vec<_> = model.keys().map(|k| (*k, None)).collect();
        pool.install(|| parallel.update_parallel(&deletes));
        assert_eq!(parallel.root(), Hash::ZERO);
        assert!(parallel.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The root depends only on the final map: not on how changes were
        /// batched, ordered, overwritten or deleted along the way.
        #[test]
        fn root_depends_only_on_the_final_map(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u64..64, proptest::option::of(0u64..4)), 0..40),
                1..6,
            ),
        ) {
            let mut tree = StateTree::new();
            let mut parallel = StateTree::new();
            let mut model = BTreeMap::new();
            for batch in &batches {
                let changes: Vec<_> =
                    batch.iter().map(|&(k, v)| (key(k), v.map(account))).collect();
                for (k, v) in &changes {
                    match v {
                        Some(v) => model.insert(*k, v.clone()),
                        None => model.remove(k),
                    };
                }
                tree.update(&changes);
                parallel.update_parallel(&changes);
                check(&tree);
                prop_assert_eq!(tree.len(), model.len());
            }
            let fresh = StateTree::from_entries(model.iter().map(|(k, v)| (*k, v.clone())));
            prop_assert_eq!(tree.root(), fresh.root());
            prop_assert_eq!(parallel.root(), fresh.root());
            // Inserting one key at a time, in reverse order, lands on the same root.
            let mut one_by_one = StateTree::new();
            for (k, v) in model.iter().rev() {
                one_by_one.update(&[(*k, Some(v.clone()))]);
            }
            prop_assert_eq!(one_by_one.root(), fresh.root());
        }

        /// Inserting keys and deleting them again leaves the tree as it was.
        #[test]
        fn insert_then_delete_is_never_inserted(
            base in proptest::collection::btree_set(0u64..200, 0..60),
            extra in proptest::collection::btree_set(200u64..400, 1..60),
        ) {
            let entries = || base.iter().map(|&k| (key(k), account(k)));
            let mut tree = StateTree::from_entries(entries());
            let before = tree.root();
            let inserts: Vec<_> = extra.iter().map(|&k| (key(k), Some(account(k)))).collect();
            tree.update(&inserts);
            prop_assert_ne!(tree.root(), before);
            for &k in &extra {
                tree.update(&[(key(k), None)]);
                check(&tree);
            }
            prop_assert_eq!(tree.root(), before);
            prop_assert_eq!(tree.len(), base.len());
        }
    }
}
