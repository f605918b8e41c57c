//! A model of what executes on top of consensus, for the simulation: two
//! shards of accounts, transfers in block payloads, and cross-shard
//! transfers that debit their source in one block and are credited on the
//! destination, by a numbered receipt, in the next final block.
//!
//! Each simulated validator applies its final blocks to its own ledger
//! (kept across its crashes, like a store). The simulation checks, after
//! every block on every node: the supply is conserved (balances plus
//! receipts in flight), each receipt is credited exactly once and in order
//! (the inbox cursor must equal its sequence number), and every node holds
//! the same ledger digest at the same height. The node's real executor
//! keeps these over real stores (`shard/tests/it/sharded.rs`, and the
//! four-process test in `node/tests/it/network.rs`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Accounts (account `i` lives on shard `i % 2`).
pub const ACCOUNTS: usize = 8;
/// Each account's opening balance.
pub const OPENING: u128 = 100;

/// A receipt in flight: (sequence, recipient, amount).
type Receipt = (u64, usize, u128);

/// One node's ledger.
#[derive(Clone, Debug)]
pub struct Ledger {
    balances: [u128; ACCOUNTS],
    /// Per destination shard: receipts emitted, not yet credited.
    in_flight: [Vec<Receipt>; 2],
    /// Per destination shard: the next sequence number to emit.
    next_sequence: [u64; 2],
    /// Per destination shard: the next sequence number to credit.
    inbox: [u64; 2],
    /// The height of the last block applied.
    pub height: u64,
}

impl Default for Ledger {
    fn default() -> Ledger {
        Ledger {
            balances: [OPENING; ACCOUNTS],
            in_flight: [Vec::new(), Vec::new()],
            next_sequence: [0; 2],
            inbox: [0; 2],
            height: 0,
        }
    }
}

/// The payload a proposer makes: transfers drawn from its own seed (twins
/// propose different ones).
pub fn payload(node: usize, height: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64((node as u64) << 32 ^ height);
    (0..rng.gen_range(0..6))
        .flat_map(|_| {
            [
                rng.gen_range(0..ACCOUNTS as u8),
                rng.gen_range(0..ACCOUNTS as u8),
                rng.gen_range(1..60u8),
            ]
        })
        .collect()
}

impl Ledger {
    /// Applies the final block at `height` with `payload`; panics (with
    /// `seed`) where conservation or exactly-once fails.
    pub fn apply(&mut self, seed: u64, height: u64, payload: &[u8]) {
        assert!(
            height > self.height,
            "seed {seed}: block {height} applied after {}",
            self.height
        );
        self.height = height;
        // Receipts from earlier blocks are credited first, in order.
        for shard in 0..2 {
            for (sequence, to, amount) in std::mem::take(&mut self.in_flight[shard]) {
                assert_eq!(
                    sequence, self.inbox[shard],
                    "seed {seed}: receipt {sequence} to shard {shard} credited out of order or twice"
                );
                self.inbox[shard] += 1;
                self.balances[to] += amount;
            }
        }
        // A payload that is not whole transfers is applied as far as it is.
        for transfer in payload.chunks_exact(3) {
            let (from, to, amount) = (
                usize::from(transfer[0]) % ACCOUNTS,
                usize::from(transfer[1]) % ACCOUNTS,
                u128::from(transfer[2]),
            );
            if self.balances[from] < amount {
                continue;
            }
            self.balances[from] -= amount;
            let destination = to % 2;
            if from % 2 == destination {
                self.balances[to] += amount;
            } else {
                let sequence = self.next_sequence[destination];
                self.next_sequence[destination] += 1;
                self.in_flight[destination].push((sequence, to, amount));
            }
        }
        let in_flight: u128 = self.in_flight.iter().flatten().map(|r| r.2).sum();
        assert_eq!(
            self.balances.iter().sum::<u128>() + in_flight,
            OPENING * ACCOUNTS as u128,
            "seed {seed}: the supply changed at height {height}"
        );
    }

    /// A digest of the whole ledger (compared between nodes of one run).
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash as _, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            self.balances,
            &self.in_flight,
            self.next_sequence,
            self.inbox,
        )
            .hash(&mut hasher);
        hasher.finish()
    }
}
