//! Contract execution: revm over the shard's state.
//!
//! revm reads through [`StateDb`], a `Database` over the transaction's
//! [`TxReader`], so every account field, code and storage slot it reads is
//! one state key (in Block-STM: one location of the multi-version memory,
//! validated like a transfer's reads). Its writes are taken from the
//! state it returns, never committed into revm.
//!
//! Gas is atoll's, not revm's: fee charging is off in revm. A contract
//! action buys `gas_limit × price` up front (revm sees the sender's balance
//! without it), is refunded the unused part afterwards, and the used part
//! is burnt through [`TxEffect::fee_burnt`], so no transaction writes a
//! beneficiary or any other shared account just for paying.
//!
//! Placement: a contract lives on its creator's shard, whatever range its
//! address falls in. A creation here at an address of another shard's
//! range writes a placement (`StateKey::Placement`) and sends that shard a
//! `Placed` receipt, so that it routes the address here from then on
//! ([`crate::opening`]). [`super::creations`] tells the database each
//! address about to be created, which it shows as empty rather than as a
//! stand-in.
//!
//! Accounts on other shards: a transaction reaches a contract of another
//! shard through a call receipt ([`super::calls`]), but code running here
//! cannot call into another shard synchronously. An account that lives on
//! another shard (or is still arriving on this one) looks to revm like a
//! contract whose code reverts with `Error("atoll: 0x… lives on shard
//! N…")`, so such a call fails visibly inside the EVM and never silently
//! reaches an empty account; a transaction that would still change such an account (value
//! to it through `SELFDESTRUCT`) ends as [`ContractStatus::OtherShard`]
//! and keeps only its gas payment and nonce.

use super::calls;
use super::creations::{Creations, NoteCreation};
use super::native::{destination, Destination};
use super::rules::{set, Checked, Emitted, TxEffect, TxReader, WriteSet};
use super::{BlockContext, PreparedTx};
use crate::state::account_in;
use atoll_primitives::{
    gas::TRANSFER_CALL_GAS, Account, Action, Address, ContractOutcome, ContractStatus, GasRules,
    Hash, Log, ReceiptAction, ShardId, StateKey, StateValue, TxFailure, TxOutcome,
};
use parking_lot::RwLock;
use revm::bytecode::Bytecode;
use revm::context::result::{EVMError, ExecutionResult, HaltReason};
use revm::context::{BlockEnv, CfgEnv, Context, ContextSetters, TxEnv};
use revm::database_interface::DBErrorMarker;
use revm::handler::Handler;
use revm::primitives::hardfork::SpecId;
use revm::primitives::{keccak256, Address as EvmAddress, Bytes, TxKind, B256, KECCAK_EMPTY, U256};
use revm::state::{AccountInfo, EvmState};
use revm::{Database, ExecuteEvm, MainBuilder, MainContext};
use smallvec::SmallVec;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The Ethereum hard fork contracts run under.
pub const SPEC: SpecId = SpecId::OSAKA;

/// The system account whose storage holds the hashes of the shard's last
/// [`BLOCK_HASH_DEPTH`] blocks, one slot per height modulo the depth (as
/// Ethereum's EIP-2935 history contract does). Kept in the state, so a
/// validator that synced a snapshot answers `BLOCKHASH` exactly as one
/// that executed every block. No key derives it and no code lives there.
pub const BLOCK_HASH_ACCOUNT: Address = Address(*b"atoll/block-hashes\0\0");

/// How many heights back `BLOCKHASH` reaches (Ethereum's 256).
pub const BLOCK_HASH_DEPTH: u64 = 256;

/// The state key holding the hash of the block at `height` (until the
/// block `BLOCK_HASH_DEPTH` heights later replaces it). Block `h` writes
/// the hash of block `h - 1` there (see `ShardChain`).
pub fn block_hash_key(height: u64) -> StateKey {
    let index = U256::from(height % BLOCK_HASH_DEPTH);
    StateKey::Slot(BLOCK_HASH_ACCOUNT, index.to_be_bytes::<32>())
}

/// Analysed contract code by hash, shared by a shard's blocks and threads
/// (a contract called by every transaction of a block is read and
/// analysed once, not once per transaction and thread). Bounded: it is
/// emptied when full.
///
/// Each thread also keeps copies of its own ([`THREAD_CODES`]): revm
/// clones the code it runs, which bumps the code's reference count, and
/// one count shared by all of a block's threads, like the map's read lock,
/// moved between the cores on every transaction.
#[derive(Clone)]
pub struct CodeCache {
    shared: Arc<RwLock<HashMap<Hash, Bytecode>>>,
    /// Tells this cache's codes apart in the threads' copies.
    id: u64,
}

thread_local! {
    /// This thread's own copies of codes, by cache and hash (see
    /// [`CodeCache`]). Bounded: emptied when full. Looked up once per
    /// contract a transaction runs, so it hashes with ahash, as the
    /// transaction's own map of loaded accounts does.
    static THREAD_CODES: RefCell<HashMap<(u64, Hash), Bytecode, ahash::RandomState>> =
        RefCell::new(HashMap::default());
}

impl Default for CodeCache {
    fn default() -> CodeCache {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        CodeCache {
            shared: Arc::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl CodeCache {
    /// The most codes held.
    pub const CAPACITY: usize = 4_096;

    /// The most codes a thread holds copies of (at most 24 KiB each).
    const THREAD_CAPACITY: usize = 64;

    fn get(&self, hash: &Hash) -> Option<Bytecode> {
        let key = (self.id, *hash);
        if let Some(code) = THREAD_CODES.with(|codes| codes.borrow().get(&key).cloned()) {
            return Some(code);
        }
        let shared = self.shared.read().get(hash).cloned()?;
        // Analysed again from the bytes, so that it shares nothing with
        // the other threads' copies.
        let own = bytecode(shared.original_byte_slice().to_vec());
        keep_thread_copy(key, own.clone());
        Some(own)
    }

    fn insert(&self, hash: Hash, code: Bytecode) {
        let mut codes = self.shared.write();
        if codes.len() >= Self::CAPACITY {
            codes.clear();
        }
        codes.insert(hash, code);
    }
}

fn keep_thread_copy(key: (u64, Hash), code: Bytecode) {
    THREAD_CODES.with(|codes| {
        let mut codes = codes.borrow_mut();
        if codes.len() >= CodeCache::THREAD_CAPACITY {
            codes.clear();
        }
        codes.insert(key, code);
    });
}

impl fmt::Debug for CodeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeCache({} codes)", self.shared.read().len())
    }
}

/// The most gas one transaction may use (Osaka's cap, EIP-7825).
pub const MAX_TX_GAS: u64 = revm::primitives::eip7825::TX_GAS_LIMIT_CAP;

/// The most creation code a transaction may carry (EIP-3860).
pub const MAX_INIT_CODE_BYTES: usize = 2 * 24_576;

/// Why no block could run `tx` as it stands, whatever the state (the rules
/// the executor applies, checked early so that admission turns such a
/// transaction away with the reason): a price below the base fee, a gas
/// limit above the block's or below the transaction's least intrinsic
/// cost, creation code above [`MAX_INIT_CODE_BYTES`]. `None` for a
/// transfer, or a contract action that may run.
pub fn invalid_reason(tx: &atoll_primitives::Terms, gas: &GasRules) -> Option<String> {
    let (gas_limit, data, create) = match &tx.action {
        Action::Transfer { .. } => return None,
        Action::Create {
            init_code,
            gas_limit,
            ..
        } => (*gas_limit, init_code, true),
        Action::Call {
            input, gas_limit, ..
        } => (*gas_limit, input, false),
    };
    if tx.fee < u128::from(gas.base_fee) {
        return Some(format!(
            "gas price {} is below the base fee {}",
            tx.fee, gas.base_fee
        ));
    }
    if gas_limit > gas.block_gas_limit.min(MAX_TX_GAS) {
        return Some(format!(
            "gas limit {gas_limit} is above the most a transaction may use ({})",
            gas.block_gas_limit.min(MAX_TX_GAS)
        ));
    }
    if create && data.len() > MAX_INIT_CODE_BYTES {
        return Some(format!(
            "creation code of {} bytes is above the limit of {MAX_INIT_CODE_BYTES}",
            data.len()
        ));
    }
    // A lower bound of the intrinsic cost (the EVM charges more for
    // creation code words and may apply the calldata floor).
    let zeros = data.iter().filter(|b| **b == 0).count() as u64;
    let least = 21_000
        + if create { 32_000 } else { 0 }
        + 4 * zeros
        + 16 * (data.len() as u64 - zeros)
        + access_list_gas(&tx.access_list);
    (gas_limit < least).then(|| {
        format!(
            "gas limit {gas_limit} is below the transaction's intrinsic cost of at least {least}"
        )
    })
}

/// Runs a contract action (create or call) for a sender that passed the
/// common checks.
pub(super) fn contract_action<R: TxReader>(
    ctx: &BlockContext,
    tx: &PreparedTx,
    checked: Checked,
    reader: &mut R,
) -> Result<TxEffect, R::Stop> {
    let body = &tx.terms;
    let (kind, value, input, gas_limit) = match &body.action {
        Action::Create {
            value,
            init_code,
            gas_limit,
        } => (TxKind::Create, *value, init_code, *gas_limit),
        Action::Call {
            to,
            value,
            input,
            gas_limit,
        } => (TxKind::Call(evm_address(to)), *value, input, *gas_limit),
        Action::Transfer { .. } => unreachable!("transfers run in native::transfer"),
    };
    let price = body.price(ctx.gas.base_fee);
    if let Some(reason) = invalid_reason(body, &ctx.gas) {
        return Ok(invalid(reason));
    }
    // As on Ethereum, the sender must afford the value and the gas limit
    // at the highest price it offered; it buys the gas at the price it pays.
    let balance = checked.sender.balance;
    let bought = price.checked_mul(u128::from(gas_limit));
    let (true, Some(bought)) = (balance >= body.max_cost(), bought) else {
        return Ok(TxEffect::failed(TxFailure::CannotPayFee {
            balance,
            fee: body.max_cost(),
        }));
    };
    let after_gas = balance - bought;
    if let Action::Call { to, .. } = &body.action {
        if let Destination::Shard(shard) = destination(ctx, reader, to)? {
            let gas = (price, gas_limit);
            if input.is_empty() {
                return Ok(value_to_other_shard(
                    tx, checked, after_gas, gas, *to, value, shard,
                ));
            }
            let call = (*to, value, &input[..]);
            return Ok(calls::send(tx, checked, after_gas, gas, call, shard));
        }
    }
    let shown = Account {
        balance: after_gas,
        nonce: checked.sender.nonce,
    };
    let tx_env = TxEnv {
        caller: evm_address(&tx.sender),
        gas_limit,
        gas_price: price,
        kind,
        value: U256::from(value),
        data: Bytes::copy_from_slice(input),
        nonce: checked.sender.nonce,
        chain_id: Some(ctx.chain_id.0),
        access_list: access_list(&body.access_list),
        // revm warms an access list only for a typed transaction; the price
        // is `gas_price` either way.
        tx_type: if body.access_list.is_empty() { 0 } else { 1 },
        ..TxEnv::default()
    };
    let mut db = StateDb::new(ctx, reader, tx.sender, shown);
    let ran = match run(ctx, &mut db, tx_env) {
        Ok(ran) => ran,
        Err(EvmFailure::Stopped) => return Err(db.take_stop()),
        Err(EvmFailure::Invalid(reason)) => return Ok(invalid(reason)),
    };
    let gas_used = ran.result.tx_gas_used().min(gas_limit);
    // The unused gas goes back; the used gas is burnt.
    let refund = price * u128::from(gas_limit - gas_used);
    let burnt = price * u128::from(gas_used);
    let failed_sender = Account {
        balance: after_gas + refund,
        nonce: checked.next_nonce,
    };
    Ok(db.finish(ran, gas_used, burnt, refund, failed_sender))
}

/// The gas a call without input uses when it only moves value: Ethereum's
/// cost of a plain transfer.
pub const VALUE_CALL_GAS: u64 = 21_000;

/// A call without input to an account on another shard: like a native
/// transfer there, its value travels in a credit receipt; it uses
/// [`VALUE_CALL_GAS`] plus its access list's gas (no code runs here, and
/// the account there has none to run).
fn value_to_other_shard(
    tx: &PreparedTx,
    checked: Checked,
    after_gas: u128,
    (price, gas_limit): (u128, u64),
    to: Address,
    value: u128,
    shard: ShardId,
) -> TxEffect {
    // Within the limit: `invalid_reason` checked it covers this.
    let gas_used = VALUE_CALL_GAS + access_list_gas(&tx.terms.access_list);
    let refund = price * u128::from(gas_limit - gas_used);
    let sender = Account {
        // The up-front check covered the value and the whole gas limit.
        balance: after_gas + refund - value,
        nonce: checked.next_nonce,
    };
    let mut effect = TxEffect {
        outcome: TxOutcome::Contract(ContractOutcome {
            status: ContractStatus::Success,
            gas_used,
            logs: Vec::new(),
            output: Vec::new(),
            created: None,
        }),
        writes: WriteSet::new(),
        receipts: Emitted::new(),
        fee_burnt: price * u128::from(gas_used),
    };
    effect
        .writes
        .push(set(StateKey::Account(tx.sender), sender));
    effect
        .receipts
        .push((shard, ReceiptAction::Transfer { to, amount: value }));
    effect
}

/// The intrinsic gas of an access list (EIP-2930: 2,400 per address,
/// 1,900 per slot).
fn access_list_gas(list: &[(Address, Vec<[u8; 32]>)]) -> u64 {
    list.iter()
        .map(|(_, slots)| 2_400 + 1_900 * slots.len() as u64)
        .sum()
}

/// An access list as revm takes it.
fn access_list(list: &[(Address, Vec<[u8; 32]>)]) -> revm::context::transaction::AccessList {
    revm::context::transaction::AccessList(
        list.iter()
            .map(
                |(address, slots)| revm::context::transaction::AccessListItem {
                    address: evm_address(address),
                    storage_keys: slots.iter().map(|slot| B256::from(*slot)).collect(),
                },
            )
            .collect(),
    )
}

/// A read-only call or creation (`atoll_call`, gas estimates): run at a
/// state, never committed, nothing charged.
#[derive(Clone, Debug)]
pub struct CallRequest {
    /// The caller (its balance and nonce are read from the state).
    pub from: Address,
    /// The callee; `None` runs `input` as creation code.
    pub to: Option<Address>,
    /// Value sent with it.
    pub value: u128,
    /// Call data or creation code.
    pub input: Vec<u8>,
    /// Gas it may use.
    pub gas_limit: u64,
}

/// Runs `request` against `state` in the context `ctx` and returns what it
/// did; `Ok(Err(reason))`: the EVM refused it as a transaction (gas limit
/// below its intrinsic cost, …). A caller of another shard is shown as a
/// cross-shard call shows it ([`super::calls`]): holding just the value.
pub fn call(
    ctx: &BlockContext,
    state: &dyn crate::state::StateView,
    request: &CallRequest,
) -> Result<Result<ContractOutcome, String>, crate::ShardError> {
    let mut reader = ViewReader(state);
    if let (Some(to), true) = (request.to, request.input.is_empty()) {
        if let Destination::Shard(_) = destination(ctx, &mut reader, &to)? {
            // As a transaction would: the value travels in a receipt.
            if request.gas_limit < VALUE_CALL_GAS {
                return Ok(Err(format!(
                    "gas limit {} is below the {VALUE_CALL_GAS} a value transfer uses",
                    request.gas_limit
                )));
            }
            return Ok(Ok(ContractOutcome {
                status: ContractStatus::Success,
                gas_used: VALUE_CALL_GAS,
                logs: Vec::new(),
                output: Vec::new(),
                created: None,
            }));
        }
    }
    // A caller of another shard reaches this contract through a call
    // receipt: shown as the destination shows it, holding the value.
    let remote = request.to.is_some() && ctx.map.shard_of(&request.from) != ctx.shard;
    let sender = match remote {
        true => Account {
            balance: request.value,
            nonce: 0,
        },
        false => reader.read_account(&StateKey::Account(request.from))?,
    };
    let tx_env = TxEnv {
        caller: evm_address(&request.from),
        gas_limit: request.gas_limit,
        gas_price: u128::from(ctx.gas.base_fee),
        kind: match request.to {
            Some(to) => TxKind::Call(evm_address(&to)),
            None => TxKind::Create,
        },
        value: U256::from(request.value),
        data: Bytes::copy_from_slice(&request.input),
        nonce: sender.nonce,
        chain_id: Some(ctx.chain_id.0),
        ..TxEnv::default()
    };
    let mut db = match remote {
        true => StateDb::for_remote_caller(ctx, &mut reader, request.from, request.value),
        false => StateDb::new(ctx, &mut reader, request.from, sender),
    };
    let ran = match run(ctx, &mut db, tx_env) {
        Ok(ran) => ran,
        Err(EvmFailure::Stopped) => return Err(db.take_stop()),
        Err(EvmFailure::Invalid(reason)) => return Ok(Err(reason)),
    };
    let gas_used = ran.result.tx_gas_used();
    let effect = db.finish(ran, gas_used, 0, 0, sender);
    match effect.outcome {
        TxOutcome::Contract(outcome) => Ok(Ok(outcome)),
        other => unreachable!("a run gives a contract outcome, not {other:?}"),
    }
}

/// The least gas limit with which `request` succeeds (searched between what
/// it used and `cap`), or the outcome of its failure with `cap` gas.
pub fn estimate_gas(
    ctx: &BlockContext,
    state: &dyn crate::state::StateView,
    request: &CallRequest,
    cap: u64,
) -> Result<Result<u64, Result<ContractOutcome, String>>, crate::ShardError> {
    let mut attempt = request.clone();
    let mut run_with = |gas_limit: u64| {
        attempt.gas_limit = gas_limit;
        call(ctx, state, &attempt)
    };
    let first = run_with(cap)?;
    let used = match &first {
        Ok(outcome) if outcome.status == ContractStatus::Success => outcome.gas_used,
        _ => return Ok(Err(first)),
    };
    // Refunds and the 63/64 rule mean a run may need more than it used.
    let (mut low, mut high) = (used.saturating_sub(1), cap);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        match run_with(mid)? {
            Ok(outcome) if outcome.status == ContractStatus::Success => high = mid,
            _ => low = mid,
        }
    }
    Ok(Ok(high))
}

/// Reads a committed state view (a read-only call at the head).
struct ViewReader<'a>(&'a dyn crate::state::StateView);

impl TxReader for ViewReader<'_> {
    type Stop = crate::ShardError;

    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, crate::ShardError> {
        self.0.get(key)
    }
}

/// Runs the code at `to` for a native transfer of `amount` that reached it:
/// the flat fee is already in `charged` (the sender after paying it, nonce
/// advanced); the code runs with [`TRANSFER_CALL_GAS`] and costs nothing
/// more.
pub(super) fn transfer_to_code<R: TxReader>(
    ctx: &BlockContext,
    tx: &PreparedTx,
    checked: Checked,
    charged: Account,
    to: Address,
    amount: u128,
    reader: &mut R,
) -> Result<TxEffect, R::Stop> {
    let shown = Account {
        balance: charged.balance,
        nonce: checked.sender.nonce,
    };
    let tx_env = TxEnv {
        caller: evm_address(&tx.sender),
        gas_limit: TRANSFER_CALL_GAS,
        gas_price: u128::from(ctx.gas.base_fee),
        kind: TxKind::Call(evm_address(&to)),
        value: U256::from(amount),
        nonce: checked.sender.nonce,
        chain_id: Some(ctx.chain_id.0),
        ..TxEnv::default()
    };
    let fee = tx.terms.fee;
    let mut db = StateDb::new(ctx, reader, tx.sender, shown);
    let ran = match run(ctx, &mut db, tx_env) {
        Ok(ran) => ran,
        Err(EvmFailure::Stopped) => return Err(db.take_stop()),
        // Only reachable for state revm cannot accept (the sender holding
        // code): the fee is still paid, as for any transfer.
        Err(EvmFailure::Invalid(reason)) => {
            let mut effect = TxEffect::failed(TxFailure::Invalid { reason });
            effect
                .writes
                .push(set(StateKey::Account(tx.sender), charged));
            effect.fee_burnt = fee;
            return Ok(effect);
        }
    };
    let gas_used = ran.result.tx_gas_used().min(TRANSFER_CALL_GAS);
    Ok(db.finish(ran, gas_used, fee, 0, charged))
}

/// A transaction no block may run as it stands: nothing is charged.
fn invalid(reason: String) -> TxEffect {
    TxEffect::failed(TxFailure::Invalid { reason })
}

/// What revm returned for one transaction.
pub(super) struct Ran {
    pub(super) result: ExecutionResult,
    state: EvmState,
}

/// Why revm did not run a transaction.
pub(super) enum EvmFailure {
    /// A read stopped (Block-STM met an unfinished write).
    Stopped,
    /// revm refused the transaction (intrinsic gas above the gas limit, init
    /// code too long, …).
    Invalid(String),
}

/// Runs `tx_env` on revm over `db` in the block's environment.
pub(super) fn run<R: TxReader>(
    ctx: &BlockContext,
    db: &mut StateDb<'_, R>,
    tx_env: TxEnv,
) -> Result<Ran, EvmFailure> {
    let block = BlockEnv {
        number: U256::from(ctx.height),
        timestamp: U256::from(ctx.timestamp_ms / 1000),
        gas_limit: ctx.gas.block_gas_limit,
        basefee: ctx.gas.base_fee,
        // No proof-of-work and no beacon randomness: the parent's hash
        // stands in, as deterministic as it is unpredictable before the
        // parent exists.
        prevrandao: Some(B256::from(ctx.parent_hash.0)),
        ..BlockEnv::default()
    };
    // The spec's gas table is built once, not per transaction (cloning
    // shares it).
    static BASE: std::sync::OnceLock<CfgEnv> = std::sync::OnceLock::new();
    let mut cfg = BASE
        .get_or_init(|| {
            let mut cfg = CfgEnv::new_with_spec(SPEC);
            cfg.disable_fee_charge = true;
            cfg
        })
        .clone();
    cfg.chain_id = ctx.chain_id.0;
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(block)
        .with_cfg(cfg)
        .build_mainnet();
    evm.ctx.set_tx(tx_env);
    let result = Creations::new().run(&mut evm);
    // Clears the journal whether or not the run succeeded.
    let state = evm.finalize();
    match result {
        Ok(result) => Ok(Ran { result, state }),
        Err(EVMError::Database(Interrupted)) => Err(EvmFailure::Stopped),
        Err(other) => Err(EvmFailure::Invalid(other.to_string())),
    }
}

/// A hasher for a transaction's map of loaded accounts, seeded once per
/// thread: seeding one per transaction bumps a counter that every thread
/// shares (its cache line moved between the cores on each transaction).
fn loaded_hasher() -> ahash::RandomState {
    thread_local! {
        static SEEDED: ahash::RandomState = ahash::RandomState::new();
    }
    SEEDED.with(Clone::clone)
}

/// The error [`StateDb`] gives revm when a read stopped; the stop itself
/// waits in the database.
#[derive(Debug)]
pub(super) struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a state read was interrupted")
    }
}

impl std::error::Error for Interrupted {}
impl DBErrorMarker for Interrupted {}

/// Where an account revm loaded lives, and what atoll held for it.
#[derive(Clone, Copy, Debug)]
struct Loaded {
    /// The account before the transaction (`None`: not in the state).
    account: Option<Account>,
    /// `Some(shard)`: it lives on another shard, or (this shard) is still
    /// arriving; revm saw the reverting stand-in code.
    elsewhere: Option<u16>,
    /// `Some(home)`: an address of shard `home`'s range that this
    /// transaction is creating here; created, it is placed here.
    placing: Option<ShardId>,
}

impl Loaded {
    fn here(account: Option<Account>) -> Loaded {
        Loaded {
            account,
            elsewhere: None,
            placing: None,
        }
    }

    fn elsewhere(account: Option<Account>, shard: ShardId) -> Loaded {
        Loaded {
            account,
            elsewhere: Some(shard.0),
            placing: None,
        }
    }
}

/// revm's view of the state: reads through the transaction's reader,
/// remembers what it loaded, and shows the sender as it is after buying
/// its gas.
pub(super) struct StateDb<'a, R: TxReader> {
    ctx: &'a BlockContext,
    reader: &'a mut R,
    sender: Address,
    shown_sender: Account,
    /// The sender lives on another shard (a cross-shard call's caller):
    /// its account is shown, never written; what it holds after the run
    /// is kept in `sender_after`, to go back to it.
    remote_sender: bool,
    sender_after: Option<u128>,
    loaded: HashMap<Address, Loaded, ahash::RandomState>,
    /// The addresses this transaction creates (told by
    /// [`super::creations`] before revm loads each): shown to revm as
    /// empty even in another shard's range, since a contract lives on its
    /// creator's shard.
    creating: SmallVec<[Address; 1]>,
    stop: Option<R::Stop>,
}

impl<'a, R: TxReader> StateDb<'a, R> {
    pub(super) fn new(
        ctx: &'a BlockContext,
        reader: &'a mut R,
        sender: Address,
        shown_sender: Account,
    ) -> StateDb<'a, R> {
        StateDb {
            ctx,
            reader,
            sender,
            shown_sender,
            remote_sender: false,
            sender_after: None,
            loaded: HashMap::with_hasher(loaded_hasher()),
            creating: SmallVec::new(),
            stop: None,
        }
    }

    /// A database for a cross-shard call from `caller` (of another shard),
    /// shown holding exactly the call's `value`.
    pub(super) fn for_remote_caller(
        ctx: &'a BlockContext,
        reader: &'a mut R,
        caller: Address,
        value: u128,
    ) -> StateDb<'a, R> {
        let shown = Account {
            balance: value,
            nonce: 0,
        };
        StateDb {
            remote_sender: true,
            ..StateDb::new(ctx, reader, caller, shown)
        }
    }

    /// What a remote sender holds after a successful run (the call's value,
    /// less what the call kept, plus what it sent back to its caller).
    pub(super) fn remote_sender_balance(&self) -> u128 {
        self.sender_after.unwrap_or(self.shown_sender.balance)
    }

    /// The stop that interrupted revm.
    pub(super) fn take_stop(&mut self) -> R::Stop {
        self.stop
            .take()
            .expect("the database fails only after a read stopped")
    }

    /// Reads `key`, keeping the stop for the executor if it stops.
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, Interrupted> {
        self.reader.read(key).map_err(|stop| {
            self.stop = Some(stop);
            Interrupted
        })
    }

    /// The shard a placement here records for `address`, if any.
    fn placement(&mut self, address: Address) -> Result<Option<ShardId>, Interrupted> {
        Ok(self
            .read(&StateKey::Placement(address))?
            .and_then(|value| value.placement()))
    }

    /// Loads `address`: what atoll holds for it and where it lives (see
    /// [`super::native`] for the rule).
    fn load(&mut self, address: Address) -> Result<(Loaded, Option<AccountInfo>), Interrupted> {
        if address == calls::CROSS_SHARD {
            return Ok((Loaded::here(None), Some(calls::cross_shard_account())));
        }
        let here = self.ctx.shard;
        let home = self.ctx.map.shard_of(&address);
        if home != here && !is_precompile(&address) {
            match self.placement(address)? {
                Some(shard) if shard == here => {}
                None if self.creating.contains(&address) => {
                    let loaded = Loaded {
                        placing: Some(home),
                        ..Loaded::here(None)
                    };
                    return Ok((loaded, None));
                }
                placed => {
                    let holder = placed.unwrap_or(home);
                    let info = stand_in(&address, holder.0, "lives on");
                    return Ok((Loaded::elsewhere(None, holder), Some(info)));
                }
            }
        }
        let account = self
            .read(&StateKey::Account(address))?
            .map(|v| account_in(Some(v)));
        if account.is_some_and(|a| a.is_arriving()) {
            let info = stand_in(&address, here.0, "is still arriving on");
            return Ok((Loaded::elsewhere(account, here), Some(info)));
        }
        let code = match self.read(&StateKey::CodeHash(address))? {
            Some(StateValue::CodeHash(hash)) => Some((hash, self.code(hash)?)),
            _ => None,
        };
        let empty = account.unwrap_or_default() == Account::default() && code.is_none();
        if empty && home == here && !is_precompile(&address) {
            // A contract of this range that another shard created.
            if let Some(holder) = self.placement(address)? {
                let info = stand_in(&address, holder.0, "lives on");
                return Ok((Loaded::elsewhere(account, holder), Some(info)));
            }
        }
        let loaded = Loaded::here(account);
        if account.is_none() && code.is_none() {
            return Ok((loaded, None));
        }
        let account = account.unwrap_or_default();
        let info = match code {
            Some((hash, code)) => AccountInfo::new(
                U256::from(account.balance),
                account.nonce,
                B256::from(hash.0),
                code,
            ),
            None => {
                AccountInfo::from_balance(U256::from(account.balance)).with_nonce(account.nonce)
            }
        };
        Ok((loaded, Some(info)))
    }

    /// The code stored under `hash` (empty if the state does not hold it,
    /// which only a speculative Block-STM read can see). Code is addressed
    /// by its hash, so what the cache holds for a hash is what the state
    /// holds, in every block: a cache hit needs no read.
    fn code(&mut self, hash: Hash) -> Result<Bytecode, Interrupted> {
        if let Some(code) = self.ctx.codes.get(&hash) {
            return Ok(code);
        }
        Ok(match self.read(&StateKey::Code(hash))? {
            Some(StateValue::Code(bytes)) => {
                let code = bytecode(bytes);
                self.ctx.codes.insert(hash, code.clone());
                code
            }
            _ => Bytecode::default(),
        })
    }

    /// Turns revm's result into the transaction's effect. `failed_sender`
    /// is the sender's account when the code's changes are undone (gas
    /// paid, nonce advanced); `refund` is added to the sender's balance
    /// when they are kept.
    pub(super) fn finish(
        &mut self,
        ran: Ran,
        gas_used: u64,
        fee_burnt: u128,
        refund: u128,
        failed_sender: Account,
    ) -> TxEffect {
        let Ran { result, state } = ran;
        let (mut status, logs, output, created) = match result {
            ExecutionResult::Success { logs, output, .. } => {
                let created = output.address().map(|a| Address(a.into_array()));
                // A creation returns the new code, which the state holds:
                // the outcome keeps only the address.
                let data = match created {
                    Some(_) => Vec::new(),
                    None => output.into_data().to_vec(),
                };
                (
                    ContractStatus::Success,
                    logs.iter().map(log).collect(),
                    data,
                    created,
                )
            }
            ExecutionResult::Revert { output, .. } => {
                (ContractStatus::Revert, Vec::new(), output.to_vec(), None)
            }
            ExecutionResult::Halt { reason, .. } => {
                (halt_status(reason), Vec::new(), Vec::new(), None)
            }
        };
        let sender_key = StateKey::Account(self.sender);
        let mut writes = WriteSet::new();
        let mut receipts = Emitted::new();
        if status == ContractStatus::Success {
            match self.writes(&state, &logs, failed_sender.nonce, refund) {
                Ok((kept, emitted)) => (writes, receipts) = (kept, emitted),
                Err(failed) => status = failed,
            }
        }
        let outcome = if status == ContractStatus::Success {
            ContractOutcome {
                status,
                gas_used,
                logs,
                output,
                created,
            }
        } else {
            writes.clear();
            if !self.remote_sender {
                writes.push(set(sender_key, failed_sender));
            }
            ContractOutcome {
                status,
                gas_used,
                logs: Vec::new(),
                output,
                created: None,
            }
        };
        TxEffect {
            outcome: TxOutcome::Contract(outcome),
            writes,
            receipts,
            fee_burnt,
        }
    }

    /// The writes of a successful run: every account, code and slot it
    /// changed, and the placement of each contract it created at an address
    /// of another shard's range, with the `Placed` receipt for that shard.
    /// `Err`: it changed an account that lives elsewhere.
    fn writes(
        &mut self,
        state: &EvmState,
        logs: &[Log],
        sender_nonce: u64,
        refund: u128,
    ) -> Result<(WriteSet, Emitted), ContractStatus> {
        let mut writes = WriteSet::new();
        let mut receipts = Emitted::new();
        let mut escrow = 0;
        // A deterministic order (revm's map is not ordered); the block's
        // write set is sorted later anyway, but equal effects compare equal.
        let mut touched: Vec<_> = state
            .iter()
            .filter(|(_, account)| account.is_touched())
            .collect();
        touched.sort_unstable_by_key(|(address, _)| **address);
        for (evm_address, account) in touched {
            let address = Address(evm_address.into_array());
            if address == calls::CROSS_SHARD {
                // What the calls it sends carry, not a balance of its own.
                escrow = to_u128(account.info.balance);
                continue;
            }
            if address == self.sender && self.remote_sender {
                self.sender_after = Some(to_u128(account.info.balance));
                continue;
            }
            if address == self.sender {
                let balance = to_u128(account.info.balance).saturating_add(refund);
                writes.push(set(
                    StateKey::Account(address),
                    Account {
                        balance,
                        nonce: sender_nonce,
                    },
                ));
                continue;
            }
            let loaded = match self.loaded.get(&address) {
                Some(loaded) => *loaded,
                // revm loads every account it touches through `basic`.
                None => {
                    let shard = self.ctx.map.shard_of(&address).0;
                    return Err(ContractStatus::OtherShard { address, shard });
                }
            };
            let before = writes.len();
            if account.is_created() && account.is_selfdestructed() {
                // Created and destroyed by this transaction: nothing stays.
                if loaded.account.is_some() {
                    writes.push((StateKey::Account(address), None));
                }
            } else {
                let after = Account {
                    balance: to_u128(account.info.balance),
                    nonce: account.info.nonce,
                };
                let has_code = account.info.code_hash != KECCAK_EMPTY;
                if after != loaded.account.unwrap_or_default() {
                    let value = (after != Account::default() || has_code)
                        .then_some(StateValue::Account(after));
                    if value.is_some() || loaded.account.is_some() {
                        writes.push((StateKey::Account(address), value));
                    }
                }
                if account.is_created() && has_code {
                    let hash = Hash(account.info.code_hash.0);
                    let code = account
                        .info
                        .code
                        .as_ref()
                        .map(|code| code.original_bytes().to_vec())
                        .unwrap_or_default();
                    writes.push((
                        StateKey::CodeHash(address),
                        Some(StateValue::CodeHash(hash)),
                    ));
                    writes.push((StateKey::Code(hash), Some(StateValue::Code(code))));
                }
                for (index, slot) in account.changed_storage_slots() {
                    let word = slot.present_value.to_be_bytes::<32>();
                    let value = (word != [0; 32]).then_some(StateValue::Slot(word));
                    writes.push((StateKey::Slot(address, index.to_be_bytes::<32>()), value));
                }
                if let (Some(home), true) = (loaded.placing, account.is_created()) {
                    let here = self.ctx.shard;
                    writes.push((
                        StateKey::Placement(address),
                        Some(StateValue::Placement(here)),
                    ));
                    receipts.push((
                        home,
                        ReceiptAction::Placed {
                            account: address,
                            shard: here,
                        },
                    ));
                    continue;
                }
            }
            let elsewhere = loaded.elsewhere.or(loaded.placing.map(|home| home.0));
            if let Some(shard) = elsewhere {
                if writes.len() > before {
                    return Err(ContractStatus::OtherShard { address, shard });
                }
            }
        }
        receipts.extend(calls::sent(self.ctx, logs, escrow)?);
        if !self.remote_sender
            && !writes
                .iter()
                .any(|(key, _)| *key == StateKey::Account(self.sender))
        {
            // revm always loads and touches the caller; kept for safety.
            let mut sender = self.shown_sender;
            sender.balance = sender.balance.saturating_add(refund);
            sender.nonce = sender_nonce;
            writes.push(set(StateKey::Account(self.sender), sender));
        }
        Ok((writes, receipts))
    }
}

impl<R: TxReader> NoteCreation for &mut StateDb<'_, R> {
    fn creating(&mut self, address: EvmAddress) {
        self.creating.push(Address(address.into_array()));
    }
}

impl<R: TxReader> Database for StateDb<'_, R> {
    type Error = Interrupted;

    fn basic(&mut self, address: EvmAddress) -> Result<Option<AccountInfo>, Interrupted> {
        let address = Address(address.into_array());
        if address == self.sender {
            let shown = self.shown_sender;
            // The sender holds no code (its address is a key's, and
            // creation never reaches it), so revm accepts it as a caller.
            return Ok(Some(
                AccountInfo::from_balance(U256::from(shown.balance)).with_nonce(shown.nonce),
            ));
        }
        let (loaded, info) = self.load(address)?;
        self.loaded.insert(address, loaded);
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Interrupted> {
        // `basic` hands revm the code with the account; this only runs if
        // revm drops it from its cache.
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        self.code(Hash(code_hash.0))
    }

    fn storage(&mut self, address: EvmAddress, index: U256) -> Result<U256, Interrupted> {
        let address = Address(address.into_array());
        if self
            .loaded
            .get(&address)
            .is_some_and(|l| l.elsewhere.is_some())
        {
            return Ok(U256::ZERO);
        }
        let key = StateKey::Slot(address, index.to_be_bytes::<32>());
        Ok(match self.read(&key)? {
            Some(StateValue::Slot(word)) => U256::from_be_bytes(word),
            _ => U256::ZERO,
        })
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Interrupted> {
        // revm asks only for the 256 heights before this block.
        let height = self.ctx.height;
        if number >= height || number + BLOCK_HASH_DEPTH < height {
            return Ok(B256::ZERO);
        }
        if number + 1 == height {
            return Ok(B256::from(self.ctx.parent_hash.0));
        }
        Ok(match self.read(&block_hash_key(number))? {
            Some(StateValue::Slot(word)) => B256::from(word),
            _ => B256::ZERO,
        })
    }
}

/// revm's address for an atoll address (the same 20 bytes).
pub(crate) fn evm_address(address: &Address) -> EvmAddress {
    EvmAddress::from(address.0)
}

/// Whether `address` is one of the precompiles the EVM may call (0x01 to
/// 0x0100 in Osaka): they run on every shard.
fn is_precompile(address: &Address) -> bool {
    let (high, low) = address.0.split_at(18);
    high.iter().all(|b| *b == 0) && (1..=0x0100).contains(&u16::from_be_bytes([low[0], low[1]]))
}

/// `bytes` as revm bytecode (raw legacy code unless it parses as more).
fn bytecode(bytes: Vec<u8>) -> Bytecode {
    let bytes = Bytes::from(bytes);
    Bytecode::new_raw_checked(bytes.clone()).unwrap_or_else(|_| Bytecode::new_legacy(bytes))
}

/// The account revm sees for an address it may not touch: code that
/// reverts with `Error("atoll: 0x… <relation> shard N; …")`.
fn stand_in(address: &Address, shard: u16, relation: &str) -> AccountInfo {
    let message = format!(
        "atoll: {address} {relation} shard {shard}; a contract cannot call another shard synchronously"
    );
    let code = Bytecode::new_legacy(Bytes::from(reverting_code(message.as_bytes())));
    let hash = code.hash_slow();
    AccountInfo::new(U256::ZERO, 0, hash, code)
}

/// The ABI encoding of `Error(message)`, as a Solidity revert gives it.
pub(super) fn revert_data(message: &[u8]) -> Vec<u8> {
    let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
    data.extend_from_slice(&U256::from(32).to_be_bytes::<32>());
    data.extend_from_slice(&U256::from(message.len()).to_be_bytes::<32>());
    data.extend_from_slice(message);
    data.resize(4 + 64 + message.len().div_ceil(32) * 32, 0);
    data
}

/// EVM code that reverts with the ABI encoding of `Error(message)`.
fn reverting_code(message: &[u8]) -> Vec<u8> {
    let data = revert_data(message);
    let len = u16::try_from(data.len()).expect("the message is short");
    let [hi, lo] = len.to_be_bytes();
    const PROLOGUE: u8 = 14;
    let mut code = vec![
        0x61, hi, lo, // PUSH2 len
        0x60, PROLOGUE, // PUSH1 offset of the data in this code
        0x60, 0x00, // PUSH1 0
        0x39, // CODECOPY
        0x61, hi, lo, // PUSH2 len
        0x60, 0x00, // PUSH1 0
        0xfd, // REVERT
    ];
    debug_assert_eq!(code.len(), usize::from(PROLOGUE));
    code.extend_from_slice(&data);
    code
}

/// A balance revm computed, as atoll's `u128`. The total supply fits in a
/// `u128`, so only a speculative Block-STM run over inconsistent reads can
/// exceed it, and its result is discarded by validation.
fn to_u128(value: U256) -> u128 {
    u128::try_from(value).unwrap_or(u128::MAX)
}

/// An atoll log from revm's.
fn log(log: &revm::primitives::Log) -> Log {
    Log {
        address: Address(log.address.into_array()),
        topics: log.data.topics().iter().map(|t| t.0).collect(),
        data: log.data.data.to_vec(),
    }
}

/// The status of a halted run.
fn halt_status(reason: HaltReason) -> ContractStatus {
    match reason {
        HaltReason::OutOfGas(_) => ContractStatus::OutOfGas,
        other => ContractStatus::Halted {
            reason: format!("{other:?}"),
        },
    }
}

/// The keccak-256 hash of `code` (what `EXTCODEHASH` returns for it).
pub fn code_hash(code: &[u8]) -> Hash {
    Hash(keccak256(code).0)
}
