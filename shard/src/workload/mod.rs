//! Generated accounts and blocks of transfers, for benchmarks, load tests and
//! the differential tests. Keys are derived from a seed, so a run can be
//! repeated exactly.

use crate::execution::PreparedTx;
use atoll_primitives::hash::Domain;
use atoll_primitives::{
    Account, Action, Address, ChainId, Hash, KeyPair, StateKey, StateValue, Transaction,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The domain of dev key seeds.
static DEV_KEY: Domain = Domain::new("atoll dev key v1");

/// Key pairs derived from `seed`: key `i` has secret `blake3(seed, i)`.
pub fn dev_keys(seed: u64, count: usize) -> Vec<KeyPair> {
    (0..count as u64).map(|i| dev_key(seed, i)).collect()
}

/// Key `index` of [`dev_keys`]`(seed, _)`.
pub fn dev_key(seed: u64, index: u64) -> KeyPair {
    KeyPair::from_seed(Hash::domain(&DEV_KEY, &[&seed.to_le_bytes(), &index.to_le_bytes()]).0)
}

/// Genesis entries giving every key `balance`.
pub fn genesis_accounts(keys: &[KeyPair], balance: u128) -> Vec<(StateKey, StateValue)> {
    keys.iter()
        .map(|k| {
            (
                StateKey::Account(k.address()),
                StateValue::Account(Account { balance, nonce: 0 }),
            )
        })
        .collect()
}

/// A block of `count` valid transfers among `keys` (whose nonces start at
/// `start_nonces`, updated in place): senders take turns, recipients are
/// drawn at random from the same accounts, amounts are small.
pub fn transfer_block(
    chain_id: ChainId,
    keys: &[KeyPair],
    start_nonces: &mut [u64],
    count: usize,
    seed: u64,
) -> Vec<PreparedTx> {
    assert!(
        keys.len() >= 2,
        "a transfer block needs at least two accounts"
    );
    let addresses: Vec<Address> = keys.iter().map(KeyPair::address).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let from = i % keys.len();
            let mut to = rng.gen_range(0..keys.len() - 1);
            if to >= from {
                to += 1;
            }
            let nonce = start_nonces[from];
            start_nonces[from] += 1;
            let tx = Transaction {
                chain_id,
                sender: keys[from].public(),
                nonce,
                fee: 1,
                action: Action::Transfer {
                    to: addresses[to],
                    amount: rng.gen_range(1..=100),
                },
            };
            PreparedTx::new(tx.sign(&keys[from]))
        })
        .collect()
}

pub mod defi;
pub mod ethereum;

pub use defi::{DefiState, SetupError};
