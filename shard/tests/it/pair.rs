//! Two shard chains exchanging proven receipts, with the headers a beacon
//! would have recorded: the harness of the placement and cross-shard call
//! tests.

use crate::shards;
use atoll_primitives::{
    Action, Address, ChainId, KeyPair, ProvenReceipt, Receipt, ReceiptAction, ShardBlockHeader,
    ShardId, ShardLayout, StateKey, StateValue, Transaction,
};
use atoll_shard::execution::PreparedTx;
use atoll_shard::inbox::prove_receipts;
use atoll_shard::signatures::VerifiedTx;
use atoll_shard::state::StateTree;
use atoll_shard::{ProducedBlock, ShardChain};
use atoll_storage::SnapshotInstall;
use std::collections::HashMap;
use tempfile::TempDir;

pub const CHAIN: ChainId = ChainId(23);
pub const BALANCE: u128 = 1_000_000_000;

pub fn layout() -> ShardLayout {
    ShardLayout::uniform(2).unwrap()
}

/// `action` signed by `key` with `nonce` at fee (or price per gas) 1.
pub fn signed(key: &KeyPair, nonce: u64, action: Action) -> VerifiedTx {
    signed_at(key, nonce, 1, action)
}

/// `action` signed by `key` with `nonce` at fee (or price per gas) `fee`.
pub fn signed_at(key: &KeyPair, nonce: u64, fee: u128, action: Action) -> VerifiedTx {
    let body = Transaction {
        chain_id: CHAIN,
        sender: key.public(),
        nonce,
        fee,
        action,
    };
    VerifiedTx::verify(PreparedTx::new(body.sign(key))).unwrap()
}

/// A transfer of `amount` to `to`.
pub fn pay(key: &KeyPair, nonce: u64, to: Address, amount: u128) -> VerifiedTx {
    signed(key, nonce, Action::Transfer { to, amount })
}

/// Two shards, their recorded headers, and the receipts on their way.
pub struct Pair {
    pub dirs: [TempDir; 2],
    pub funded: [Vec<KeyPair>; 2],
    pub chains: [ShardChain; 2],
    pub headers: [HashMap<u64, ShardBlockHeader>; 2],
    pub in_flight: [Vec<ProvenReceipt>; 2],
    pub burnt: u128,
    pub clock: u64,
}

impl Pair {
    pub fn new(funded: [Vec<KeyPair>; 2]) -> Pair {
        let dirs = [TempDir::new().unwrap(), TempDir::new().unwrap()];
        let chains = [0, 1].map(|s| {
            shards::open_shard(
                dirs[s].path(),
                CHAIN,
                layout(),
                s as u16,
                &funded[s],
                BALANCE,
            )
        });
        Pair {
            dirs,
            funded,
            chains,
            headers: Default::default(),
            in_flight: Default::default(),
            burnt: 0,
            clock: 0,
        }
    }

    /// A block of `shard` with `txs` after the receipts waiting for it
    /// (those whose calls fit its gas limit; the rest wait).
    pub fn block(&mut self, shard: usize, txs: Vec<VerifiedTx>) -> ProducedBlock {
        let incoming = std::mem::take(&mut self.in_flight[shard]);
        let waiting = incoming.clone();
        let headers = &self.headers;
        let final_header =
            |source: ShardId, height: u64| headers[usize::from(source.0)].get(&height).cloned();
        self.clock += 1_000;
        let produced = self.chains[shard]
            .produce_block_with_receipts(txs, incoming, final_header, self.clock)
            .unwrap();
        let taken = produced.block.body.incoming.len();
        self.in_flight[shard] = waiting[taken..].to_vec();
        let header = &produced.block.header;
        self.burnt += header.burnt_fees;
        self.headers[shard].insert(header.height, header.clone());
        for destination in [0, 1] {
            self.in_flight[destination].extend(prove_receipts(
                header.height,
                &produced.output.receipts,
                ShardId(destination as u16),
            ));
        }
        produced
    }

    /// Closes `shard`'s chain and opens its store again, as after a crash.
    pub fn reopen(&mut self, shard: usize) {
        let elsewhere = TempDir::new().unwrap();
        let stand_in = shards::open_shard(elsewhere.path(), CHAIN, layout(), 0, &[], 0);
        drop(std::mem::replace(&mut self.chains[shard], stand_in));
        self.chains[shard] = shards::open_shard(
            self.dirs[shard].path(),
            CHAIN,
            layout(),
            shard as u16,
            &self.funded[shard],
            BALANCE,
        );
    }

    /// Replaces `shard`'s chain by a fresh one state-synced from a
    /// snapshot of it, as a validator that joins the shard's committee
    /// does (the snapshot's entries checked against its head's root).
    pub fn sync(&mut self, shard: usize) {
        let snapshot = self.chains[shard]
            .store()
            .state_snapshot()
            .unwrap()
            .unwrap();
        let dir = TempDir::new().unwrap();
        let mut fresh = shards::open_shard(dir.path(), CHAIN, layout(), shard as u16, &[], 0);
        let install = SnapshotInstall {
            head: &snapshot.head,
            entries: &snapshot.entries,
            outbox: &snapshot.outbox,
            shard_map: None,
            transactions: &[],
            last_receipts: &[],
        };
        let tree = StateTree::from_entries(snapshot.entries.iter().cloned());
        fresh.install_snapshot(&install, tree, layout()).unwrap();
        self.chains[shard] = fresh;
        self.dirs[shard] = dir;
    }

    pub fn state(&self, shard: usize, key: StateKey) -> Option<StateValue> {
        self.chains[shard].store().state(&key).unwrap()
    }

    pub fn balance(&self, shard: usize, address: &Address) -> u128 {
        self.chains[shard]
            .store()
            .account(address)
            .unwrap()
            .map_or(0, |a| a.balance)
    }

    /// Every balance on both shards, what is in flight and what was burnt.
    pub fn total(&self) -> u128 {
        let held: u128 = (0..2)
            .flat_map(|s| {
                self.chains[s]
                    .store()
                    .state_entries()
                    .map(|entry| match entry.unwrap() {
                        (StateKey::Account(_), StateValue::Account(a)) => a.balance,
                        _ => 0,
                    })
                    .collect::<Vec<_>>()
            })
            .sum();
        let flying: u128 = self
            .in_flight
            .iter()
            .flatten()
            .map(|p| p.receipt.value())
            .sum();
        held + flying + self.burnt
    }
}

pub fn actions(receipts: &[Receipt]) -> Vec<(u16, ReceiptAction)> {
    receipts
        .iter()
        .map(|r| (r.destination.0, r.action.clone()))
        .collect()
}
