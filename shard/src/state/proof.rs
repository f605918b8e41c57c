//! Inclusion and exclusion proofs for the sparse state tree, and the hashing
//! rules that the tree and its verifiers share.
//!
//! The tree is the binary variant of the Jellyfish Merkle tree (Gao et al.,
//! "Jellyfish Merkle Tree", Diem, 2021): a key's 256-bit path is a hash of the
//! key, a subtree holding one leaf is that leaf, an empty subtree hashes to
//! [`Hash::ZERO`]. A proof walks from the root along the key's path, recording
//! the sibling hash at every inner node it passes, and says how the path ends:
//! at an empty subtree (the key is absent) or at the only leaf of its subtree
//! (the key itself, or another key sharing the prefix, which proves absence).

use atoll_primitives::hash::{domain, Hash};
use atoll_primitives::{StateKey, StateValue};
use borsh::{BorshDeserialize, BorshSerialize};

/// The deepest a path can go: one level per bit of a key path.
pub const MAX_DEPTH: usize = 256;

/// The 256-bit path of `key` in the tree (hashed, so paths spread evenly).
pub fn key_path(key: &StateKey) -> Hash {
    Hash::domain(&domain::STATE_KEY, &[&key.to_bytes()])
}

/// The hash of `value` as stored in a leaf (over its stored bytes, so an
/// account hashes as it did before other kinds of values existed).
pub fn value_hash(value: &StateValue) -> Hash {
    Hash::domain(&domain::STATE_VALUE, &[&value.to_bytes()])
}

/// The hash of a leaf; it does not depend on the depth the leaf sits at.
pub fn leaf_hash(key_path: &Hash, value_hash: &Hash) -> Hash {
    Hash::domain(&domain::STATE_LEAF, &[&key_path.0, &value_hash.0])
}

/// The hash of an inner node with children `left` and `right`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::domain(&domain::STATE_NODE, &[&left.0, &right.0])
}

/// Bit `depth` of `path`, most significant bit first (`true`: go right), so
/// that sorting paths as bytes sorts them in the tree's left-to-right order.
pub(crate) fn bit(path: &Hash, depth: usize) -> bool {
    (path.0[depth / 8] >> (7 - depth % 8)) & 1 == 1
}

/// The number of leading bits `a` and `b` share.
fn common_prefix_len(a: &Hash, b: &Hash) -> usize {
    a.0.iter()
        .zip(b.0.iter())
        .position(|(x, y)| x != y)
        .map_or(MAX_DEPTH, |i| {
            i * 8 + (a.0[i] ^ b.0[i]).leading_zeros() as usize
        })
}

/// Where a proof's path ends.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProofEnd {
    /// At an empty subtree: no key has this path prefix.
    Empty,
    /// At a leaf, the only one in its subtree: the key itself (inclusion) or
    /// another key sharing the path prefix (exclusion).
    Leaf {
        /// The path of the leaf's key.
        key_path: Hash,
        /// The hash of the leaf's value.
        value_hash: Hash,
    },
}

/// A proof of a key's value, or of its absence, under a state root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StateProof {
    /// Sibling hashes from the root down: `siblings[d]` is the subtree beside
    /// the path below the inner node at depth `d` (bit `d` of the path picks
    /// the side). At most [`MAX_DEPTH`] long.
    pub siblings: Vec<Hash>,
    /// Where the path ends, at depth `siblings.len()`.
    pub end: ProofEnd,
}

impl StateProof {
    /// Whether this proof shows that under `root`, `key` holds `value`
    /// (`None`: the key is absent).
    pub fn verify(&self, root: &Hash, key: &StateKey, value: Option<&StateValue>) -> bool {
        let depth = self.siblings.len();
        if depth > MAX_DEPTH {
            return false;
        }
        let path = key_path(key);
        let end_hash = match (&self.end, value) {
            (ProofEnd::Empty, None) => Hash::ZERO,
            (ProofEnd::Empty, Some(_)) => return false,
            (
                ProofEnd::Leaf {
                    key_path: leaf_path,
                    value_hash: leaf_value,
                },
                Some(account),
            ) => {
                if *leaf_path != path || *leaf_value != value_hash(account) {
                    return false;
                }
                leaf_hash(leaf_path, leaf_value)
            }
            (
                ProofEnd::Leaf {
                    key_path: leaf_path,
                    value_hash: leaf_value,
                },
                None,
            ) => {
                // Another key's leaf proves absence only if it sits in the
                // subtree the key's path leads to.
                if *leaf_path == path || common_prefix_len(leaf_path, &path) < depth {
                    return false;
                }
                leaf_hash(leaf_path, leaf_value)
            }
        };
        // An inner node never has an empty child beside an empty subtree or a
        // leaf (those collapse), so a canonical proof never ends on a zero
        // sibling; refusing one costs nothing and rejects padded proofs early.
        if self.siblings.last() == Some(&Hash::ZERO) {
            return false;
        }
        let computed =
            self.siblings
                .iter()
                .enumerate()
                .rev()
                .fold(end_hash, |below, (d, sibling)| {
                    if bit(&path, d) {
                        node_hash(sibling, &below)
                    } else {
                        node_hash(&below, sibling)
                    }
                });
        computed == *root
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::StateTree;
    use super::*;
    use proptest::prelude::*;

    use crate::state::test_key as key;

    fn account(i: u64) -> StateValue {
        StateValue::Account(atoll_primitives::Account {
            balance: u128::from(i) * 1_000 + 7,
            nonce: i % 13,
        })
    }

    /// A tree holding keys `0..n` with values `account(i)`.
    fn tree_of(n: u64) -> StateTree {
        StateTree::from_entries((0..n).map(|i| (key(i), account(i))))
    }

    #[test]
    fn bits_follow_byte_order() {
        let mut path = Hash::ZERO;
        path.0[0] = 0b1000_0000;
        path.0[31] = 0b0000_0001;
        assert!(bit(&path, 0));
        assert!(!bit(&path, 1));
        assert!(bit(&path, 255));
        assert_eq!(common_prefix_len(&path, &path), MAX_DEPTH);
        assert_eq!(common_prefix_len(&path, &Hash::ZERO), 0);
        let mut other = path;
        other.0[31] = 0;
        assert_eq!(common_prefix_len(&path, &other), 255);
    }

    #[test]
    fn empty_tree_proves_absence() {
        let tree = StateTree::new();
        assert_eq!(tree.root(), Hash::ZERO);
        let proof = tree.prove(&key(1));
        assert_eq!(proof.siblings, Vec::<Hash>::new());
        assert_eq!(proof.end, ProofEnd::Empty);
        assert!(proof.verify(&Hash::ZERO, &key(1), None));
        assert!(!proof.verify(&Hash::ZERO, &key(1), Some(&account(1))));
        assert!(!proof.verify(&Hash::domain(&domain::STATE_NODE, &[]), &key(1), None));
    }

    #[test]
    fn single_leaf_tree() {
        let tree = tree_of(1);
        let proof = tree.prove(&key(0));
        assert!(proof.siblings.is_empty());
        assert!(proof.verify(&tree.root(), &key(0), Some(&account(0))));
        let absent = tree.prove(&key(5));
        assert!(absent.verify(&tree.root(), &key(5), None));
        assert!(!absent.verify(&tree.root(), &key(0), None));
    }

    #[test]
    fn every_present_key_has_an_inclusion_proof() {
        let tree = tree_of(300);
        let root = tree.root();
        for i in 0..300 {
            let proof = tree.prove(&key(i));
            assert!(proof.siblings.len() <= MAX_DEPTH);
            assert!(proof.verify(&root, &key(i), Some(&account(i))), "key {i}");
            // Wrong value, claimed absence, another key, another root.
            assert!(!proof.verify(&root, &key(i), Some(&account(i + 1))));
            assert!(!proof.verify(&root, &key(i), None));
            assert!(!proof.verify(&root, &key(i + 1), Some(&account(i))));
            assert!(!proof.verify(&root, &key(i + 1), Some(&account(i + 1))));
            assert!(!proof.verify(&Hash::ZERO, &key(i), Some(&account(i))));
            // A proof of another present key does not prove this one.
            let other = tree.prove(&key((i + 1) % 300));
            assert!(!other.verify(&root, &key(i), Some(&account(i))));
            assert!(!other.verify(&root, &key(i), None));
        }
    }

    #[test]
    fn absent_keys_have_exclusion_proofs() {
        let tree = tree_of(300);
        let root = tree.root();
        let (mut at_empty, mut at_leaf) = (0, 0);
        for i in 300..600 {
            let proof = tree.prove(&key(i));
            match proof.end {
                ProofEnd::Empty => at_empty += 1,
                ProofEnd::Leaf { .. } => at_leaf += 1,
            }
            assert!(proof.verify(&root, &key(i), None), "key {i}");
            assert!(!proof.verify(&root, &key(i), Some(&account(i))));
            // An exclusion proof never shows a present key absent. (One that
            // ends at a present key's leaf is that key's inclusion proof.)
            for present in [0, 1, i % 300] {
                assert!(!proof.verify(&root, &key(present), None));
            }
        }
        // Both ways a path can end are exercised.
        assert!(at_empty > 0 && at_leaf > 0, "{at_empty} {at_leaf}");
    }

    #[test]
    fn tampered_proofs_are_rejected() {
        let tree = tree_of(300);
        let root = tree.root();
        for i in (0..600).step_by(7) {
            let value = (i < 300).then(|| account(i));
            let proof = tree.prove(&key(i));
            assert!(proof.verify(&root, &key(i), value.as_ref()));
            for d in 0..proof.siblings.len() {
                let mut bad = proof.clone();
                bad.siblings[d].0[d % 32] ^= 1;
                assert!(!bad.verify(&root, &key(i), value.as_ref()));
                if proof.siblings[d] != Hash::ZERO {
                    let mut zeroed = proof.clone();
                    zeroed.siblings[d] = Hash::ZERO;
                    assert!(!zeroed.verify(&root, &key(i), value.as_ref()));
                }
            }
            let mut truncated = proof.clone();
            if truncated.siblings.pop().is_some() {
                assert!(!truncated.verify(&root, &key(i), value.as_ref()));
            }
            let mut truncated_top = proof.clone();
            if !truncated_top.siblings.is_empty() {
                truncated_top.siblings.remove(0);
                assert!(!truncated_top.verify(&root, &key(i), value.as_ref()));
            }
            for padding in [Hash::ZERO, root] {
                let mut padded = proof.clone();
                padded.siblings.push(padding);
                assert!(!padded.verify(&root, &key(i), value.as_ref()));
                let mut padded_top = proof.clone();
                padded_top.siblings.insert(0, padding);
                assert!(!padded_top.verify(&root, &key(i), value.as_ref()));
            }
            let mut swapped_end = proof.clone();
            swapped_end.end = match &proof.end {
                ProofEnd::Empty => ProofEnd::Leaf {
                    key_path: key_path(&key(i)),
                    value_hash: value_hash(&account(i)),
                },
                ProofEnd::Leaf { .. } => ProofEnd::Empty,
            };
            assert!(!swapped_end.verify(&root, &key(i), None));
            assert!(!swapped_end.verify(&root, &key(i), Some(&account(i))));
            if let ProofEnd::Leaf {
                key_path,
                value_hash,
            } = proof.end
            {
                let mut bad_value = proof.clone();
                bad_value.end = ProofEnd::Leaf {
                    key_path,
                    value_hash: Hash(value_hash.0.map(|b| b ^ 0x80)),
                };
                assert!(!bad_value.verify(&root, &key(i), value.as_ref()));
                let mut bad_path = proof.clone();
                let mut moved = key_path;
                moved.0[31] ^= 1;
                bad_path.end = ProofEnd::Leaf {
                    key_path: moved,
                    value_hash,
                };
                assert!(!bad_path.verify(&root, &key(i), value.as_ref()));
            }
        }
    }

    #[test]
    fn overlong_proofs_are_rejected_without_panic() {
        let tree = tree_of(50);
        let root = tree.root();
        for len in [MAX_DEPTH, MAX_DEPTH + 1, 1_000] {
            for end in [
                ProofEnd::Empty,
                ProofEnd::Leaf {
                    key_path: key_path(&key(3)),
                    value_hash: value_hash(&account(3)),
                },
            ] {
                let proof = StateProof {
                    siblings: vec![root; len],
                    end,
                };
                assert!(!proof.verify(&root, &key(3), Some(&account(3))));
                assert!(!proof.verify(&root, &key(3), None));
                assert!(!proof.verify(&root, &key(4), None));
            }
        }
    }

    #[test]
    fn borsh_round_trip() {
        let tree = tree_of(40);
        for i in [0, 5, 99] {
            let proof = tree.prove(&key(i));
            let bytes = borsh::to_vec(&proof).expect("encoding into a Vec cannot fail");
            let decoded: StateProof = borsh::from_slice(&bytes).expect("round trip");
            assert_eq!(decoded, proof);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Arbitrary proofs never panic and never verify against a real root.
        #[test]
        fn arbitrary_proofs_do_not_verify(
            siblings in proptest::collection::vec(any::<[u8; 32]>(), 0..300),
            end_leaf in any::<Option<([u8; 32], [u8; 32])>>(),
            probe in 0u64..100,
            claim in any::<Option<u64>>(),
        ) {
            let tree = tree_of(60);
            let proof = StateProof {
                siblings: siblings.into_iter().map(Hash).collect(),
                end: end_leaf.map_or(ProofEnd::Empty, |(k, v)| ProofEnd::Leaf {
                    key_path: Hash(k),
                    value_hash: Hash(v),
                }),
            };
            let claimed = claim.map(account);
            prop_assert!(!proof.verify(&tree.root(), &key(probe), claimed.as_ref()));
        }
    }
}
