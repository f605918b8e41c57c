//! A binary Merkle tree over a list of items, with inclusion proofs.
//!
//! The tree shape is that of RFC 9162 (Certificate Transparency v2), section
//! 2.1: a list of `n > 1` leaves splits at the largest power of two below `n`.
//! Leaves and inner nodes are hashed under different blake3 domains
//! ([`domain::MERKLE_LEAF`], [`domain::MERKLE_NODE`]), so a leaf can never be
//! passed off as an inner node (the second-preimage attack on naive trees).

use crate::hash::{domain, Hash};
use borsh::{BorshDeserialize, BorshSerialize};

/// The hash of a leaf whose item hashes to `item`.
pub fn leaf_hash(item: &Hash) -> Hash {
    Hash::domain(&domain::MERKLE_LEAF, &[&item.0])
}

/// The hash of an inner node with children `left` and `right`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::domain(&domain::MERKLE_NODE, &[&left.0, &right.0])
}

/// The root of an empty list.
pub fn empty_root() -> Hash {
    Hash::domain(&domain::MERKLE_EMPTY, &[])
}

/// The root over `items` (each item given by its hash), in order.
pub fn root(items: &[Hash]) -> Hash {
    if items.is_empty() {
        return empty_root();
    }
    subtree_root(items)
}

fn subtree_root(items: &[Hash]) -> Hash {
    if items.len() == 1 {
        return leaf_hash(&items[0]);
    }
    let k = split_point(items.len());
    node_hash(&subtree_root(&items[..k]), &subtree_root(&items[k..]))
}

/// Fills `siblings[i]` with the path of item `i` of `items` (leaf to root)
/// and returns the subtree root.
fn collect_all(items: &[Hash], siblings: &mut [Vec<Hash>]) -> Hash {
    if items.len() == 1 {
        return leaf_hash(&items[0]);
    }
    let k = split_point(items.len());
    let (left_paths, right_paths) = siblings.split_at_mut(k);
    let left = collect_all(&items[..k], left_paths);
    let right = collect_all(&items[k..], right_paths);
    for path in left_paths.iter_mut() {
        path.push(right);
    }
    for path in right_paths.iter_mut() {
        path.push(left);
    }
    node_hash(&left, &right)
}

/// The largest power of two strictly below `n` (for `n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The most siblings a proof can have: a list holds at most 2^64 items, so
/// no path from a leaf to the root is longer. Decoding refuses longer
/// proofs, so a peer cannot make a proof hold megabytes of siblings.
pub const MAX_PROOF_DEPTH: usize = 64;

/// A proof that an item is at `index` in a list of `leaf_count` items.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize)]
pub struct MerkleProof {
    /// Position of the item in the list.
    pub index: u64,
    /// Length of the list.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up to the root.
    pub siblings: Vec<Hash>,
}

impl BorshDeserialize for MerkleProof {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let index = u64::deserialize_reader(reader)?;
        let leaf_count = u64::deserialize_reader(reader)?;
        let len = u32::deserialize_reader(reader)?;
        if len as usize > MAX_PROOF_DEPTH {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a Merkle proof of {len} siblings, over the {MAX_PROOF_DEPTH} of any tree"),
            ));
        }
        let siblings = (0..len)
            .map(|_| Hash::deserialize_reader(reader))
            .collect::<std::io::Result<Vec<Hash>>>()?;
        Ok(MerkleProof {
            index,
            leaf_count,
            siblings,
        })
    }
}

impl MerkleProof {
    /// Whether the item proven is the last of its list. Safe on any
    /// numbers a peer sends (an index of `u64::MAX` is simply not last).
    pub fn is_last(&self) -> bool {
        self.index.checked_add(1) == Some(self.leaf_count)
    }

    /// The proof for the item at `index` of `items`, or `None` if out of range.
    pub fn new(items: &[Hash], index: usize) -> Option<MerkleProof> {
        if index >= items.len() {
            return None;
        }
        let mut siblings = Vec::new();
        collect_path(items, index, &mut siblings);
        Some(MerkleProof {
            index: index as u64,
            leaf_count: items.len() as u64,
            siblings,
        })
    }

    /// The proofs of every item of `items`, in order, in O(n log n): each
    /// subtree root is computed once (proving each item with
    /// [`MerkleProof::new`] would cost O(n²)).
    pub fn all(items: &[Hash]) -> Vec<MerkleProof> {
        let leaf_count = items.len() as u64;
        let mut siblings: Vec<Vec<Hash>> = vec![Vec::new(); items.len()];
        if !items.is_empty() {
            collect_all(items, &mut siblings);
        }
        siblings
            .into_iter()
            .enumerate()
            .map(|(index, siblings)| MerkleProof {
                index: index as u64,
                leaf_count,
                siblings,
            })
            .collect()
    }

    /// Whether this proof shows `item` at `self.index` under `root`
    /// (the verification algorithm of RFC 9162, section 2.1.3.2).
    pub fn verify(&self, root: &Hash, item: &Hash) -> bool {
        if self.index >= self.leaf_count || self.siblings.len() > MAX_PROOF_DEPTH {
            return false;
        }
        let (mut fnode, mut snode) = (self.index, self.leaf_count - 1);
        let mut acc = leaf_hash(item);
        for sibling in &self.siblings {
            if snode == 0 {
                return false;
            }
            if fnode & 1 == 1 || fnode == snode {
                acc = node_hash(sibling, &acc);
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            } else {
                acc = node_hash(&acc, sibling);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        snode == 0 && acc == *root
    }
}

fn collect_path(items: &[Hash], index: usize, out: &mut Vec<Hash>) {
    if items.len() == 1 {
        return;
    }
    let k = split_point(items.len());
    if index < k {
        collect_path(&items[..k], index, out);
        out.push(subtree_root(&items[k..]));
    } else {
        collect_path(&items[k..], index - k, out);
        out.push(subtree_root(&items[..k]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Domain;
    use proptest::prelude::*;

    static TEST_ITEM: Domain = Domain::new("atoll test item");

    #[test]
    fn all_proofs_at_once_equal_one_by_one_and_verify() {
        for n in [0usize, 1, 2, 3, 5, 8, 13, 64, 100] {
            let list = items(n);
            let all = MerkleProof::all(&list);
            assert_eq!(all.len(), n);
            let root = root(&list);
            for (i, proof) in all.iter().enumerate() {
                assert_eq!(
                    Some(proof.clone()),
                    MerkleProof::new(&list, i),
                    "n={n} i={i}"
                );
                assert!(proof.verify(&root, &list[i]));
            }
        }
    }

    fn items(n: usize) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| Hash::domain(&TEST_ITEM, &[&i.to_le_bytes()]))
            .collect()
    }

    #[test]
    fn every_proof_verifies_for_small_trees() {
        for n in 1..40 {
            let list = items(n);
            let r = root(&list);
            for (i, item) in list.iter().enumerate() {
                let proof = MerkleProof::new(&list, i).expect("index in range");
                assert!(proof.verify(&r, item), "n={n} i={i}");
                // The same proof must not verify another item or another position.
                assert!(!proof.verify(&r, &Hash([0xaa; 32])));
                let mut moved = proof.clone();
                moved.index = (moved.index + 1) % n as u64;
                if n > 1 {
                    assert!(!moved.verify(&r, item), "n={n} i={i} moved");
                }
            }
        }
    }

    #[test]
    fn leaf_cannot_pose_as_node() {
        let list = items(2);
        let r = root(&list);
        // A one-leaf "tree" whose leaf is the concatenation is a different root.
        let fake = Hash::domain(
            &domain::MERKLE_NODE,
            &[&leaf_hash(&list[0]).0, &leaf_hash(&list[1]).0],
        );
        assert_eq!(r, fake);
        assert_ne!(root(&[fake]), r);
    }

    #[test]
    fn decoding_refuses_proofs_longer_than_any_tree() {
        let proof = |siblings: usize| MerkleProof {
            index: 0,
            leaf_count: 1,
            siblings: vec![Hash([1; 32]); siblings],
        };
        let deepest = crate::codec::encode(&proof(MAX_PROOF_DEPTH));
        let decoded: MerkleProof =
            crate::codec::decode("proof", &deepest, usize::MAX).expect("64 siblings decode");
        assert_eq!(decoded, proof(MAX_PROOF_DEPTH));
        let longer = crate::codec::encode(&proof(MAX_PROOF_DEPTH + 1));
        assert!(crate::codec::decode::<MerkleProof>("proof", &longer, usize::MAX).is_err());
        // A length prefix of u32::MAX with nothing after it is refused
        // before anything is read.
        let mut huge = crate::codec::encode(&proof(0));
        let at = huge.len() - 4;
        huge[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(crate::codec::decode::<MerkleProof>("proof", &huge, usize::MAX).is_err());
    }

    #[test]
    fn the_last_item_is_found_without_overflow() {
        let last = |index, leaf_count| {
            MerkleProof {
                index,
                leaf_count,
                siblings: Vec::new(),
            }
            .is_last()
        };
        assert!(last(4, 5));
        assert!(!last(3, 5));
        assert!(!last(u64::MAX, u64::MAX));
        assert!(!last(u64::MAX, 0));
    }

    proptest! {
        #[test]
        fn tampered_proofs_fail(n in 2usize..300, i in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let list = items(n);
            let r = root(&list);
            let i = i.index(n);
            let mut proof = MerkleProof::new(&list, i).expect("index in range");
            prop_assert!(proof.verify(&r, &list[i]));
            let j = flip.index(proof.siblings.len());
            proof.siblings[j].0[0] ^= 1;
            prop_assert!(!proof.verify(&r, &list[i]));
        }
    }
}
