//! The checks on a fetched snapshot that need no store: the chain's
//! transactions rebuilt from the final consensus blocks, and the outbox
//! cursors proven against the recorded headers.

use super::super::wire::Payload;
use anyhow::Context;
use atoll_primitives::{merkle, Hash, ProvenReceipt, ShardBlockHeader, ShardId};
use atoll_shard::execution::agreed_chain;
use atoll_shard::execution::rules::wrong_chain;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Why a fetched snapshot was not installed.
pub enum Fault {
    /// It failed a check: the peer sent a bad one.
    Peer(String),
    /// This validator's own stores failed.
    Local(anyhow::Error),
}

impl From<anyhow::Error> for Fault {
    fn from(err: anyhow::Error) -> Fault {
        Fault::Local(err)
    }
}

/// The transactions in `shard`'s chain up to `height` with their heights,
/// rebuilt from the stored final consensus blocks and checked against the
/// recorded headers, and the last recorded height that sent receipts to
/// each destination.
#[allow(clippy::type_complexity)]
pub fn history(
    shard: ShardId,
    height: u64,
    chain_id: atoll_primitives::ChainId,
    header_at: &dyn Fn(u64) -> Option<ShardBlockHeader>,
    payload_at: &dyn Fn(u64) -> anyhow::Result<Arc<Payload>>,
) -> anyhow::Result<(Vec<(Hash, u64)>, BTreeMap<ShardId, u64>)> {
    let mut known: HashSet<Hash> = HashSet::new();
    let mut transactions = Vec::new();
    let mut last_sent = BTreeMap::new();
    for h in 1..=height {
        let header =
            header_at(h).with_context(|| format!("shard {shard}'s header {h} is not recorded"))?;
        for (destination, _) in &header.receipt_roots {
            last_sent.insert(*destination, h);
        }
        if header.tx_count == 0 {
            continue;
        }
        let payload = payload_at(h)?;
        let offered = payload
            .shards
            .get(usize::from(shard.0))
            .map_or(&[][..], Vec::as_slice);
        // As the block was made: Ethereum transactions without a sender,
        // other chains' transactions, repeats and transactions already in
        // the chain are dropped, then bad signatures (checked only when
        // the root says some were).
        let mut seen = HashSet::new();
        let mut kept: Vec<(Hash, &atoll_primitives::SignedTransaction)> = offered
            .iter()
            .filter(|tx| agreed_chain(tx).is_some_and(|got| wrong_chain(got, chain_id).is_none()))
            .map(|tx| (tx.hash(), tx))
            .filter(|(hash, _)| seen.insert(*hash) && !known.contains(hash))
            .collect();
        let root =
            |kept: &[(Hash, _)]| merkle::root(&kept.iter().map(|(h, _)| *h).collect::<Vec<_>>());
        if root(&kept) != header.tx_root {
            kept.retain(|(_, tx)| tx.verify().is_ok());
            anyhow::ensure!(
                root(&kept) == header.tx_root,
                "the stored consensus block of beacon height {h} does not give shard {shard}'s \
                 certified transactions"
            );
        }
        for (hash, _) in kept {
            known.insert(hash);
            transactions.push((hash, h));
        }
    }
    Ok((transactions, last_sent))
}

/// Each outbox cursor is one past a receipt proven against the last
/// recorded header that sent to its destination, and every destination
/// sent to has one.
pub fn check_outbox(
    shard: ShardId,
    outbox: &[(ShardId, u64)],
    last_receipts: &[ProvenReceipt],
    last_sent: &BTreeMap<ShardId, u64>,
    header_at: &dyn Fn(u64) -> Option<ShardBlockHeader>,
) -> Result<(), Fault> {
    let bad = |why: String| Err(Fault::Peer(why));
    let destinations: Vec<ShardId> = outbox.iter().map(|(d, _)| *d).collect();
    if !destinations.windows(2).all(|w| w[0] < w[1]) {
        return bad("its outbox cursors are not in destination order".into());
    }
    if destinations != last_sent.keys().copied().collect::<Vec<_>>() {
        return bad(format!(
            "its outbox names destinations {destinations:?}, the recorded headers sent to {:?}",
            last_sent.keys().collect::<Vec<_>>()
        ));
    }
    if last_receipts.len() != outbox.len() {
        return bad("it proves only some of its outbox cursors".into());
    }
    for ((destination, cursor), proven) in outbox.iter().zip(last_receipts) {
        let sent_at = last_sent[destination];
        let receipt = &proven.receipt;
        let header = header_at(sent_at)
            .with_context(|| format!("shard {shard}'s header {sent_at} is not recorded"))?;
        let proven_ok = receipt.source == shard
            && receipt.destination == *destination
            && cursor.checked_sub(1) == Some(receipt.sequence)
            && proven.source_height == sent_at
            && proven.proof.is_last()
            && proven.is_proven_by(&header);
        if !proven_ok {
            return bad(format!(
                "its outbox cursor {cursor} to shard {destination} is not one past the last \
                 receipt of block {sent_at}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::network::receipts::runs::tests::{header, receipt, DEST, SOURCE};
    use atoll_primitives::{
        Action, ChainId, KeyPair, NativeTransaction, Receipt, SignedTransaction, Transaction,
    };
    use atoll_shard::inbox::prove_receipts;

    /// Source blocks 1 (receipts 0 and 1), 2 (none) and 3 (receipt 2),
    /// with the last receipt proven.
    fn sent() -> (Vec<ShardBlockHeader>, ProvenReceipt) {
        let blocks: [Vec<Receipt>; 3] = [
            vec![receipt(0, 10), receipt(1, 11)],
            vec![],
            vec![receipt(2, 12)],
        ];
        let mut headers = vec![header(0, &[])];
        for (i, receipts) in blocks.iter().enumerate() {
            headers.push(header(i as u64 + 1, receipts));
        }
        let last = prove_receipts(3, &blocks[2], DEST).remove(0);
        (headers, last)
    }

    fn outbox_ok(
        headers: &[ShardBlockHeader],
        outbox: &[(ShardId, u64)],
        last: &[ProvenReceipt],
    ) -> bool {
        let header_at = |h: u64| headers.get(h as usize).cloned();
        let mut last_sent = BTreeMap::new();
        for header in headers {
            for (destination, _) in &header.receipt_roots {
                last_sent.insert(*destination, header.height);
            }
        }
        match check_outbox(SOURCE, outbox, last, &last_sent, &header_at) {
            Ok(()) => true,
            Err(Fault::Peer(_)) => false,
            Err(Fault::Local(err)) => panic!("a local error: {err:#}"),
        }
    }

    #[test]
    fn outbox_cursors_must_follow_the_last_receipt_sent() {
        let (headers, last) = sent();
        assert!(outbox_ok(
            &headers,
            &[(DEST, 3)],
            std::slice::from_ref(&last)
        ));
        // One too many or too few.
        assert!(!outbox_ok(
            &headers,
            &[(DEST, 4)],
            std::slice::from_ref(&last)
        ));
        assert!(!outbox_ok(
            &headers,
            &[(DEST, 2)],
            std::slice::from_ref(&last)
        ));
        // A destination sent to left out, or one never sent to added.
        assert!(!outbox_ok(&headers, &[], &[]));
        assert!(!outbox_ok(
            &headers,
            &[(DEST, 3), (ShardId(2), 1)],
            &[last.clone(), last.clone()]
        ));
        // A cursor without its proof.
        assert!(!outbox_ok(&headers, &[(DEST, 3)], &[]));
        // A receipt of an earlier block that sent to the destination.
        let earlier = prove_receipts(1, &[receipt(0, 10), receipt(1, 11)], DEST);
        assert!(!outbox_ok(&headers, &[(DEST, 2)], &[earlier[1].clone()]));
        // A forged receipt fails its proof.
        let mut forged = last.clone();
        forged.receipt = receipt(2, 13);
        assert!(!outbox_ok(&headers, &[(DEST, 3)], &[forged]));
    }

    /// Regression: a proof whose index is `u64::MAX` panicked the replica
    /// (overflow checks are on in release builds) before it was verified.
    #[test]
    fn a_proof_index_at_the_top_of_the_range_is_refused_not_a_panic() {
        let (headers, last) = sent();
        for (index, leaf_count) in [
            (u64::MAX, u64::MAX),
            (u64::MAX, 0),
            (u64::MAX - 1, u64::MAX),
        ] {
            let mut forged = last.clone();
            forged.proof.index = index;
            forged.proof.leaf_count = leaf_count;
            assert!(!outbox_ok(&headers, &[(DEST, 3)], &[forged]));
        }
    }

    #[test]
    fn a_receipt_that_does_not_end_its_block_proves_no_cursor() {
        let blocks = [vec![receipt(0, 10), receipt(1, 11)]];
        let headers = vec![header(0, &[]), header(1, &blocks[0])];
        let proven = prove_receipts(1, &blocks[0], DEST);
        assert!(outbox_ok(&headers, &[(DEST, 2)], &[proven[1].clone()]));
        assert!(!outbox_ok(&headers, &[(DEST, 1)], &[proven[0].clone()]));
    }

    fn transfer(key: &KeyPair, nonce: u64, chain: u64) -> NativeTransaction {
        Transaction {
            chain_id: ChainId(chain),
            sender: key.public(),
            nonce,
            fee: 1,
            action: Action::Transfer {
                to: atoll_primitives::Address([9; 20]),
                amount: 5,
            },
        }
        .sign(key)
    }

    /// A header of [`SOURCE`] at `height` whose block kept `kept`.
    fn block_of(height: u64, kept: &[&SignedTransaction]) -> ShardBlockHeader {
        let hashes: Vec<Hash> = kept.iter().map(|tx| tx.hash()).collect();
        ShardBlockHeader {
            tx_root: merkle::root(&hashes),
            tx_count: kept.len() as u32,
            ..header(height, &[])
        }
    }

    #[test]
    fn the_chain_s_transactions_are_rebuilt_as_the_blocks_kept_them() {
        let key = KeyPair::from_seed([3; 32]);
        let (a, b, c) = (
            transfer(&key, 0, 5),
            transfer(&key, 1, 5),
            transfer(&key, 2, 5),
        );
        let other_chain = transfer(&key, 3, 6);
        let mut bad = transfer(&key, 4, 5);
        bad.signature = a.signature;
        let [a, b, c, other_chain, bad] = [a, b, c, other_chain, bad].map(SignedTransaction::from);
        // Block 1 kept a and b (a repeated, another chain's transaction
        // and a bad signature offered too); block 2 was offered a again
        // (already in the chain) and c, and kept c.
        let payloads = [
            vec![a.clone(), a.clone(), other_chain, b.clone(), bad],
            vec![a.clone(), c.clone()],
        ];
        let headers = [header(0, &[]), block_of(1, &[&a, &b]), block_of(2, &[&c])];
        let header_at = |h: u64| headers.get(h as usize).cloned();
        let payload_at = |h: u64| -> anyhow::Result<Arc<Payload>> {
            let mut shards = vec![Vec::new(); 2];
            shards[usize::from(SOURCE.0)] = payloads[h as usize - 1].clone();
            Ok(Arc::new(Payload {
                shards,
                ..Payload::default()
            }))
        };
        let (transactions, last_sent) =
            history(SOURCE, 2, ChainId(5), &header_at, &payload_at).expect("rebuilt");
        assert_eq!(
            transactions,
            vec![(a.hash(), 1), (b.hash(), 1), (c.hash(), 2)]
        );
        assert!(last_sent.is_empty());
        // A header whose transactions the stored payload does not give.
        let wrong = [header(0, &[]), block_of(1, &[&b, &a])];
        let header_at = |h: u64| wrong.get(h as usize).cloned();
        assert!(history(SOURCE, 1, ChainId(5), &header_at, &payload_at).is_err());
    }
}
