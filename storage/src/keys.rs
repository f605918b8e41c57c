//! Column family names and the byte layout of every key.
//!
//! Numbers in keys are big-endian so that RocksDB's bytewise order is numeric
//! order (iterating `headers` walks the chain from genesis upwards).

use crate::error::StorageError;
use atoll_primitives::{codec, Address, Hash, ShardId, StateKey, StateValue};
use borsh::BorshDeserialize;

/// Column family names.
pub(crate) mod cf {
    /// Headers by height, and block hash to height.
    pub const HEADERS: &str = "headers";
    /// Block bodies by height.
    pub const BLOCKS: &str = "blocks";
    /// The current state: state key to value.
    pub const STATE: &str = "state";
    /// Outgoing receipts by (destination, sequence).
    pub const RECEIPTS: &str = "receipts";
    /// Transaction hash to where it was included and its outcome.
    pub const TX_INDEX: &str = "tx_index";
    /// Schema version, identity, head height and outbox cursors.
    pub const META: &str = "meta";
    /// Every column family of a shard store.
    pub const ALL: [&str; 6] = [HEADERS, BLOCKS, STATE, RECEIPTS, TX_INDEX, META];
}

/// `headers` key prefix of a header, followed by the big-endian height.
const HEADER_BY_HEIGHT: u8 = 0;
/// `headers` key prefix of a block hash, whose value is the block's height.
const HEIGHT_BY_HASH: u8 = 1;
/// `headers` key prefix, in the beacon store, of a shard header the beacon
/// recorded: the big-endian shard and height follow.
const RECORDED_HEADER: u8 = 2;
/// Beacon store `headers` key prefix: (shard, height) → the height of the
/// beacon block that recorded that shard block.
const RECORDED_IN: u8 = 3;

/// `meta` key of the schema version (a borsh `u32`).
pub(crate) const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// `meta` key of the store identity (a borsh [`crate::StoreIdentity`]).
pub(crate) const META_IDENTITY: &[u8] = b"identity";
/// `meta` key of the head height (a borsh `u64`); absent before genesis.
pub(crate) const META_HEAD: &[u8] = b"head";
/// `meta` key of the shard map the head executed under (a borsh
/// [`atoll_primitives::ShardMap`]); absent until the map first changes.
pub(crate) const META_SHARD_MAP: &[u8] = b"shard_map";
/// `meta` key prefix of an outbox cursor, followed by the big-endian destination.
const META_OUTBOX_CURSOR: &[u8] = b"outbox_cursor/";
/// `meta` key of the lowest height whose header this store holds, when
/// its state was installed from a peer's snapshot (a borsh `u64`); absent
/// in a store that executed every block from genesis.
pub(crate) const META_HISTORY_FROM: &[u8] = b"history_from";
/// `tx_index` key prefix of a transaction included below the history of a
/// store installed from a snapshot: known, with no location or outcome.
const SYNCED_TRANSACTION: u8 = b'k';
/// `meta` key prefix, in a store installed from a snapshot, of the proven
/// last receipt to a destination below its history, followed by the
/// big-endian destination (so the store can serve snapshots in turn).
const META_SYNCED_RECEIPT: &[u8] = b"synced_receipt/";
/// Prefix of "incoming receipt (source, sequence) was applied at height".
const META_INCOMING: &[u8] = b"incoming/";
/// Prefix of "incoming receipt (source, sequence) was forwarded as
/// (destination, sequence)".
const META_FORWARDED: &[u8] = b"forwarded/";
/// Prefix of "incoming call receipt (source, sequence) ran here and did
/// this" (a borsh [`atoll_primitives::CallRecord`]).
const META_CALL: &[u8] = b"call/";

/// `headers` key of the header at `height`.
pub(crate) fn header(height: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = HEADER_BY_HEIGHT;
    key[1..].copy_from_slice(&height.to_be_bytes());
    key
}

/// Beacon store `headers` key of the recorded header of `shard` at `height`.
pub(crate) fn recorded_header(shard: ShardId, height: u64) -> [u8; 11] {
    let mut key = [0u8; 11];
    key[0] = RECORDED_HEADER;
    key[1..3].copy_from_slice(&shard.0.to_be_bytes());
    key[3..].copy_from_slice(&height.to_be_bytes());
    key
}

/// Beacon store `headers` key of the beacon height that recorded `shard`'s
/// block at `height`.
pub(crate) fn recorded_in(shard: ShardId, height: u64) -> [u8; 11] {
    let mut key = recorded_header(shard, height);
    key[0] = RECORDED_IN;
    key
}

/// `headers` key of the height of the block `hash`.
pub(crate) fn height_by_hash(hash: &Hash) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = HEIGHT_BY_HASH;
    key[1..].copy_from_slice(&hash.0);
    key
}

/// `blocks` key of the body at `height`.
pub(crate) fn body(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

/// `state` key of `key`: its canonical encoding.
pub(crate) fn state(key: &StateKey) -> Vec<u8> {
    key.to_bytes()
}

/// The `state` key prefix of every storage slot of `address`: the keys of
/// [`StateKey::Slot`] begin with its variant and the address.
pub(crate) fn slots_of(address: &Address) -> Vec<u8> {
    let mut prefix = state(&StateKey::Slot(*address, [0; 32]));
    prefix.truncate(1 + 20);
    prefix
}

/// `receipts` key of the receipt `sequence` to `destination`.
pub(crate) fn receipt(destination: ShardId, sequence: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(&destination.0.to_be_bytes());
    key[2..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// `tx_index` key of the transaction `hash`.
pub(crate) fn transaction(hash: &Hash) -> [u8; 32] {
    hash.0
}

/// `tx_index` key of a transaction known to be in the chain below the
/// history of a store installed from a snapshot (33 bytes: never a
/// [`transaction`] key).
pub(crate) fn synced_transaction(hash: &Hash) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = SYNCED_TRANSACTION;
    key[1..].copy_from_slice(&hash.0);
    key
}

/// `meta` key of "incoming receipt `sequence` from `source` was applied".
pub(crate) fn incoming(source: ShardId, sequence: u64) -> Vec<u8> {
    let mut key = META_INCOMING.to_vec();
    key.extend_from_slice(&source.0.to_be_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// `meta` key of where incoming receipt `sequence` from `source` was
/// forwarded.
pub(crate) fn forwarded(source: ShardId, sequence: u64) -> Vec<u8> {
    let mut key = META_FORWARDED.to_vec();
    key.extend_from_slice(&source.0.to_be_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// `meta` key of what incoming call receipt `sequence` from `source` did.
pub(crate) fn call(source: ShardId, sequence: u64) -> Vec<u8> {
    let mut key = META_CALL.to_vec();
    key.extend_from_slice(&source.0.to_be_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// `meta` key of the outbox cursor to `destination`.
pub(crate) fn outbox_cursor(destination: ShardId) -> Vec<u8> {
    let mut key = META_OUTBOX_CURSOR.to_vec();
    key.extend_from_slice(&destination.0.to_be_bytes());
    key
}

/// `meta` key of the proven last receipt to `destination` that a store
/// installed from a snapshot got with it.
pub(crate) fn synced_receipt(destination: ShardId) -> Vec<u8> {
    let mut key = META_SYNCED_RECEIPT.to_vec();
    key.extend_from_slice(&destination.0.to_be_bytes());
    key
}

/// The destination of an outbox cursor key; None for any other key.
pub(crate) fn outbox_destination(key: &[u8]) -> Option<ShardId> {
    let rest = key.strip_prefix(META_OUTBOX_CURSOR)?;
    let bytes: [u8; 2] = rest.try_into().ok()?;
    Some(ShardId(u16::from_be_bytes(bytes)))
}

/// The prefix of every outbox cursor key.
pub(crate) fn outbox_cursor_prefix() -> &'static [u8] {
    META_OUTBOX_CURSOR
}

/// Decodes the state value of `state_key` read from the store at `key`;
/// failure means the store is corrupt.
pub(crate) fn state_value(
    state_key: &StateKey,
    key: &[u8],
    bytes: &[u8],
) -> Result<StateValue, StorageError> {
    StateValue::from_bytes(state_key, bytes).map_err(|e| StorageError::Corrupt {
        what: "state value",
        key: hex::encode(key),
        reason: e.to_string(),
    })
}

/// Decodes a value read from the store at `key`; failure means the store is corrupt.
pub(crate) fn decode<T: BorshDeserialize>(
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
    limit: usize,
) -> Result<T, StorageError> {
    codec::decode(what, bytes, limit).map_err(|e| StorageError::Corrupt {
        what,
        key: hex::encode(key),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::Address;

    #[test]
    fn height_keys_sort_numerically() {
        let heights = [0u64, 1, 255, 256, 65_536, u64::MAX];
        for pair in heights.windows(2) {
            assert!(header(pair[0]) < header(pair[1]));
            assert!(body(pair[0]) < body(pair[1]));
        }
        // Headers and hash entries never share a key.
        assert_ne!(header(0)[0], height_by_hash(&Hash::ZERO)[0]);
    }

    #[test]
    fn receipt_keys_sort_by_destination_then_sequence() {
        let keys = [
            receipt(ShardId(0), u64::MAX),
            receipt(ShardId(1), 0),
            receipt(ShardId(1), 1),
            receipt(ShardId(1), 256),
            receipt(ShardId(256), 0),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn state_key_order_matches_byte_order() {
        let mut low = [0u8; 20];
        low[19] = 0xff;
        let mut high = [0u8; 20];
        high[0] = 1;
        let (a, b) = (
            StateKey::Account(Address(low)),
            StateKey::Account(Address(high)),
        );
        assert!(a < b);
        assert!(state(&a) < state(&b));
    }

    #[test]
    fn undecodable_bytes_are_reported_as_corruption() {
        let err = decode::<u64>("head", META_HEAD, &[1, 2, 3], 8).expect_err("3 bytes are no u64");
        match err {
            StorageError::Corrupt { what, key, .. } => {
                assert_eq!(what, "head");
                assert_eq!(key, hex::encode(META_HEAD));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
