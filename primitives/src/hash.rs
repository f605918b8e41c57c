//! 32-byte blake3 hashes and the domain-separation contexts used with them.
//!
//! Every hash atoll computes is domain-separated with blake3's `derive_key`
//! mode, so a transaction hash can never collide with a block hash, a Merkle
//! node or an address, even for identical input bytes.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;

/// Domain-separation contexts (blake3 `derive_key` contexts). Never change one:
/// it changes every hash of that kind.
pub mod domain {
    /// Address derivation from an ed25519 public key.
    pub const ADDRESS: &str = "atoll 2026-11 address v1";
    /// The hash of a transaction body, which is what a sender signs.
    pub const TRANSACTION: &str = "atoll 2026-11 transaction v1";
    /// The hash of a shard block header (the block hash).
    pub const SHARD_HEADER: &str = "atoll 2026-11 shard header v1";
    /// The hash of a receipt.
    pub const RECEIPT: &str = "atoll 2026-11 receipt v1";
    /// A leaf of a binary Merkle tree.
    pub const MERKLE_LEAF: &str = "atoll 2026-11 merkle leaf v1";
    /// An inner node of a binary Merkle tree.
    pub const MERKLE_NODE: &str = "atoll 2026-11 merkle node v1";
    /// The root of an empty binary Merkle tree.
    pub const MERKLE_EMPTY: &str = "atoll 2026-11 merkle empty v1";
    /// A transaction outcome (leaf of the outcome root).
    pub const OUTCOME: &str = "atoll 2026-11 outcome v1";
    /// A leaf of the sparse state tree.
    pub const STATE_LEAF: &str = "atoll 2026-11 state leaf v1";
    /// An inner node of the sparse state tree.
    pub const STATE_NODE: &str = "atoll 2026-11 state node v1";
    /// The key path of a state key in the sparse state tree.
    pub const STATE_KEY: &str = "atoll 2026-11 state key v1";
    /// The hash of a state value stored in a sparse state tree leaf.
    pub const STATE_VALUE: &str = "atoll 2026-11 state value v1";
}

/// A 32-byte blake3 hash.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash (used as "no parent" and as the empty-subtree hash).
    pub const ZERO: Hash = Hash([0; 32]);

    /// Hashes `parts` (concatenated) under the domain `context`.
    pub fn domain(context: &str, parts: &[&[u8]]) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key(context);
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
        let a = Hash::domain(domain::TRANSACTION, &[b"x"]);
        let b = Hash::domain(domain::SHARD_HEADER, &[b"x"]);
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trip() {
        let h = Hash::domain(domain::RECEIPT, &[b"r"]);
        assert_eq!(Hash::from_hex(&h.to_string()), Ok(h));
        assert_eq!(Hash::from_hex(&format!("0x{h}")), Ok(h));
        assert!(Hash::from_hex("abcd").is_err());
    }
}
