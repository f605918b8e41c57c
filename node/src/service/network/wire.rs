//! Everything validators send each other besides consensus messages, in
//! one place: the requests (and their answers) of the receipt, push and
//! snapshot protocols, the header votes gossiped by shard committees, and
//! the payload a consensus block carries. Each is borsh-encoded; decoders
//! are bounded by the network's largest message.

use atoll_consensus::simplex::{Message, ValidatorIndex};
use atoll_primitives::{
    codec, Address, ProvenReceipt, ShardBlockHeader, ShardId, Signature, SignedTransaction,
    StateKey, StateValue,
};
use borsh::{BorshDeserialize, BorshSerialize};

/// Most transactions in one gossip message.
pub const MAX_GOSSIP_TXS: usize = 2048;
/// What one validator asks another.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// A consensus message (`Sync` or `Fetch`), answered with messages.
    Consensus(Message),
    /// Receipts of a source shard, answered with a `ReceiptsResponse`.
    Receipts(ReceiptsRequest),
    /// Receipts of a block just executed, for a shard the receiver
    /// tracks; answered with nothing.
    Push(PushedReceipts),
    /// A part of a shard's state snapshot, answered with a `SnapshotPart`.
    Snapshot(SnapshotRequest),
}

/// "Here are receipts of a source block for a shard you track."
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PushedReceipts {
    /// The receipts, with their proofs (one source, one destination).
    pub receipts: Vec<ProvenReceipt>,
}

/// "The receipts `source` sent `destination` from sequence `from` on, of
/// source blocks at or below `up_to`."
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReceiptsRequest {
    /// The source shard.
    pub source: ShardId,
    /// The destination shard.
    pub destination: ShardId,
    /// The first sequence number wanted.
    pub from: u64,
    /// The newest source height wanted.
    pub up_to: u64,
    /// About how many (whole blocks are sent).
    pub max: u32,
}

/// The answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReceiptsResponse {
    /// The newest source height the answering node holds (below `up_to`,
    /// an empty answer means "ask someone else", not "there are none").
    pub held_to: u64,
    /// The receipts, in sequence order, with their proofs.
    pub receipts: Vec<ProvenReceipt>,
}

/// A part of a shard's state snapshot, asked of a peer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotRequest {
    /// The shard.
    pub shard: ShardId,
    /// The snapshot's height; 0 for the peer's current one.
    pub height: u64,
    /// Which part.
    pub part: u32,
}

/// One part of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotPart {
    /// The height of the snapshot's head; 0 when the peer has none to give
    /// (it does not track the shard, or no longer keeps that snapshot).
    pub height: u64,
    /// How many parts it has.
    pub parts: u32,
    /// This part's entries, in key order.
    pub entries: Vec<(StateKey, StateValue)>,
    /// Part 0 only: the next receipt sequence to each destination the
    /// shard ever sent to, by destination.
    pub outbox: Vec<(ShardId, u64)>,
    /// Part 0 only: for each of those, the last receipt sent, proven
    /// against the header of the block that sent it.
    pub last_receipts: Vec<ProvenReceipt>,
}

/// A committee member's signature on the header of a shard block it
/// executed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HeaderVote {
    /// The header.
    pub header: ShardBlockHeader,
    /// The signer's index in the validator set.
    pub validator: ValidatorIndex,
    /// The signer's libp2p peer id (signed, so peers learn whom to ask for
    /// the shard's receipts).
    pub peer: Vec<u8>,
    /// Signature over the header hash and the peer id.
    pub signature: Signature,
    /// Signature over the header hash alone: what a certificate carries.
    pub certified: Signature,
}

/// A header with the committee signatures that certify it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CertifiedHeader {
    /// The header.
    pub header: ShardBlockHeader,
    /// (signer, signature) pairs, by signer.
    pub signatures: Vec<(ValidatorIndex, Signature)>,
}

/// Most certified headers of one shard in a payload.
pub const MAX_CERTIFIED_PER_SHARD: usize = 64;

/// Most transactions a payload may give one shard (a rule of the chain,
/// not a setting: every validator must judge a payload the same way).
pub const MAX_SHARD_TRANSACTIONS: usize = 65_536;

/// Most account moves one payload asks for (a rule of the chain).
pub const MAX_PAYLOAD_MOVES: usize = 16;

/// An operator's request, carried by a payload, that `address` move to
/// shard `to` from the epoch after the one its block is final in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MoveRequest {
    /// The account.
    pub address: Address,
    /// Its new shard.
    pub to: ShardId,
}

/// What a consensus block carries.
///
/// Encoded as borsh, field by field, except that `moves` is written only
/// when it is not empty: a payload without moves has the bytes it had
/// before moves existed, so the final blocks stored by earlier versions
/// still decode to the same payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// The leader's clock when it built the payload (a shard block's
    /// timestamp never goes below its parent's).
    pub timestamp_ms: u64,
    /// Each shard's transactions, in shard order.
    pub shards: Vec<Vec<SignedTransaction>>,
    /// Most receipts each shard's block credits.
    pub max_receipts: u32,
    /// Shard headers certified by their committees, for the beacon block
    /// to record (per shard in height order).
    pub certified: Vec<CertifiedHeader>,
    /// Account moves, applied in order to the beacon's schedule when the
    /// block is final (one the schedule refuses is skipped, alike on every
    /// validator).
    pub moves: Vec<MoveRequest>,
}

impl BorshSerialize for Payload {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        self.timestamp_ms.serialize(writer)?;
        self.shards.serialize(writer)?;
        self.max_receipts.serialize(writer)?;
        self.certified.serialize(writer)?;
        if !self.moves.is_empty() {
            self.moves.serialize(writer)?;
        }
        Ok(())
    }
}

impl BorshDeserialize for Payload {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Payload> {
        let timestamp_ms = u64::deserialize_reader(reader)?;
        let shards = Vec::deserialize_reader(reader)?;
        let max_receipts = u32::deserialize_reader(reader)?;
        let certified = Vec::deserialize_reader(reader)?;
        // The moves, if any bytes are left (a payload is always decoded
        // from its own bytes, so what is left is its own).
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest)?;
        let moves = match rest.is_empty() {
            true => Vec::new(),
            false => {
                let moves = Vec::<MoveRequest>::try_from_slice(&rest)?;
                if moves.is_empty() {
                    // Not how a payload without moves is written.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "an empty list of moves is written as nothing",
                    ));
                }
                moves
            }
        };
        Ok(Payload {
            timestamp_ms,
            shards,
            max_receipts,
            certified,
            moves,
        })
    }
}

impl Payload {
    /// Decodes `bytes` for a chain of `shards` shards; anything else (bytes
    /// that do not decode, the wrong number of shards, more than
    /// [`MAX_SHARD_TRANSACTIONS`] for a shard, too many certified headers,
    /// more than [`MAX_PAYLOAD_MOVES`] moves)
    /// is an empty payload, so every validator treats a malformed payload
    /// the same way.
    pub fn decode_or_empty(bytes: &[u8], shards: usize, limit: usize) -> Payload {
        match codec::decode::<Payload>("payload", bytes, limit) {
            Ok(payload)
                if payload.shards.len() == shards
                    && payload
                        .shards
                        .iter()
                        .all(|t| t.len() <= MAX_SHARD_TRANSACTIONS)
                    && payload.certified.len() <= shards * MAX_CERTIFIED_PER_SHARD
                    && payload.moves.len() <= MAX_PAYLOAD_MOVES =>
            {
                payload
            }
            _ => Payload {
                shards: vec![Vec::new(); shards],
                ..Payload::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(moves: Vec<MoveRequest>) -> Payload {
        Payload {
            timestamp_ms: 7,
            shards: vec![Vec::new(), Vec::new()],
            max_receipts: 3,
            certified: Vec::new(),
            moves,
        }
    }

    fn request(i: u8) -> MoveRequest {
        MoveRequest {
            address: Address([i; 20]),
            to: ShardId(1),
        }
    }

    #[test]
    fn a_payload_without_moves_keeps_its_old_bytes() {
        let old = (
            7u64,
            vec![Vec::<SignedTransaction>::new(), Vec::new()],
            3u32,
            Vec::<CertifiedHeader>::new(),
        );
        assert_eq!(codec::encode(&payload(Vec::new())), codec::encode(&old));
        let decoded = Payload::decode_or_empty(&codec::encode(&old), 2, 1 << 20);
        assert_eq!(decoded, payload(Vec::new()));
    }

    #[test]
    fn moves_travel_within_their_bound_and_anything_else_is_an_empty_payload() {
        let two = payload(vec![request(1), request(2)]);
        assert_eq!(
            Payload::decode_or_empty(&codec::encode(&two), 2, 1 << 20),
            two
        );
        let empty = Payload {
            shards: vec![Vec::new(); 2],
            ..Payload::default()
        };
        let too_many = payload((0..=MAX_PAYLOAD_MOVES as u8).map(request).collect());
        let bytes = codec::encode(&too_many);
        assert_eq!(Payload::decode_or_empty(&bytes, 2, 1 << 20), empty);
        // An explicit empty list, or a byte after the moves, is not a
        // payload's encoding.
        let mut explicit = codec::encode(&payload(Vec::new()));
        explicit.extend(0u32.to_le_bytes());
        assert_eq!(Payload::decode_or_empty(&explicit, 2, 1 << 20), empty);
        let mut trailing = codec::encode(&two);
        trailing.push(0);
        assert_eq!(Payload::decode_or_empty(&trailing, 2, 1 << 20), empty);
    }
}
