//! A contract lives on its creator's shard whatever range its Ethereum
//! address falls in: two shard chains exchanging proven receipts show the
//! placement reaching the range's shard, value sent to the address before
//! the contract existed following it, later transfers routed to it, a
//! factory's children placed with it, all across a reopen and a state
//! sync, with the supply conserved.

use crate::pair::{actions, layout, pay, signed, Pair, BALANCE};
use crate::shards;
use atoll_primitives::{
    Account, Action, Address, ContractStatus, ReceiptAction, ShardId, StateKey, StateValue,
    TxOutcome,
};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};

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
    routed_to_shard_0(&mut pair, pay(payer, 2, probe, 5), probe, 5);
    pair.block(0, Vec::new());
    assert_eq!(pair.balance(0, &probe), 805);
    assert!(pair.in_flight.iter().all(Vec::is_empty));
    assert_eq!(pair.total(), supply, "nothing in flight, nothing lost");

    // Both shards synced from snapshots, as a validator joining their
    // committees: the placement is state, so shard 1 still routes the
    // address to shard 0, and shard 0 still runs the contract.
    pair.sync(0);
    pair.sync(1);
    routed_to_shard_0(&mut pair, pay(payer, 3, probe, 7), probe, 7);
    let bump = Action::Call {
        to: probe,
        value: 0,
        input: call_data("bump()", &[]),
        gas_limit: 100_000,
    };
    let produced = pair.block(0, vec![signed(creator, nonce + 8, bump)]);
    let TxOutcome::Contract(outcome) = &produced.output.outcomes[0] else {
        panic!("{:?}", produced.output.outcomes);
    };
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(pair.balance(0, &probe), 812);
    assert_eq!(pair.total(), supply);
}

/// Shard 1 runs `transfer` of `amount` to `probe` and sends it on to shard
/// 0, where the contract lives.
fn routed_to_shard_0(
    pair: &mut Pair,
    transfer: atoll_shard::signatures::VerifiedTx,
    probe: Address,
    amount: u128,
) {
    let produced = pair.block(1, vec![transfer]);
    let sent = ReceiptAction::Transfer { to: probe, amount };
    assert_eq!(actions(&produced.output.receipts), vec![(0, sent)]);
}
