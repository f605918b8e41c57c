//! Block execution: the transaction semantics, the sequential reference
//! executor, and the parallel executors that must agree with it.
//!
//! Three executors produce a block's result: [`sequential`] (the reference),
//! [`declared`] (transactions that declare their keys, run in dependency
//! order on several threads) and [`parallel`] (Block-STM, for everything).
//! All run the same per-transaction function
//! ([`rules::execute_transaction`]) and differ only in where reads come from
//! and how writes become visible, so the differential tests exercise exactly
//! the concurrency machinery. Values every transaction would otherwise touch
//! (burnt fees, the per-destination receipt sequence numbers) are not state
//! keys: they are accumulated in block order after execution
//! ([`BlockOutput::assemble`]), so they never make two transactions conflict.

pub mod calls;
mod creations;
pub mod declared;
pub mod evm;
mod native;
pub mod parallel;
pub mod rules;
pub mod sequential;
mod sort;

use crate::error::ShardError;
use crate::state::StateView;
use atoll_primitives::ethereum::{self, EthTransaction, EthTxError};
use atoll_primitives::{
    Address, CallRecord, ChainId, GasRules, Hash, NativeTransaction, Receipt, ShardId, ShardMap,
    SignedTransaction, StateChange, Terms, TxOutcome,
};
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// A transaction with the values execution needs precomputed once: its
/// hash, the sender's address and its terms.
///
/// A native transaction is prepared cheaply (a blake3 hash for each of
/// the first two); its signature is checked later, in the signature stage.
/// An Ethereum transaction is prepared by decoding it and recovering its
/// sender from its signature, which is its signature check: a prepared
/// Ethereum transaction has passed it ([`crate::signatures::prepare_all`]
/// runs it on the shard's worker threads).
#[derive(Clone, Debug)]
pub struct PreparedTx {
    /// The signed transaction.
    pub signed: SignedTransaction,
    /// Its hash.
    pub hash: Hash,
    /// The sender's address.
    pub sender: Address,
    /// What it asks of the chain.
    pub terms: Terms,
}

impl PreparedTx {
    /// Computes the hash, sender address and terms of a native transaction.
    pub fn new(native: NativeTransaction) -> PreparedTx {
        let hash = native.hash();
        let sender = native.sender();
        let terms = native.tx.terms();
        PreparedTx {
            signed: SignedTransaction::Native(native),
            hash,
            sender,
            terms,
        }
    }

    /// Prepares a transaction of either kind; an Ethereum one is decoded
    /// and its sender recovered (any chain id: execution checks it), or
    /// refused.
    pub fn prepare(signed: SignedTransaction) -> Result<PreparedTx, EthTxError> {
        PreparedTx::prepare_decoded(signed).map(|(tx, _)| tx)
    }

    /// As [`PreparedTx::prepare`], keeping an Ethereum transaction's
    /// decoded fields (its type, prices and signature, for showing it).
    pub fn prepare_decoded(
        signed: SignedTransaction,
    ) -> Result<(PreparedTx, Option<EthTransaction>), EthTxError> {
        match signed {
            SignedTransaction::Native(native) => Ok((PreparedTx::new(native), None)),
            SignedTransaction::Ethereum(raw) => {
                let decoded = ethereum::recover(&raw)?;
                Ok((PreparedTx::ethereum(raw, &decoded), Some(decoded)))
            }
        }
    }

    /// An Ethereum transaction from its raw bytes and what
    /// [`ethereum::recover`] (or [`ethereum::decode`]) made of them.
    pub fn ethereum(raw: Vec<u8>, decoded: &EthTransaction) -> PreparedTx {
        PreparedTx {
            hash: decoded.hash,
            sender: decoded.sender,
            terms: decoded.terms(),
            signed: SignedTransaction::Ethereum(raw),
        }
    }
}

/// The chain `signed` is for, if a block may carry it: a native body's
/// chain id, or an Ethereum transaction's once it decodes and a sender is
/// recovered (one that does not is dropped from an agreed block before
/// anything else: [`crate::ShardChain::execute_agreed_block`]).
pub fn agreed_chain(signed: &SignedTransaction) -> Option<ChainId> {
    match signed {
        SignedTransaction::Native(native) => Some(native.tx.chain_id),
        SignedTransaction::Ethereum(raw) => ethereum::recover(raw).ok().map(|tx| tx.chain_id),
    }
}

/// What a block executes against besides its state.
#[derive(Clone, Debug)]
pub struct BlockContext {
    /// The chain id transactions must carry.
    pub chain_id: ChainId,
    /// The shard executing the block.
    pub shard: ShardId,
    /// The block's height (what a contract will read as its block number).
    pub height: u64,
    /// The block's timestamp, in milliseconds since the Unix epoch (never
    /// below its parent's).
    pub timestamp_ms: u64,
    /// Which shard holds which address (the map of the block's epoch).
    pub map: Arc<ShardMap>,
    /// Next receipt sequence number per destination shard (missing: 0).
    pub outbox: BTreeMap<ShardId, u64>,
    /// The chain's gas rules (block gas limit, base fee).
    pub gas: GasRules,
    /// The hash of the parent block (what `BLOCKHASH` gives for the
    /// height before this one; older heights come from the state, see
    /// [`evm::block_hash_key`]).
    pub parent_hash: Hash,
    /// Contract code already read, by hash (shared across blocks).
    pub codes: evm::CodeCache,
}

/// Everything a block's execution produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOutput {
    /// One outcome per transaction, in block order.
    pub outcomes: Vec<TxOutcome>,
    /// The final value of every key the block wrote (`None`: deleted),
    /// sorted by key.
    pub state_changes: Vec<StateChange>,
    /// Receipts to other shards, in block order, with sequence numbers.
    pub receipts: Vec<Receipt>,
    /// Fees burnt by the block.
    pub burnt_fees: u128,
    /// What the cross-shard calls the block received did, in order (run
    /// before its transactions, by [`crate::opening`]; executors leave it
    /// empty).
    pub calls: Vec<CallRecord>,
}

impl BlockOutput {
    /// Builds the output from per-transaction effects in block order and the
    /// final write set, numbering receipts per destination from `ctx.outbox`.
    /// The write set is sorted on `pool` when one is given.
    pub(crate) fn assemble(
        ctx: &BlockContext,
        txs: &[PreparedTx],
        effects: impl IntoIterator<Item = rules::TxEffect>,
        mut state_changes: Vec<StateChange>,
        pool: Option<&rayon::ThreadPool>,
    ) -> BlockOutput {
        let mut next_sequence = ctx.outbox.clone();
        let mut outcomes = Vec::with_capacity(txs.len());
        let mut receipts = Vec::new();
        let mut burnt_fees: u128 = 0;
        for (tx, effect) in txs.iter().zip(effects) {
            burnt_fees = burnt_fees
                .checked_add(effect.fee_burnt)
                .expect("burnt fees are bounded by the total supply, which fits in u128");
            for (destination, action) in effect.receipts {
                let sequence = next_sequence.entry(destination).or_insert(0);
                receipts.push(Receipt {
                    source: ctx.shard,
                    destination,
                    sequence: *sequence,
                    origin: tx.hash,
                    action,
                });
                *sequence += 1;
            }
            outcomes.push(effect.outcome);
        }
        sort::sort_changes(&mut state_changes, pool);
        BlockOutput {
            outcomes,
            state_changes,
            receipts,
            burnt_fees,
            calls: Vec::new(),
        }
    }

    /// The value carried by this block's receipts.
    pub fn receipt_value(&self) -> u128 {
        self.receipts.iter().map(Receipt::value).sum()
    }
}

/// Which path executed a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionPath {
    /// The sequential executor (one thread, a small block, or a block whose
    /// transactions mostly depend on each other).
    Sequential,
    /// Several threads in the order of declared dependencies (every
    /// transaction declared its keys; nothing speculative).
    Declared,
    /// Block-STM on several threads.
    Parallel,
}

impl ExecutionPath {
    /// A short name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionPath::Sequential => "sequential",
            ExecutionPath::Declared => "declared-dependencies",
            ExecutionPath::Parallel => "block-stm",
        }
    }
}

/// Counters from one block's execution (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionStats {
    /// The path taken.
    pub path: ExecutionPath,
    /// Transaction executions (incarnations) run; equals the block size when
    /// nothing was re-executed.
    pub executions: u64,
    /// Validations that failed and aborted an incarnation.
    pub aborts: u64,
}

/// Runs blocks on a fixed number of threads, choosing the path per block:
/// sequential for one thread, small blocks and mostly serial blocks; in
/// declared-dependency order when every transaction declares its keys;
/// Block-STM otherwise.
#[derive(Clone)]
pub struct Executor {
    /// The shard's worker threads: the signature stage and the state-tree
    /// update run on the same pool, so no two stages compete for cores.
    pool: Arc<rayon::ThreadPool>,
    /// Blocks with fewer transactions than this run sequentially.
    min_parallel_block: usize,
    /// Whether Block-STM enters declared keys as ESTIMATE markers up front.
    use_declared_keys: bool,
}

impl Executor {
    /// An executor with a pool of `threads` worker threads.
    pub fn new(threads: NonZeroUsize) -> Result<Executor, ShardError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.get())
            .thread_name(|i| format!("shard-worker-{i}"))
            .build()
            .map_err(|e| ShardError::ThreadPool {
                threads: threads.get(),
                reason: e.to_string(),
            })?;
        Ok(Executor {
            pool: Arc::new(pool),
            min_parallel_block: 64,
            use_declared_keys: true,
        })
    }

    /// The worker pool, for the other parallel stages of a block.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// A shared handle on the worker pool, for a stage on another thread
    /// (mempool admission) that should use the same cores.
    pub fn pool_handle(&self) -> Arc<rayon::ThreadPool> {
        Arc::clone(&self.pool)
    }

    /// Whether Block-STM uses the keys transactions declare (default: yes).
    /// Without them every transaction takes the purely optimistic path
    /// (execute, validate, abort and re-execute on conflict); tests and the
    /// benchmark use this to exercise and measure that path.
    pub fn with_declared_keys(mut self, use_declared_keys: bool) -> Executor {
        self.use_declared_keys = use_declared_keys;
        self
    }

    /// Sets the smallest block that runs in parallel (the node takes it from
    /// `ExecutionConfig::min_parallel_block`; tests use 0).
    pub fn with_min_parallel_block(mut self, min: usize) -> Executor {
        self.min_parallel_block = min;
        self
    }

    /// The number of worker threads.
    pub fn threads(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.pool.current_num_threads())
            .expect("a rayon pool has at least one thread")
    }

    /// Executes `txs` in order against `state`.
    pub fn execute(
        &self,
        ctx: &BlockContext,
        txs: &[PreparedTx],
        state: &dyn StateView,
    ) -> Result<(BlockOutput, ExecutionStats), ShardError> {
        let sequential = self.pool.current_num_threads() == 1
            || txs.len() < self.min_parallel_block.max(2)
            || parallel::mostly_serial(ctx, txs);
        if sequential {
            let output = sequential::execute(ctx, txs, state)?;
            let stats = ExecutionStats {
                path: ExecutionPath::Sequential,
                executions: txs.len() as u64,
                aborts: 0,
            };
            return Ok((output, stats));
        }
        // A contract action declares only its sender, so a block holding one
        // would leave the declared path at its first undeclared read.
        let all_declare = txs.iter().all(|tx| tx.terms.action.gas_limit().is_none());
        if self.use_declared_keys && all_declare {
            if let Some(result) = self.execute_declared(ctx, txs, state)? {
                return Ok(result);
            }
        }
        // Block-STM, falling back to one thread if the block turns out
        // mostly serial.
        self.pool.install(|| {
            parallel::execute(ctx, txs, state, &self.pool, self.use_declared_keys, true)
        })
    }

    /// Executes `txs` in declared-dependency order whatever the block looks
    /// like; `None` if some transaction reads a key it did not declare.
    pub fn execute_declared(
        &self,
        ctx: &BlockContext,
        txs: &[PreparedTx],
        state: &dyn StateView,
    ) -> Result<Option<(BlockOutput, ExecutionStats)>, ShardError> {
        // The whole block, bookkeeping and assembly included, runs on the
        // pool's workers: the calling thread would otherwise read every
        // worker's results across cores (measured: about 1.35x instead of
        // 0.8-1.2x over sequential on 2 cores).
        let output = self
            .pool
            .install(|| declared::execute(ctx, txs, state, &self.pool))?;
        let executions = txs.len() as u64;
        Ok(output.map(|o| {
            (
                o,
                ExecutionStats {
                    path: ExecutionPath::Declared,
                    executions,
                    aborts: 0,
                },
            )
        }))
    }

    /// Executes `txs` with Block-STM whatever the block looks like (however
    /// many conflicts it meets).
    pub fn execute_parallel(
        &self,
        ctx: &BlockContext,
        txs: &[PreparedTx],
        state: &dyn StateView,
    ) -> Result<(BlockOutput, ExecutionStats), ShardError> {
        self.pool.install(|| {
            parallel::execute(ctx, txs, state, &self.pool, self.use_declared_keys, false)
        })
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("threads", &self.pool.current_num_threads())
            .field("min_parallel_block", &self.min_parallel_block)
            .field("use_declared_keys", &self.use_declared_keys)
            .finish()
    }
}
