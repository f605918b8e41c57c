//! A contract lives on its creator's shard whatever range its Ethereum
//! address falls in: two shard chains exchanging proven receipts show the
//! placement reaching the range's shard, value sent to the address before
//! the contract existed following it, later transfers routed to it, a
//! factory's children placed with it, all across a reopen, with the supply
//! conserved.

use crate::shards;
use atoll_primitives::{
    Account, Action, Address, ChainId, ContractStatus, KeyPair, ProvenReceipt, Receipt,
    ReceiptAction, ShardBlockHeader, ShardId, ShardLayout, StateKey, StateValue, Transaction,
    TxOutcome,
};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use atoll_shard::execution::PreparedTx;
use atoll_shard::inbox::prove_receipts;
use atoll_shard::signatures::VerifiedTx;
use atoll_shard::{ProducedBlock, ShardChain};
use std::collections::HashMap;
use tempfile::TempDir;

const CHAIN: ChainId = ChainId(23);
const BALANCE: u128 = 1_000_000_000;

fn layout() -> ShardLayout {
    ShardLayout::uniform(2).unwrap()
}

fn signed(key: &KeyPair, nonce: u64, action: Action) -> VerifiedTx {
    let body = Transaction {
        chain_id: CHAIN,
        sender: key.public(),
        nonce,
        fee: 1,
        action,
    };
    VerifiedTx::verify(PreparedTx::new(body.sign(key))).unwrap()
}

/// A transfer of `amount` to `to`.
fn pay(key: &KeyPair, nonce: u64, to: Address, amount: u128) -> VerifiedTx {
    signed(key, nonce, Action::Transfer { to, amount })
}

/// Two shards, their recorded headers, and the receipts on their way.
struct Pair {
    dirs: [TempDir; 2],
    funded: [Vec<KeyPair>; 2],
    chains: [ShardChain; 2],
    headers: [HashMap<u64, ShardBlockHeader>; 2],
    in_flight: [Vec<ProvenReceipt>; 2],
    burnt: u128,
    clock: u64,
}

impl Pair {
    fn new(funded: [Vec<KeyPair>; 2]) -> Pair {
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

    /// A block of `shard` with `txs` after every receipt waiting for it.
    fn block(&mut self, shard: usize, txs: Vec<VerifiedTx>) -> ProducedBlock {
        let incoming = std::mem::take(&mut self.in_flight[shard]);
        let headers = &self.headers;
        let final_header =
            |source: ShardId, height: u64| headers[usize::from(source.0)].get(&height).cloned();
        self.clock += 1_000;
        let produced = self.chains[shard]
            .produce_block_with_receipts(txs, incoming, final_header, self.clock)
            .unwrap();
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
    fn reopen(&mut self, shard: usize) {
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

    fn state(&self, shard: usize, key: StateKey) -> Option<StateValue> {
        self.chains[shard].store().state(&key).unwrap()
    }

    fn balance(&self, shard: usize, address: &Address) -> u128 {
        self.chains[shard]
            .store()
            .account(address)
            .unwrap()
            .map_or(0, |a| a.balance)
    }

    /// Every balance on both shards, what is in flight and what was burnt.
    fn total(&self) -> u128 {
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

fn actions(receipts: &[Receipt]) -> Vec<(u16, ReceiptAction)> {
    receipts
        .iter()
        .map(|r| (r.destination.0, r.action.clone()))
        .collect()
}

#[test]
fn a_contract_lives_on_its_creators_shard_and_value_sent_to_its_address_follows_it() {
    let creators = shards::keys_on(31, layout(), 0, 1);
    let payers = shards::keys_on(31, layout(), 1, 1);
    let (creator, payer) = (&creators[0], &payers[0]);
    let mut pair = Pair::new([creators.clone(), payers.clone()]);
    let supply = BALANCE * 2;

    // The creator's first nonce whose CREATE address is in shard 1's range.
    let nonce = (0..64)
        .find(|n| layout().shard_of(&create_address(&creator.address(), *n)) == ShardId(1))
        .unwrap();
    let probe = create_address(&creator.address(), nonce);
    let bumps = (0..nonce)
        .map(|n| pay(creator, n, creator.address(), 1))
        .collect();
    pair.block(0, bumps);

    // Value sent to the address before the contract exists lands on shard
    // 1, the range's shard, as a plain account.
    let early = pay(payer, 0, probe, 500);
    pair.block(1, vec![early]);
    assert_eq!(pair.balance(1, &probe), 500);

    // Created on shard 0: placed there, and shard 1 is told.
    let create = signed(
        creator,
        nonce,
        Action::Create {
            value: 0,
            init_code: Contract::Probe.init_code(&[]),
            gas_limit: 2_000_000,
        },
    );
    let produced = pair.block(0, vec![create]);
    let TxOutcome::Contract(outcome) = &produced.output.outcomes[0] else {
        panic!("{:?}", produced.output.outcomes);
    };
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(outcome.created, Some(probe));
    assert_eq!(
        pair.state(0, StateKey::Placement(probe)),
        Some(StateValue::Placement(ShardId(0)))
    );
    let placed = ReceiptAction::Placed {
        account: probe,
        shard: ShardId(0),
    };
    assert_eq!(actions(&produced.output.receipts), vec![(1, placed)]);
    assert_eq!(pair.total(), supply);

    // Shard 1 records the placement and sends on the early value; a
    // transfer in the same block goes straight to shard 0.
    let late = pay(payer, 1, probe, 300);
    let produced = pair.block(1, vec![late]);
    assert_eq!(produced.output.outcomes, vec![TxOutcome::Success]);
    assert_eq!(
        pair.state(1, StateKey::Placement(probe)),
        Some(StateValue::Placement(ShardId(0)))
    );
    assert_eq!(pair.balance(1, &probe), 0);
    let moved = ReceiptAction::Move {
        account: probe,
        balance: 500,
        nonce: 0,
    };
    let sent = ReceiptAction::Transfer {
        to: probe,
        amount: 300,
    };
    assert_eq!(
        actions(&produced.output.receipts),
        vec![(0, moved), (0, sent)]
    );
    assert_eq!(pair.total(), supply);

    // Shard 0 credits both to the contract, which keeps its nonce; the
    // contract runs here, and the children it creates stay here too.
    let mut txs = vec![signed(
        creator,
        nonce + 1,
        Action::Call {
            to: probe,
            value: 0,
            input: call_data("bump()", &[]),
            gas_limit: 100_000,
        },
    )];
    let children: Vec<Address> = (1..=6).map(|n| create_address(&probe, n)).collect();
    for (i, _) in children.iter().enumerate() {
        txs.push(signed(
            creator,
            nonce + 2 + i as u64,
            Action::Call {
                to: probe,
                value: 0,
                input: call_data("create(uint256)", &[Word::uint(i as u128 + 1)]),
                gas_limit: 500_000,
            },
        ));
    }
    let produced = pair.block(0, txs);
    for outcome in &produced.output.outcomes {
        let TxOutcome::Contract(outcome) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(outcome.status, ContractStatus::Success);
    }
    let contract = pair.chains[0].store().account(&probe).unwrap().unwrap();
    assert_eq!(
        contract,
        Account {
            balance: 800,
            nonce: 7
        }
    );
    let remote: Vec<_> = children
        .iter()
        .filter(|c| layout().shard_of(c) == ShardId(1))
        .collect();
    assert!(!remote.is_empty(), "no child fell in shard 1's range");
    for child in &children {
        assert!(pair.state(0, StateKey::CodeHash(*child)).is_some());
    }
    let expected: Vec<_> = remote
        .iter()
        .map(|c| {
            let placed = ReceiptAction::Placed {
                account: **c,
                shard: ShardId(0),
            };
            (1, placed)
        })
        .collect();
    assert_eq!(actions(&produced.output.receipts), expected);
    pair.block(1, Vec::new());
    for child in &remote {
        assert_eq!(
            pair.state(1, StateKey::Placement(**child)),
            Some(StateValue::Placement(ShardId(0)))
        );
    }

    // Reopened, shard 1 still routes the contract's address to shard 0.
    pair.reopen(1);
    let again = pay(payer, 2, probe, 5);
    let produced = pair.block(1, vec![again]);
    let sent = ReceiptAction::Transfer {
        to: probe,
        amount: 5,
    };
    assert_eq!(actions(&produced.output.receipts), vec![(0, sent)]);
    pair.block(0, Vec::new());
    assert_eq!(pair.balance(0, &probe), 805);
    assert!(pair.in_flight.iter().all(Vec::is_empty));
    assert_eq!(pair.total(), supply, "nothing in flight, nothing lost");
}
