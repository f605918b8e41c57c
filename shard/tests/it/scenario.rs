//! Random blocks with every kind of transaction the executors must agree on:
//! bad nonces, overdrafts, unpaid fees, self-transfers, transfers to new
//! accounts and to other shards, wrong chain ids, senders on other shards and
//! balance overflows.

use atoll_primitives::{
    Account, Action, Address, ChainId, KeyPair, ShardId, ShardLayout, StateKey, StateValue,
    Transaction,
};
use atoll_shard::execution::{BlockContext, PreparedTx};
use atoll_shard::workload::dev_keys;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};

pub const CHAIN: ChainId = ChainId(77);
pub const SHARD: ShardId = ShardId(0);

pub struct Scenario {
    pub ctx: BlockContext,
    pub genesis: HashMap<StateKey, StateValue>,
    pub txs: Vec<PreparedTx>,
}

impl Scenario {
    /// Sum of balances plus receipts in flight plus burnt fees, modulo 2^128
    /// (whales make the true sum overflow; equality mod 2^128 still checks
    /// conservation).
    pub fn genesis_supply(&self) -> u128 {
        supply(self.genesis.values())
    }
}

/// The sum of the balances of the accounts among `values`, mod 2^128.
pub fn supply<'a>(values: impl IntoIterator<Item = &'a StateValue>) -> u128 {
    values
        .into_iter()
        .filter_map(StateValue::account)
        .fold(0u128, |s, a| s.wrapping_add(a.balance))
}

fn address_on(layout: &ShardLayout, rng: &mut StdRng, home: bool) -> Address {
    loop {
        let address = Address(rng.gen());
        if (layout.shard_of(&address) == SHARD) == home {
            return address;
        }
    }
}

/// A block of `tx_count` transactions over `account_count` accounts.
pub fn generate(seed: u64, account_count: usize, tx_count: usize) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed);
    let shard_count = rng.gen_range(1..=4u16);
    let layout = ShardLayout::uniform(shard_count).unwrap();
    // Accounts of this shard, plus one on another shard when there is one.
    let mut keys: Vec<KeyPair> = dev_keys(seed, account_count * shard_count as usize * 3 + 8)
        .into_iter()
        .filter(|k| layout.shard_of(&k.address()) == SHARD)
        .take(account_count)
        .collect();
    assert_eq!(
        keys.len(),
        account_count,
        "not enough keys on the home shard"
    );
    if shard_count > 1 {
        let foreign = dev_keys(seed ^ 0xf0f0, 64)
            .into_iter()
            .find(|k| layout.shard_of(&k.address()) != SHARD);
        keys.extend(foreign);
    }
    let mut genesis = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let balance = match (i, rng.gen_range(0..10)) {
            // Two whales whose transfers to each other overflow.
            (0 | 1, _) if account_count >= 4 => u128::MAX / 2 + 10,
            (_, 0) => 0,
            (_, 1) => rng.gen_range(0..5),
            _ => rng.gen_range(0..10_000),
        };
        let account = Account {
            balance,
            nonce: rng.gen_range(0..3),
        };
        genesis.insert(
            StateKey::Account(key.address()),
            StateValue::Account(account),
        );
    }
    let mut nonces: Vec<u64> = keys
        .iter()
        .map(|k| match genesis[&StateKey::Account(k.address())] {
            StateValue::Account(account) => account.nonce,
            _ => unreachable!("the generator writes accounts only"),
        })
        .collect();
    let mut txs = Vec::with_capacity(tx_count);
    for _ in 0..tx_count {
        // Skew senders towards the first accounts to create contention.
        let mut from = if rng.gen_bool(0.3) {
            rng.gen_range(0..keys.len().min(3))
        } else {
            rng.gen_range(0..keys.len())
        };
        let whales = account_count >= 4 && rng.gen_bool(0.03);
        if whales {
            from = rng.gen_range(0..2);
        }
        let to = match rng.gen_range(0..20) {
            // One whale pays the other half the u128 range: the credit overflows.
            _ if whales => keys[1 - from].address(),
            0..=11 => keys[rng.gen_range(0..keys.len())].address(),
            12..=13 => keys[from].address(),
            14..=16 => address_on(&layout, &mut rng, true),
            _ if shard_count > 1 => address_on(&layout, &mut rng, false),
            _ => Address(rng.gen()),
        };
        let amount = match rng.gen_range(0..10) {
            _ if whales => u128::MAX / 2,
            0..=6 => rng.gen_range(0..200),
            7..=8 => rng.gen_range(0..20_000),
            _ => u128::MAX / 2,
        };
        let nonce = if rng.gen_bool(0.85) {
            nonces[from]
        } else {
            nonces[from]
                .wrapping_add(rng.gen_range(1..3))
                .wrapping_sub(if rng.gen() { 2 } else { 0 })
        };
        if nonce == nonces[from] {
            // A transaction with the right nonce usually advances it (not
            // when it cannot pay its fee, which the executor decides).
            nonces[from] += 1;
        }
        let chain_id = if rng.gen_bool(0.03) {
            ChainId(CHAIN.0 + 1)
        } else {
            CHAIN
        };
        let tx = Transaction {
            chain_id,
            sender: keys[from].public(),
            nonce,
            fee: rng.gen_range(0..6),
            action: Action::Transfer { to, amount },
        };
        txs.push(PreparedTx::new(tx.sign(&keys[from])));
    }
    let mut outbox = BTreeMap::new();
    for shard in 1..shard_count {
        outbox.insert(ShardId(shard), rng.gen_range(0..100));
    }
    let ctx = BlockContext {
        chain_id: CHAIN,
        shard: SHARD,
        height: 1,
        timestamp_ms: 0,
        map: std::sync::Arc::new(atoll_primitives::ShardMap::new(layout)),
        outbox,
        gas: atoll_primitives::GasRules::default(),
        parent_hash: atoll_primitives::Hash([0; 32]),
        codes: Default::default(),
    };
    Scenario { ctx, genesis, txs }
}
