//! Two shards of one chain: transfers from shard 0 to shard 1 debit on the
//! source, travel as proven receipts, and are credited exactly once on the
//! destination, across reopening; the total supply is conserved throughout.

use crate::shards;
use atoll_primitives::{
    Action, ChainId, KeyPair, ShardBlockHeader, ShardId, ShardLayout, Transaction,
};
use atoll_shard::execution::PreparedTx;
use atoll_shard::inbox::{prove_receipts, ReceiptError};
use atoll_shard::signatures::VerifiedTx;
use atoll_shard::{ShardChain, ShardError};
use std::collections::HashMap;
use std::path::Path;

const CHAIN: ChainId = ChainId(4);
const BALANCE: u128 = 1_000;

fn layout() -> ShardLayout {
    ShardLayout::uniform(2).unwrap()
}

fn keys_on(shard: u16, count: usize) -> Vec<KeyPair> {
    shards::keys_on(21, layout(), shard, count)
}

fn open(dir: &Path, shard: u16, funded: &[KeyPair]) -> ShardChain {
    shards::open_shard(dir, CHAIN, layout(), shard, funded, BALANCE)
}

fn transfer(key: &KeyPair, nonce: u64, to: &KeyPair, amount: u128) -> VerifiedTx {
    let body = Transaction {
        chain_id: CHAIN,
        sender: key.public(),
        nonce,
        fee: 2,
        action: Action::Transfer {
            to: to.address(),
            amount,
        },
    };
    VerifiedTx::verify(PreparedTx::new(body.sign(key))).unwrap()
}

fn balance(chain: &ShardChain, key: &KeyPair) -> u128 {
    chain
        .store()
        .account(&key.address())
        .unwrap()
        .map_or(0, |a| a.balance)
}

#[test]
fn receipts_settle_exactly_once_and_conserve_the_supply() {
    let (dir0, dir1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let senders = keys_on(0, 3);
    let receivers = keys_on(1, 2);
    let mut source = open(dir0.path(), 0, &senders);
    let mut destination = open(dir1.path(), 1, &receivers);
    let supply = BALANCE * 5;

    // Two source blocks of cross-shard transfers (and one local one).
    let mut headers: HashMap<u64, ShardBlockHeader> = HashMap::new();
    let mut proven = Vec::new();
    let mut burnt = 0;
    for nonce in 0..2u64 {
        let txs = vec![
            transfer(&senders[0], nonce, &receivers[0], 100),
            transfer(&senders[1], nonce, &receivers[1], 50),
            transfer(&senders[2], nonce, &senders[0], 7),
        ];
        let produced = source.produce_verified_block(txs, 1 + nonce).unwrap();
        burnt += produced.block.header.burnt_fees;
        assert_eq!(produced.output.receipts.len(), 2);
        proven.extend(prove_receipts(
            produced.block.header.height,
            &produced.output.receipts,
            ShardId(1),
        ));
        headers.insert(produced.block.header.height, produced.block.header);
    }
    let final_header = |shard: ShardId, height: u64| {
        (shard == ShardId(0))
            .then(|| headers.get(&height).cloned())
            .flatten()
    };
    let in_flight: u128 = proven.iter().map(|p| p.receipt.value()).sum();
    let on_chain = |a: &ShardChain, b: &ShardChain| {
        senders.iter().map(|k| balance(a, k)).sum::<u128>()
            + receivers.iter().map(|k| balance(b, k)).sum::<u128>()
    };
    assert_eq!(on_chain(&source, &destination) + in_flight + burnt, supply);

    // A congested shard says so in its headers until told otherwise.
    destination.set_congested(true);
    let flagged = destination
        .produce_block_with_receipts(Vec::new(), Vec::new(), final_header, 9)
        .unwrap();
    assert!(flagged.block.header.congested);
    destination.set_congested(false);

    // The first half is credited; the cursor moves in the same commit.
    let block = destination
        .produce_block_with_receipts(Vec::new(), proven[..2].to_vec(), final_header, 10)
        .unwrap();
    assert_eq!(block.block.header.inbox_cursors, vec![(ShardId(0), 2)]);
    assert_eq!(balance(&destination, &receivers[0]), BALANCE + 100);
    let applied: u128 = proven[..2].iter().map(|p| p.receipt.value()).sum();
    assert_eq!(
        on_chain(&source, &destination) + in_flight - applied + burnt,
        supply
    );

    // Replaying an applied receipt is refused and changes nothing.
    let head = destination.head().clone();
    let err = destination
        .produce_block_with_receipts(Vec::new(), proven[1..3].to_vec(), final_header, 11)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ShardError::Receipt {
                index: 0,
                error: ReceiptError::Replayed {
                    expected: 2,
                    got: 1,
                    ..
                }
            }
        ),
        "{err}"
    );
    assert_eq!(destination.head(), &head);
    assert_eq!(balance(&destination, &receivers[0]), BALANCE + 100);

    // Reopened (as after a crash), the inbox continues where the head says.
    drop(destination);
    let mut destination = open(dir1.path(), 1, &receivers);
    assert_eq!(destination.inbox_cursor(ShardId(0)), 2);
    let err = destination
        .produce_block_with_receipts(Vec::new(), proven[..1].to_vec(), final_header, 12)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ShardError::Receipt {
                error: ReceiptError::Replayed { .. },
                ..
            }
        ),
        "{err}"
    );

    // The rest, together with a local transfer that spends a credit.
    let spend = transfer(&receivers[0], 0, &receivers[1], 150);
    let block = destination
        .produce_block_with_receipts(vec![spend], proven[2..].to_vec(), final_header, 13)
        .unwrap();
    assert_eq!(block.block.header.inbox_cursors, vec![(ShardId(0), 4)]);
    assert!(
        block.output.outcomes[0] == atoll_primitives::TxOutcome::Success,
        "{:?}",
        block.output.outcomes
    );
    burnt += block.block.header.burnt_fees;
    assert_eq!(
        balance(&destination, &receivers[0]),
        BALANCE + 200 - 150 - 2
    );
    assert_eq!(balance(&destination, &receivers[1]), BALANCE + 100 + 150);
    assert_eq!(
        on_chain(&source, &destination) + burnt,
        supply,
        "nothing in flight, nothing lost"
    );
}
