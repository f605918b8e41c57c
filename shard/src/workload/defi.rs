//! Generated DeFi state and blocks: the shipped ERC-20 and AMM contracts
//! deployed and funded by executing setup blocks from a genesis, then
//! blocks of ERC-20 transfers or swaps over them. Used by the contract
//! differential tests and `atoll bench execute --workload erc20|amm`.

use super::genesis_accounts;
use crate::contracts::{call_data, create_address, Contract, Word};
use crate::execution::{sequential, BlockContext, BlockOutput, PreparedTx};
use crate::ShardError;
use atoll_primitives::hash::Domain;
use atoll_primitives::{
    Action, Address, ChainId, GasRules, Hash, KeyPair, ShardId, ShardLayout, ShardMap, StateKey,
    StateValue, Transaction, TxOutcome,
};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use thiserror::Error;

/// The domain of the stand-in parent hashes of generated blocks.
static SETUP_BLOCK: Domain = Domain::new("atoll generated block v1");

/// The native balance every generated account starts with.
pub const NATIVE_BALANCE: u128 = 1_000_000_000_000_000_000_000_000;
/// The token balance every holder gets.
pub const TOKEN_BALANCE: u128 = 1_000_000_000_000_000_000_000;
/// Gas limits of the generated transactions (above what each uses).
pub const DEPLOY_GAS: u64 = 3_000_000;
/// Gas limit of an ERC-20 transfer or approval.
pub const TOKEN_GAS: u64 = 60_000;
/// Gas limit of a swap.
pub const SWAP_GAS: u64 = 150_000;

/// Why setting up the state failed (a setup transaction did not succeed).
#[derive(Debug, Error)]
pub enum SetupError {
    /// Executing a setup block failed.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// A setup transaction did not succeed.
    #[error("setup transaction {what} did not succeed: {outcome:?}")]
    Failed {
        /// What it was.
        what: String,
        /// Its outcome.
        outcome: Box<TxOutcome>,
    },
}

/// A single-shard state built by executing blocks sequentially in memory,
/// with the accounts that sign its transactions.
pub struct DefiState {
    /// The context of the next block.
    pub ctx: BlockContext,
    /// The state after the blocks executed so far.
    pub state: HashMap<StateKey, StateValue>,
    /// The accounts; `keys[0]` deploys and funds.
    pub keys: Vec<KeyPair>,
    /// Each account's next nonce.
    pub nonces: Vec<u64>,
    /// The tokens deployed.
    pub tokens: Vec<Address>,
    /// The AMM pairs deployed, all over `tokens[0]` and `tokens[1]`.
    pub pairs: Vec<Address>,
}

impl DefiState {
    /// A genesis giving every key [`NATIVE_BALANCE`], nothing deployed.
    pub fn new(chain_id: ChainId, keys: Vec<KeyPair>) -> DefiState {
        let state = genesis_accounts(&keys, NATIVE_BALANCE)
            .into_iter()
            .collect();
        let nonces = vec![0; keys.len()];
        DefiState {
            ctx: BlockContext {
                chain_id,
                shard: ShardId(0),
                height: 1,
                timestamp_ms: 1_700_000_000_000,
                map: Arc::new(ShardMap::new(ShardLayout::single())),
                outbox: BTreeMap::new(),
                gas: GasRules::default(),
                parent_hash: Hash([0; 32]),
                codes: Default::default(),
            },
            state,
            keys,
            nonces,
            tokens: Vec::new(),
            pairs: Vec::new(),
        }
    }

    /// One token every key holds [`TOKEN_BALANCE`] of.
    pub fn erc20(chain_id: ChainId, keys: Vec<KeyPair>) -> Result<DefiState, SetupError> {
        let mut defi = DefiState::new(chain_id, keys);
        defi.deploy_token()?;
        Ok(defi)
    }

    /// Two tokens every key holds, `pools` pairs over them with liquidity,
    /// and every key `i` approved to trade on pool `i % pools`.
    pub fn amm(
        chain_id: ChainId,
        keys: Vec<KeyPair>,
        pools: usize,
    ) -> Result<DefiState, SetupError> {
        assert!(pools > 0, "an AMM workload needs a pool");
        let mut defi = DefiState::new(chain_id, keys);
        defi.deploy_token()?;
        defi.deploy_token()?;
        let (t0, t1) = (defi.tokens[0], defi.tokens[1]);
        for _ in 0..pools {
            let init = Contract::Pair.init_code(&[Word::address(t0), Word::address(t1)]);
            let pair = defi.deploy(0, init)?;
            defi.pairs.push(pair);
        }
        // The deployer provides liquidity to every pool.
        let liquidity = TOKEN_BALANCE / 2 / pools as u128;
        let mut txs = Vec::new();
        for pair in defi.pairs.clone() {
            for token in [t0, t1] {
                let data = call_data(
                    "approve(address,uint256)",
                    &[Word::address(pair), Word::max()],
                );
                txs.push(defi.call(0, token, data, TOKEN_GAS));
            }
            let data = call_data(
                "addLiquidity(uint256,uint256)",
                &[Word::uint(liquidity), Word::uint(liquidity)],
            );
            txs.push(defi.call(0, pair, data, SWAP_GAS));
        }
        defi.execute_all(txs, "providing liquidity")?;
        // Every trader approves its pool on both tokens.
        let mut txs = Vec::new();
        for i in 1..defi.keys.len() {
            let pair = defi.pairs[i % pools];
            for token in [t0, t1] {
                let data = call_data(
                    "approve(address,uint256)",
                    &[Word::address(pair), Word::max()],
                );
                txs.push(defi.call(i, token, data, TOKEN_GAS));
            }
        }
        defi.execute_all(txs, "approving pools")?;
        Ok(defi)
    }

    /// Deploys a token minting to `keys[0]`, who then sends every other
    /// key [`TOKEN_BALANCE`].
    fn deploy_token(&mut self) -> Result<Address, SetupError> {
        let supply = TOKEN_BALANCE * self.keys.len() as u128;
        let token = self.deploy(0, Contract::Token.init_code(&[Word::uint(supply)]))?;
        self.tokens.push(token);
        let txs = (1..self.keys.len())
            .map(|i| {
                let to = self.keys[i].address();
                let data = call_data(
                    "transfer(address,uint256)",
                    &[Word::address(to), Word::uint(TOKEN_BALANCE)],
                );
                self.call(0, token, data, TOKEN_GAS)
            })
            .collect();
        self.execute_all(txs, "funding token holders")?;
        Ok(token)
    }

    /// Deploys `init_code` from key `who`; the new contract's address.
    pub fn deploy(&mut self, who: usize, init_code: Vec<u8>) -> Result<Address, SetupError> {
        let address = create_address(&self.keys[who].address(), self.nonces[who]);
        let tx = self.sign(
            who,
            Action::Create {
                value: 0,
                init_code,
                gas_limit: DEPLOY_GAS,
            },
        );
        self.execute_all(vec![tx], "deploying a contract")?;
        Ok(address)
    }

    /// A signed call from key `who` with its next nonce.
    pub fn call(&mut self, who: usize, to: Address, input: Vec<u8>, gas_limit: u64) -> PreparedTx {
        self.sign(
            who,
            Action::Call {
                to,
                value: 0,
                input,
                gas_limit,
            },
        )
    }

    /// `action` signed by key `who` with its next nonce, at price 1.
    pub fn sign(&mut self, who: usize, action: Action) -> PreparedTx {
        let tx = Transaction {
            chain_id: self.ctx.chain_id,
            sender: self.keys[who].public(),
            nonce: self.nonces[who],
            fee: 1,
            action,
        };
        self.nonces[who] += 1;
        PreparedTx::new(tx.sign(&self.keys[who]))
    }

    /// Executes `txs` as blocks within the gas limit, each transaction
    /// required to succeed.
    fn execute_all(&mut self, txs: Vec<PreparedTx>, what: &str) -> Result<(), SetupError> {
        let mut block = Vec::new();
        let mut gas = 0;
        for tx in txs {
            let limit = tx.terms.action.gas_limit().unwrap_or(0);
            if gas + limit > self.ctx.gas.block_gas_limit {
                self.execute_checked(std::mem::take(&mut block), what)?;
                gas = 0;
            }
            gas += limit;
            block.push(tx);
        }
        self.execute_checked(block, what)
    }

    fn execute_checked(&mut self, txs: Vec<PreparedTx>, what: &str) -> Result<(), SetupError> {
        let output = self.execute(&txs)?;
        match output.outcomes.into_iter().find(|o| !o.is_success()) {
            Some(outcome) => Err(SetupError::Failed {
                what: what.to_string(),
                outcome: Box::new(outcome),
            }),
            None => Ok(()),
        }
    }

    /// Executes `txs` as the next block (sequentially) and applies it.
    pub fn execute(&mut self, txs: &[PreparedTx]) -> Result<BlockOutput, ShardError> {
        let output = sequential::execute(&self.ctx, txs, &self.state)?;
        self.apply(&output);
        Ok(output)
    }

    /// Applies a block's output and moves the context to the next block.
    pub fn apply(&mut self, output: &BlockOutput) {
        for (key, value) in &output.state_changes {
            match value {
                Some(value) => self.state.insert(*key, value.clone()),
                None => self.state.remove(key),
            };
        }
        for receipt in &output.receipts {
            self.ctx
                .outbox
                .insert(receipt.destination, receipt.sequence + 1);
        }
        self.ctx.height += 1;
        self.ctx.timestamp_ms += 1_000;
        // A stand-in parent hash, distinct per height.
        self.ctx.parent_hash = Hash::domain(&SETUP_BLOCK, &[&self.ctx.height.to_le_bytes()]);
    }

    /// The state as genesis entries, sorted by key.
    pub fn entries(&self) -> Vec<(StateKey, StateValue)> {
        let mut entries: Vec<_> = self.state.iter().map(|(k, v)| (*k, v.clone())).collect();
        entries.sort_unstable_by_key(|(k, _)| *k);
        entries
    }

    /// A block of `count` ERC-20 transfers of `tokens[0]`: senders take
    /// turns over distinct holders, recipients are drawn at random.
    pub fn erc20_block(&mut self, count: usize, rng: &mut impl Rng) -> Vec<PreparedTx> {
        let token = self.tokens[0];
        let n = self.keys.len();
        (0..count)
            .map(|i| {
                let from = 1 + i % (n - 1);
                let to = self.keys[rng.gen_range(0..n)].address();
                let data = call_data(
                    "transfer(address,uint256)",
                    &[Word::address(to), Word::uint(rng.gen_range(1..=1_000))],
                );
                self.call(from, token, data, TOKEN_GAS)
            })
            .collect()
    }

    /// A block of `count` swaps: trader `i` swaps a small amount on its
    /// pool (`i % pools`) in a random direction.
    pub fn swap_block(&mut self, count: usize, rng: &mut impl Rng) -> Vec<PreparedTx> {
        let n = self.keys.len();
        let pools = self.pairs.len();
        (0..count)
            .map(|i| {
                let from = 1 + i % (n - 1);
                let pair = self.pairs[from % pools];
                let data = swap_data(rng.gen_range(1_000..=100_000), rng.gen(), 0);
                self.call(from, pair, data, SWAP_GAS)
            })
            .collect()
    }
}

/// Call data of `Pair.swap(amount_in, zero_for_one, min_out)`.
pub fn swap_data(amount_in: u128, zero_for_one: bool, min_out: u128) -> Vec<u8> {
    call_data(
        "swap(uint256,bool,uint256)",
        &[
            Word::uint(amount_in),
            Word::bool(zero_for_one),
            Word::uint(min_out),
        ],
    )
}
