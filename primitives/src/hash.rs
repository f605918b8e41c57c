//! 32-byte blake3 hashes and the domain-separation contexts used with them.
//!
//! Every hash atoll computes is domain-separated with blake3's `derive_key`
//! mode, so a transaction hash can never collide with a block hash, a Merkle
//! node or an address, even for identical input bytes.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use std::sync::OnceLock;

/// Domain-separation contexts (blake3 `derive_key` contexts). Never change one:
/// it changes every hash of that kind.
pub mod domain {
    use super::Domain;

    /// Address derivation from an ed25519 public key.
    pub static ADDRESS: Domain = Domain::new("atoll 2026-11 address v1");
    /// The hash of a transaction body, which is what a sender signs.
    pub static TRANSACTION: Domain = Domain::new("atoll 2026-11 transaction v1");
    /// The hash of a shard block header (the block hash).
    pub static SHARD_HEADER: Domain = Domain::new("atoll 2026-11 shard header v1");
    /// The hash of a receipt.
    pub static RECEIPT: Domain = Domain::new("atoll 2026-11 receipt v1");
    /// The origin of the receipt that carries a moving account's state.
    pub static ACCOUNT_MOVE: Domain = Domain::new("atoll 2026-11 account move v1");
    /// What a validator signs to vote in the BFT protocol (a block, or the
    /// empty block of a height that timed out), or to finalize a height.
    pub static CONSENSUS_VOTE: Domain = Domain::new("atoll 2026-11 consensus vote v1");
    /// What a leader signs to propose a block.
    pub static CONSENSUS_PROPOSAL: Domain = Domain::new("atoll 2026-11 consensus proposal v1");
    /// The hash of a shard map, which every shard header commits to.
    pub static SHARD_MAP: Domain = Domain::new("atoll 2026-11 shard map v1");
    /// The genesis file (the parent of the first consensus block).
    pub static GENESIS: Domain = Domain::new("atoll 2026-11 genesis v1");
    /// A validator's libp2p identity key, derived from its validator key
    /// (one secret to keep, two keys that never sign the same statements).
    pub static P2P_IDENTITY: Domain = Domain::new("atoll 2026-11 p2p identity v1");
    /// Beacon block headers.
    pub static BEACON_HEADER: Domain = Domain::new("atoll 2026-11 beacon header v1");
    /// Committee draws: which validators serve a shard in an epoch.
    pub static COMMITTEE: Domain = Domain::new("atoll 2026-11 committee v1");
    /// A committee member's signature on a shard header.
    pub static HEADER_VOTE: Domain = Domain::new("atoll 2026-11 header vote v1");
    /// A leaf of a binary Merkle tree.
    pub static MERKLE_LEAF: Domain = Domain::new("atoll 2026-11 merkle leaf v1");
    /// An inner node of a binary Merkle tree.
    pub static MERKLE_NODE: Domain = Domain::new("atoll 2026-11 merkle node v1");
    /// The root of an empty binary Merkle tree.
    pub static MERKLE_EMPTY: Domain = Domain::new("atoll 2026-11 merkle empty v1");
    /// A transaction outcome (leaf of the outcome root).
    pub static OUTCOME: Domain = Domain::new("atoll 2026-11 outcome v1");
    /// What a cross-shard call did at its destination (a leaf of the outcome
    /// root after the transactions').
    pub static CALL_OUTCOME: Domain = Domain::new("atoll 2026-12 call outcome v1");
    /// A leaf of the sparse state tree.
    pub static STATE_LEAF: Domain = Domain::new("atoll 2026-11 state leaf v1");
    /// An inner node of the sparse state tree.
    pub static STATE_NODE: Domain = Domain::new("atoll 2026-11 state node v1");
    /// The key path of a state key in the sparse state tree.
    pub static STATE_KEY: Domain = Domain::new("atoll 2026-11 state key v1");
    /// The hash of a state value stored in a sparse state tree leaf.
    pub static STATE_VALUE: Domain = Domain::new("atoll 2026-11 state value v1");
}

/// A blake3 `derive_key` context. The key derived from the context string is
/// computed once and reused, which halves the work of hashing short inputs.
pub struct Domain {
    context: &'static str,
    base: OnceLock<blake3::Hasher>,
}

impl Domain {
    /// The domain of `context`.
    pub const fn new(context: &'static str) -> Domain {
        Domain {
            context,
            base: OnceLock::new(),
        }
    }

    /// The context string.
    pub fn context(&self) -> &'static str {
        self.context
    }

    fn hasher(&self) -> blake3::Hasher {
        self.base
            .get_or_init(|| blake3::Hasher::new_derive_key(self.context))
            .clone()
    }
}

/// A 32-byte blake3 hash.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash (used as "no parent" and as the empty-subtree hash).
    pub const ZERO: Hash = Hash([0; 32]);

    /// Hashes `parts` (concatenated) under `domain`: blake3 in `derive_key`
    /// mode with the domain's context string.
    pub fn domain(domain: &Domain, parts: &[&[u8]]) -> Hash {
        let mut hasher = domain.hasher();
        for part in parts {
            hasher.update(part);
        }
        Hash(*hasher.finalize().as_bytes())
    }

    /// The bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex characters (an optional `0x` prefix is accepted).
    pub fn from_hex(text: &str) -> Result<Hash, hex::FromHexError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.strip_prefix("0x").unwrap_or(text), &mut out)?;
        Ok(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &hex::encode(self.0)[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_identical_input() {
        let a = Hash::domain(&domain::TRANSACTION, &[b"x"]);
        let b = Hash::domain(&domain::SHARD_HEADER, &[b"x"]);
        assert_ne!(a, b);
    }

    #[test]
    fn cached_context_matches_blake3_derive_key() {
        let expected = blake3::Hasher::new_derive_key(domain::RECEIPT.context())
            .update(b"abc")
            .finalize();
        // Twice: the first call derives the key, the second reuses it.
        for _ in 0..2 {
            assert_eq!(
                Hash::domain(&domain::RECEIPT, &[b"a", b"bc"]).0,
                *expected.as_bytes()
            );
        }
    }

    #[test]
    fn hex_round_trip() {
        let h = Hash::domain(&domain::RECEIPT, &[b"r"]);
        assert_eq!(Hash::from_hex(&h.to_string()), Ok(h));
        assert_eq!(Hash::from_hex(&format!("0x{h}")), Ok(h));
        assert!(Hash::from_hex("abcd").is_err());
    }
}
