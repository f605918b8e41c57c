//! Receipts offered to a destination shard: only the next one of each
//! stream, addressed to it, proven against a finalized source block, gets in.

use atoll_primitives::{
    Action, ChainId, KeyPair, Receipt, ReceiptAction, ShardBlockHeader, ShardId, ShardLayout,
    Transaction,
};
use atoll_shard::execution::PreparedTx;
use atoll_shard::inbox::{prove_receipts, Inbox, ProvenReceipt, ReceiptError};
use std::collections::BTreeMap;

const CHAIN: ChainId = ChainId(3);

fn keys_on(layout: ShardLayout, shard: u16, count: usize) -> Vec<KeyPair> {
    crate::shards::keys_on(11, layout, shard, count)
}

/// Shard 0 of 3 sends two blocks of transfers to shards 1 and 2; returns
/// its headers and receipts by height.
fn source_blocks(dir: &std::path::Path) -> Vec<(ShardBlockHeader, Vec<Receipt>)> {
    let layout = ShardLayout::uniform(3).unwrap();
    let senders = keys_on(layout, 0, 3);
    let (to_one, to_two) = (
        keys_on(layout, 1, 1)[0].address(),
        keys_on(layout, 2, 1)[0].address(),
    );
    let mut chain = crate::shards::open_shard(dir, CHAIN, layout, 0, &senders, 1_000);
    let mut blocks = Vec::new();
    for nonce in 0..2u64 {
        let txs = senders
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let to = if i % 2 == 0 { to_one } else { to_two };
                let body = Transaction {
                    chain_id: CHAIN,
                    sender: key.public(),
                    nonce,
                    fee: 1,
                    action: Action::Transfer {
                        to,
                        amount: 10 + i as u128,
                    },
                };
                PreparedTx::new(body.sign(key))
            })
            .collect();
        let produced = chain.produce_block(txs, 1 + nonce).unwrap();
        blocks.push((produced.block.header, produced.output.receipts));
    }
    blocks
}

#[test]
fn only_the_next_proven_receipt_for_this_shard_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = source_blocks(dir.path());
    let final_header = |source: ShardId, height: u64| {
        blocks
            .iter()
            .map(|(h, _)| h)
            .find(|h| h.shard == source && h.height == height)
            .cloned()
    };
    let to_one: Vec<ProvenReceipt> = blocks
        .iter()
        .flat_map(|(h, receipts)| prove_receipts(h.height, receipts, ShardId(1)))
        .collect();
    assert_eq!(to_one.len(), 4, "two senders to shard 1, two blocks");
    assert_eq!(
        to_one
            .iter()
            .map(|p| p.receipt.sequence)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );

    let mut inbox = Inbox::new(ShardId(1), BTreeMap::new());
    // The whole stream, in order: accepted.
    let cursors = inbox.check(&to_one, final_header).unwrap();
    assert_eq!(cursors[&ShardId(0)], 4);
    // Checking changes nothing until the caller advances.
    assert_eq!(inbox.cursor(ShardId(0)), 0);

    // Skipped: starting at sequence 1.
    assert!(matches!(
        inbox.check(&to_one[1..], final_header),
        Err((
            0,
            ReceiptError::Skipped {
                expected: 0,
                got: 1,
                ..
            }
        ))
    ));
    // Forged: a larger amount than was sent.
    let mut forged = to_one[0].clone();
    forged.receipt.action = ReceiptAction::Transfer {
        to: forged.receipt.action.account(),
        amount: 1_000_000,
    };
    assert!(matches!(
        inbox.check(&[forged], final_header),
        Err((0, ReceiptError::BadProof { .. }))
    ));
    // A proof against another block than the one that sent it.
    let mut elsewhere = to_one[0].clone();
    elsewhere.source_height = 2;
    assert!(matches!(
        inbox.check(&[elsewhere], final_header),
        Err((0, ReceiptError::BadProof { .. }))
    ));
    // A source block the beacon has not finalized.
    assert!(matches!(
        inbox.check(&to_one[..1], |_, _| None),
        Err((0, ReceiptError::SourceNotFinal { height: 1, .. }))
    ));
    // For another shard.
    let to_two = prove_receipts(1, &blocks[0].1, ShardId(2));
    assert!(matches!(
        inbox.check(&to_two, final_header),
        Err((0, ReceiptError::WrongDestination { .. }))
    ));
    // All or nothing: a bad one at the end refuses the list.
    let mut list = to_one[..2].to_vec();
    list.push(to_one[3].clone());
    assert!(matches!(
        inbox.check(&list, final_header),
        Err((
            2,
            ReceiptError::Skipped {
                expected: 2,
                got: 3,
                ..
            }
        ))
    ));

    // Once applied, a receipt replayed is refused; the rest still gets in.
    inbox.advance(inbox.check(&to_one[..2], final_header).unwrap());
    assert!(matches!(
        inbox.check(&to_one[1..2], final_header),
        Err((
            0,
            ReceiptError::Replayed {
                expected: 2,
                got: 1,
                ..
            }
        ))
    ));
    assert_eq!(
        inbox.check(&to_one[2..], final_header).unwrap()[&ShardId(0)],
        4
    );

    // A shard never receives from itself.
    let mut own = Inbox::new(ShardId(0), BTreeMap::new());
    let mut from_self = to_one[0].clone();
    from_self.receipt.destination = ShardId(0);
    assert!(matches!(
        own.check(&[from_self], final_header),
        Err((0, ReceiptError::FromSelf { .. }))
    ));
    own.advance(BTreeMap::new());
}
