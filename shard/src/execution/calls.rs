//! Cross-shard contract calls, both legs.
//!
//! **Source.** A transaction that calls a contract on another shard (by the
//! routing rule of [`super::native::destination`]) runs nothing here: the
//! sender's shard has checked its signature, chain id and nonce, and that
//! it can pay value plus gas limit × its highest price; it debits the value
//! and the gas bought (gas limit × the price it pays), advances the nonce
//! and emits a [`ReceiptAction::Call`] carrying both. The transaction's
//! outcome is [`ContractStatus::Sent`]: its real outcome is the call's.
//!
//! **Destination.** The block that applies the receipt runs the call
//! ([`run_incoming`]) before its own transactions, in receipt order. revm
//! sees the caller as an account without code holding exactly the call's
//! value; the caller's account is never written here (it lives on the
//! source). The gas used is burnt here. What is left goes back to the
//! caller in a [`ReceiptAction::Refund`] to the source shard: the unused
//! gas at the call's price, plus, when the call succeeded, what the caller
//! still holds (the value, less what the call kept, plus anything it sent
//! back to its caller), or, when it failed, the whole value. So the caller's
//! balance moves by exactly gas used × price plus the value the call kept,
//! and the value in flight is always the receipts' (conservation).
//!
//! **From a contract.** Code reaches another shard through the cross-shard
//! contract at [`CROSS_SHARD`] (`contracts/src/CrossShard.sol`; the chain
//! serves its code on every shard and stores nothing there):
//! `callAsync(to, data, gas)` with `msg.value` covering `gas ×
//! tx.gasprice` emits a `Sent` log and keeps the value. When the
//! transaction succeeds, each such log becomes a call receipt from the
//! calling contract ([`sent`]); its refund comes back to that contract's
//! balance. Nothing is sent when the transaction fails. `createAsync(shard,
//! initCode, salt, gas)` sends the cross-shard contract itself a call on
//! the shard asked for, whose `deploy` creates the contract there with
//! CREATE2 (its address a function of the caller, the salt and the code).

use super::evm::{evm_address, revert_data, run, EvmFailure, StateDb, MAX_TX_GAS};
use super::rules::{set, Checked, Emitted, TxEffect, TxReader, WriteSet};
use super::{BlockContext, PreparedTx};
use atoll_primitives::codec::MAX_TRANSACTION_BYTES;
use atoll_primitives::{
    Account, Address, Callback, ContractOutcome, ContractStatus, Log, ReceiptAction, Reply,
    ShardId, StateKey, TxOutcome,
};
use revm::bytecode::Bytecode;
use revm::context::TxEnv;
use revm::primitives::{keccak256, Bytes, TxKind, B256, U256};
use revm::state::AccountInfo;
use std::sync::OnceLock;

/// The address of the cross-shard contract, the same on every shard.
pub const CROSS_SHARD: Address = Address([
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x70, 0x11,
]);

/// The account revm sees at [`CROSS_SHARD`]: the contract's code, no
/// balance (what it is sent during a transaction leaves with the calls).
pub(super) fn cross_shard_account() -> AccountInfo {
    static CODE: OnceLock<(Bytecode, B256)> = OnceLock::new();
    let (code, hash) = CODE.get_or_init(|| {
        let hex = include_str!("../../../contracts/out/CrossShard.runtime.bin");
        let bytes = hex::decode(hex.trim()).expect("the checked-in bytecode is hex");
        let code = Bytecode::new_legacy(Bytes::from(bytes));
        let hash = code.hash_slow();
        (code, hash)
    });
    AccountInfo::new(U256::ZERO, 1, *hash, code.clone())
}

/// The receipts of the calls a successful run sent through the cross-shard
/// contract (its `Sent` logs, in order), each to the shard the map gives
/// its target (which forwards it if the target was placed elsewhere).
/// `escrow` is what the contract was paid in the run: it must be what the
/// calls carry. `Err`: a status that fails the transaction (a call to this
/// shard's range, a gas above the most a call may use, call data too long
/// for a receipt, value paid to the contract outside a call).
pub(super) fn sent(
    ctx: &BlockContext,
    logs: &[Log],
    escrow: u128,
) -> Result<Emitted, ContractStatus> {
    static TOPIC: OnceLock<B256> = OnceLock::new();
    let topic = TOPIC.get_or_init(|| {
        keccak256(
            "Sent(address,address,uint256,uint256,uint256,uint256,bytes,bytes4,uint256)".as_bytes(),
        )
    });
    let fail = |reason: String| ContractStatus::Halted { reason };
    let mut emitted = Emitted::new();
    let mut carried: u128 = 0;
    for log in logs.iter().filter(|log| log.address == CROSS_SHARD) {
        if log.topics.first() != Some(&topic.0) || log.topics.len() != 3 {
            continue;
        }
        let address = |word: &[u8; 32]| {
            let mut bytes = [0; 20];
            bytes.copy_from_slice(&word[12..]);
            Address(bytes)
        };
        let (caller, to) = (address(&log.topics[1]), address(&log.topics[2]));
        let word = |i: usize| -> Option<U256> {
            let bytes = log.data.get(32 * i..32 * (i + 1))?;
            Some(U256::from_be_slice(bytes))
        };
        let malformed = || fail("a malformed Sent log".into());
        let (Some(shard), Some(value), Some(gas), Some(price), Some(offset)) =
            (word(0), word(1), word(2), word(3), word(4))
        else {
            return Err(malformed());
        };
        let (Some(selector), Some(callback_gas), Some(len)) = (word(5), word(6), word(7)) else {
            return Err(malformed());
        };
        if offset != U256::from(224) {
            return Err(malformed());
        }
        let gas_cap = ctx.gas.block_gas_limit.min(MAX_TX_GAS);
        let cap = |gas: U256| {
            u64::try_from(gas)
                .ok()
                .filter(|gas| *gas <= gas_cap)
                .ok_or_else(|| {
                    fail(format!(
                        "a cross-shard call or callback may use at most {gas_cap} gas"
                    ))
                })
        };
        let (gas, callback_gas) = (cap(gas)?, cap(callback_gas)?);
        let selector: [u8; 4] = selector.to_be_bytes::<32>()[..4]
            .try_into()
            .expect("four bytes");
        let callback = (selector != [0; 4]).then_some(Callback {
            selector,
            gas_limit: callback_gas,
        });
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_TRANSACTION_BYTES {
            return Err(fail(format!(
                "cross-shard call data is limited to {MAX_TRANSACTION_BYTES} bytes"
            )));
        }
        let input = log.data.get(256..256 + len).ok_or_else(malformed)?.to_vec();
        let (Ok(value), Ok(price)) = (u128::try_from(value), u128::try_from(price)) else {
            return Err(fail("a cross-shard call's value is above 2^128".into()));
        };
        // A call goes to its target's range (which forwards it if the
        // target was placed elsewhere); a creation to the shard asked for.
        let destination = match u16::try_from(shard) {
            Err(_) => ctx.map.shard_of(&to),
            Ok(shard) if shard < ctx.map.shard_count() => ShardId(shard),
            Ok(shard) => {
                return Err(fail(format!(
                    "there is no shard {shard} (the chain has {})",
                    ctx.map.shard_count()
                )))
            }
        };
        if destination == ctx.shard {
            return Err(fail(format!(
                "{to} is in this shard's range: call it (or create it) directly, not through the cross-shard contract"
            )));
        }
        let action = ReceiptAction::Call {
            caller,
            to,
            value,
            input,
            gas_limit: gas,
            price,
            callback,
        };
        carried = carried.saturating_add(action.value());
        emitted.push((destination, action));
    }
    if carried != escrow {
        return Err(fail(format!(
            "the cross-shard contract was paid {escrow} but its calls carry {carried}"
        )));
    }
    Ok(emitted)
}

/// The source leg: a call with `input` from `tx`'s sender to `to` on
/// `shard`. `after_gas` is the sender's balance after buying `gas_limit`
/// gas at `price` (the up-front check covered the value too).
pub(super) fn send(
    tx: &PreparedTx,
    checked: Checked,
    after_gas: u128,
    (price, gas_limit): (u128, u64),
    (to, value, input): (Address, u128, &[u8]),
    shard: ShardId,
) -> TxEffect {
    let sender = Account {
        balance: after_gas - value,
        nonce: checked.next_nonce,
    };
    let mut writes = WriteSet::new();
    writes.push(set(StateKey::Account(tx.sender), sender));
    let mut receipts = Emitted::new();
    receipts.push((
        shard,
        ReceiptAction::Call {
            caller: tx.sender,
            to,
            value,
            input: input.to_vec(),
            gas_limit,
            price,
            callback: None,
        },
    ));
    TxEffect {
        outcome: TxOutcome::Contract(ContractOutcome {
            status: ContractStatus::Sent { shard: shard.0 },
            gas_used: 0,
            logs: Vec::new(),
            output: Vec::new(),
            created: None,
        }),
        writes,
        receipts,
        fee_burnt: 0,
    }
}

/// A cross-shard call as its destination runs it (the fields of a
/// [`ReceiptAction::Call`]).
#[derive(Clone, Copy, Debug)]
pub struct IncomingCall<'a> {
    /// Who calls.
    pub caller: Address,
    /// The contract called.
    pub to: Address,
    /// The value sent with it.
    pub value: u128,
    /// The call data.
    pub input: &'a [u8],
    /// The gas it may use.
    pub gas_limit: u64,
    /// The price per gas the caller paid.
    pub price: u128,
    /// The callback the caller asked for.
    pub callback: Option<&'a Callback>,
}

impl<'a> IncomingCall<'a> {
    /// The call a receipt action carries, if it is one.
    pub fn of(action: &'a ReceiptAction) -> Option<IncomingCall<'a>> {
        match action {
            ReceiptAction::Call {
                caller,
                to,
                value,
                input,
                gas_limit,
                price,
                callback,
            } => Some(IncomingCall {
                caller: *caller,
                to: *to,
                value: *value,
                input,
                gas_limit: *gas_limit,
                price: *price,
                callback: callback.as_ref(),
            }),
            _ => None,
        }
    }
}

/// What the destination leg did.
#[derive(Clone, Debug)]
pub struct CallRun {
    /// The call's outcome (status, gas used, logs, output).
    pub outcome: ContractOutcome,
    /// Its writes here (none unless it succeeded).
    pub writes: WriteSet,
    /// The receipts it emits besides the refund (placements of contracts
    /// it created at another range's address).
    pub receipts: Emitted,
    /// The gas burnt here (gas used × price).
    pub burnt: u128,
    /// What goes back to the caller.
    pub refund: u128,
    /// Of that, what the caller held after a successful run (the value
    /// the call did not keep, and what it sent back to the caller).
    pub kept: u128,
}

impl CallRun {
    /// The refund receipt's action for `call`: with a callback, its gas
    /// goes back too (to pay for it on the caller's shard), with the
    /// call's output (or, past [`MAX_REPLY_OUTPUT`], a failure saying so).
    pub fn refund_receipt(&self, call: &IncomingCall<'_>) -> ReceiptAction {
        let mut success = self.outcome.status == ContractStatus::Success;
        let reply = call.callback.map(|callback| {
            let mut output = self.outcome.output.clone();
            if output.len() > MAX_REPLY_OUTPUT {
                success = false;
                output = revert_data(
                    format!(
                        "atoll: the call's output of {} bytes is above the {MAX_REPLY_OUTPUT} a callback takes",
                        output.len()
                    )
                    .as_bytes(),
                );
            }
            Reply {
                callback: callback.clone(),
                price: call.price,
                output,
            }
        });
        let reserved = call
            .callback
            .map_or(0, |c| call.price.saturating_mul(u128::from(c.gas_limit)));
        ReceiptAction::Refund {
            to: call.caller,
            amount: self.refund.saturating_add(reserved),
            success,
            gas_used: self.outcome.gas_used,
            reply,
        }
    }
}

/// The most output a callback is handed (a refund receipt carries it).
pub const MAX_REPLY_OUTPUT: usize = MAX_TRANSACTION_BYTES;

/// Runs the callback `reply` asks of contract `to` (which sent a call that
/// `success`fully ran, or not), on `to`'s shard: `selector(bool success,
/// bytes output)` from [`CROSS_SHARD`], with the callback's gas at the
/// call's price. Its refund is the callback's unused gas. A callback
/// cannot send value (nor, so, cross-shard calls): one that does fails.
pub(crate) fn run_callback<R: TxReader>(
    ctx: &BlockContext,
    (to, success, reply): (Address, bool, &Reply),
    reader: &mut R,
) -> Result<CallRun, R::Stop> {
    let mut input = reply.callback.selector.to_vec();
    input.extend_from_slice(&U256::from(u8::from(success)).to_be_bytes::<32>());
    input.extend_from_slice(&U256::from(64).to_be_bytes::<32>());
    input.extend_from_slice(&U256::from(reply.output.len()).to_be_bytes::<32>());
    input.extend_from_slice(&reply.output);
    input.resize(4 + 96 + reply.output.len().div_ceil(32) * 32, 0);
    let call = IncomingCall {
        caller: CROSS_SHARD,
        to,
        value: 0,
        input: &input,
        gas_limit: reply.callback.gas_limit,
        price: reply.price,
        callback: None,
    };
    let mut ran = run_incoming(ctx, call, reader)?;
    if ran.outcome.status == ContractStatus::Success && ran.kept > 0 {
        ran.outcome = ContractOutcome {
            status: ContractStatus::Halted {
                reason: "a callback cannot send value or cross-shard calls".into(),
            },
            logs: Vec::new(),
            created: None,
            ..ran.outcome
        };
        ran.writes.clear();
        ran.receipts.clear();
    }
    Ok(ran)
}

/// Runs `call` at its destination over `reader`.
pub(crate) fn run_incoming<R: TxReader>(
    ctx: &BlockContext,
    call: IncomingCall<'_>,
    reader: &mut R,
) -> Result<CallRun, R::Stop> {
    let bought = call.price.saturating_mul(u128::from(call.gas_limit));
    let tx_env = TxEnv {
        caller: evm_address(&call.caller),
        gas_limit: call.gas_limit,
        gas_price: call.price,
        kind: TxKind::Call(evm_address(&call.to)),
        value: U256::from(call.value),
        data: Bytes::copy_from_slice(call.input),
        nonce: 0,
        chain_id: Some(ctx.chain_id.0),
        ..TxEnv::default()
    };
    let mut db = StateDb::for_remote_caller(ctx, reader, call.caller, call.value);
    let ran = match run(ctx, &mut db, tx_env) {
        Ok(ran) => ran,
        Err(EvmFailure::Stopped) => return Err(db.take_stop()),
        // revm refused it as a transaction (the calldata floor above its
        // gas limit, …): nothing ran, everything goes back.
        Err(EvmFailure::Invalid(reason)) => {
            return Ok(CallRun {
                outcome: ContractOutcome {
                    status: ContractStatus::Halted {
                        reason: format!("invalid call: {reason}"),
                    },
                    gas_used: 0,
                    logs: Vec::new(),
                    output: Vec::new(),
                    created: None,
                },
                writes: WriteSet::new(),
                receipts: Emitted::new(),
                burnt: 0,
                refund: call.value.saturating_add(bought),
                kept: 0,
            })
        }
    };
    let gas_used = ran.result.tx_gas_used().min(call.gas_limit);
    let burnt = call.price * u128::from(gas_used);
    let unused = bought - burnt;
    let effect = db.finish(ran, gas_used, burnt, 0, Account::default());
    let TxOutcome::Contract(outcome) = effect.outcome else {
        unreachable!("a run gives a contract outcome")
    };
    let outcome_succeeded = outcome.status == ContractStatus::Success;
    let kept = if outcome_succeeded {
        db.remote_sender_balance()
    } else {
        call.value
    };
    Ok(CallRun {
        outcome,
        writes: effect.writes,
        receipts: effect.receipts,
        burnt,
        refund: kept.saturating_add(unused),
        kept: if outcome_succeeded { kept } else { 0 },
    })
}
