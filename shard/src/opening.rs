//! What a block does before its transactions: the accounts that leave and
//! arrive when the block enters an epoch with a new shard map, and the
//! receipts from other shards.
//!
//! **Moves.** An account that the new map places elsewhere leaves in the
//! first block of the epoch: the block empties it here and emits a
//! [`ReceiptAction::Move`] receipt with its balance and nonce to its new
//! shard, which goes through the receipt path like a credit (Merkle proof,
//! sequence number, inbox cursor), so the state moves exactly once. An
//! account the new map places here is marked arriving
//! ([`Account::arriving`]): it can receive credits, but its transactions
//! fail with `SenderArriving` until the move receipt brings its nonce.
//!
//! **Receipts.** A receipt for an account this shard holds under the block's
//! map is applied: a transfer credits the balance, a move merges the state
//! ([`Account::merge_moved`]). A receipt for an account that has moved on
//! (its source sent it under an older map) is forwarded, unchanged, to the
//! account's shard under the block's map. Either way it is consumed here
//! exactly once, and the value stays accounted for.
//!
//! **Placements.** A contract lives on its creator's shard, which may not
//! be the one its address range gives (its home). The creator sends the
//! home a [`ReceiptAction::Placed`] receipt; the home records the placement
//! (`StateKey::Placement`), sends on whatever the address already held
//! here (value sent to it before the contract existed) as a move receipt,
//! and from then on forwards receipts for the address to its shard. The
//! shard that holds a receipt's account is thus the map's, unless a
//! placement here says otherwise ([`holder`]).
//!
//! **Calls.** A cross-shard call receipt runs its call here, in receipt
//! order, on the state the earlier receipts left, and sends its refund
//! back to the source ([`crate::execution::calls`]); the gas it used is
//! burnt by this block. A refund that brings a callback runs it after
//! crediting the caller.

use crate::error::ShardError;
use crate::execution::calls::{self, IncomingCall};
use crate::execution::evm::code_hash;
use crate::execution::rules::{Emitted, TxReader, WriteSet};
use crate::execution::BlockContext;
use crate::state::{SlotScan, StateView};
use atoll_primitives::codec::MAX_RECEIPT_BYTES;
use atoll_primitives::hash::domain;
use atoll_primitives::{
    Account, Address, CallRecord, Hash, ProvenReceipt, Receipt, ReceiptAction, ShardId, ShardMap,
    Slot, StateKey, StateValue, MOVE_SLOTS_PER_RECEIPT,
};
use atoll_storage::ReceiptRef;
use std::collections::BTreeMap;

/// The effect of a block's opening.
#[derive(Debug, Default)]
pub struct Opening {
    /// The final value of every key the opening changed (accounts,
    /// placements, and what calls wrote; `None`: deleted).
    pub changes: BTreeMap<StateKey, Option<StateValue>>,
    /// The receipts it emits (moves out, then forwarded receipts), numbered.
    pub receipts: Vec<Receipt>,
    /// Each forwarded incoming receipt (source, sequence) with the
    /// (destination, sequence) of the receipt that carries it on.
    pub forwarded: Vec<(ReceiptRef, ReceiptRef)>,
    /// The calls it ran, in order.
    pub calls: Vec<CallRecord>,
    /// The gas those calls burnt.
    pub burnt: u128,
    /// The next receipt sequence number per destination after its receipts.
    pub outbox: BTreeMap<ShardId, u64>,
}

/// The most storage slots a contract may hold when an operator schedules
/// its move (4 MiB of slots, 64 receipts): the destination takes its parts
/// in a few blocks. Checked when the move is asked for, not at the switch,
/// where the whole storage moves whatever it has grown to.
pub const MAX_MOVED_SLOTS: usize = 65_536;

/// The origin hash of the receipt that carries `account`'s state when it
/// moves at the start of `epoch` (a move has no transaction of its own).
pub fn move_origin(account: &Address, epoch: u64) -> Hash {
    Hash::domain(&domain::ACCOUNT_MOVE, &[&account.0, &epoch.to_be_bytes()])
}

/// Runs the opening of the block `ctx` describes, entering `epoch` under
/// `ctx.map` (the parent executed under `previous`), crediting `incoming`.
/// Receipts are numbered on from `ctx.outbox`.
pub fn run(
    ctx: &BlockContext,
    (previous, epoch): (&ShardMap, u64),
    incoming: &[ProvenReceipt],
    state: &dyn SlotScan,
) -> Result<Opening, ShardError> {
    let (shard, next) = (ctx.shard, &*ctx.map);
    let mut opening = Opening::default();
    let mut outbox = ctx.outbox.clone();
    let mut emit = |destination: ShardId, action: ReceiptAction, origin: Hash| {
        let sequence = outbox.entry(destination).or_insert(0);
        let receipt = Receipt {
            source: shard,
            destination,
            sequence: *sequence,
            origin,
            action,
        };
        *sequence += 1;
        receipt
    };
    if !std::ptr::eq(previous, next) && previous != next {
        for (address, from, to) in previous.moves(next) {
            let key = StateKey::Account(address);
            let account = read(&opening.changes, state, &key)?;
            if from == shard {
                let origin = move_origin(&address, epoch);
                for part in contract_leaving(&address, &mut opening.changes, state)? {
                    opening.receipts.push(emit(to, part, origin));
                }
                let action = ReceiptAction::Move {
                    account: address,
                    balance: account.balance,
                    nonce: account.nonce,
                };
                opening.receipts.push(emit(to, action, origin));
                opening.changes.insert(key, Some(Account::default().into()));
            } else if to == shard {
                opening
                    .changes
                    .insert(key, Some(Account::arriving(account.balance).into()));
            }
        }
    }
    for proven in incoming {
        let receipt = &proven.receipt;
        let address = receipt.action.account();
        let key = StateKey::Account(address);
        let account = read(&opening.changes, state, &key)?;
        // The cross-shard contract runs on every shard: a creation asked
        // of this one runs here.
        let owner = match address == calls::CROSS_SHARD {
            true => shard,
            false => holder(shard, next, (&address, &account), &opening.changes, state)?,
        };
        if owner != shard {
            let forwarded = emit(owner, receipt.action.clone(), receipt.origin);
            opening.forwarded.push((
                (receipt.source, receipt.sequence),
                (forwarded.destination, forwarded.sequence),
            ));
            opening.receipts.push(forwarded);
            continue;
        }
        let overflow = || ShardError::CreditOverflow {
            from: receipt.source,
            sequence: receipt.sequence,
            to: address,
        };
        if let Some(call) = IncomingCall::of(&receipt.action) {
            let mut reader = Reader {
                changes: &opening.changes,
                state,
            };
            let ran = calls::run_incoming(ctx, call, &mut reader)?;
            let refund_action = ran.refund_receipt(&call);
            let emitted = (ran.writes, ran.receipts, ran.burnt);
            opening.take_in(emitted, |to, action| emit(to, action, receipt.origin));
            let refund = emit(receipt.source, refund_action, receipt.origin);
            opening.calls.push(CallRecord {
                source: receipt.source,
                sequence: receipt.sequence,
                outcome: ran.outcome,
                refund: Some(refund.sequence),
            });
            opening.receipts.push(refund);
            continue;
        }
        if let ReceiptAction::Refund {
            amount,
            success,
            reply: Some(reply),
            ..
        } = &receipt.action
        {
            // The refund, less the callback's gas, then the callback, then
            // what it did not use.
            let reserved = reply
                .price
                .saturating_mul(u128::from(reply.callback.gas_limit));
            let credit = Account {
                balance: account
                    .balance
                    .checked_add(amount.saturating_sub(reserved))
                    .ok_or_else(overflow)?,
                ..account
            };
            opening.changes.insert(key, Some(credit.into()));
            let mut reader = Reader {
                changes: &opening.changes,
                state,
            };
            let ran = calls::run_callback(ctx, (address, *success, reply), &mut reader)?;
            let emitted = (ran.writes, ran.receipts, ran.burnt);
            opening.take_in(emitted, |to, action| emit(to, action, receipt.origin));
            let after = read(&opening.changes, state, &key)?;
            let after = Account {
                balance: after.balance.checked_add(ran.refund).ok_or_else(overflow)?,
                ..after
            };
            opening.changes.insert(key, Some(after.into()));
            opening.calls.push(CallRecord {
                source: receipt.source,
                sequence: receipt.sequence,
                outcome: ran.outcome,
                refund: None,
            });
            continue;
        }
        let after = match receipt.action {
            ReceiptAction::Transfer { amount, .. } | ReceiptAction::Refund { amount, .. } => {
                Account {
                    balance: account.balance.checked_add(amount).ok_or_else(overflow)?,
                    ..account
                }
            }
            ReceiptAction::Move { balance, nonce, .. } => account
                .merge_moved(Account { balance, nonce })
                .ok_or_else(overflow)?,
            ReceiptAction::Placed { shard: placed, .. } => {
                opening.changes.insert(
                    StateKey::Placement(address),
                    Some(StateValue::Placement(placed)),
                );
                if account == Account::default() {
                    continue;
                }
                let moved = ReceiptAction::Move {
                    account: address,
                    balance: account.balance,
                    nonce: account.nonce,
                };
                opening.receipts.push(emit(placed, moved, receipt.origin));
                Account::default()
            }
            ReceiptAction::MoveState {
                ref code,
                ref slots,
                ..
            } => {
                contract_arriving(&address, code, slots, &mut opening.changes);
                continue;
            }
            ReceiptAction::Call { .. } => unreachable!("calls ran above"),
        };
        opening.changes.insert(key, Some(after.into()));
    }
    opening.outbox = outbox;
    Ok(opening)
}

/// Removes the code and storage of `address` (leaving this shard) from
/// the state, and gives the receipts that carry them, code first, storage
/// in key order; none for an account without code. The whole storage
/// moves, however large: an operator's move of a contract is refused when
/// scheduled if it holds more than [`MAX_MOVED_SLOTS`], and the storage
/// can grow by at most a block gas limit's worth of new slots per block
/// until the epoch ends.
fn contract_leaving(
    address: &Address,
    changes: &mut BTreeMap<StateKey, Option<StateValue>>,
    state: &dyn SlotScan,
) -> Result<Vec<ReceiptAction>, ShardError> {
    let code_key = StateKey::CodeHash(*address);
    let Some(StateValue::CodeHash(hash)) = get(changes, state, &code_key)? else {
        return Ok(Vec::new());
    };
    let code = match get(changes, state, &StateKey::Code(hash))? {
        Some(StateValue::Code(code)) => code,
        _ => return Err(ShardError::MissingCode { address: *address }),
    };
    let slots = state.slots(address, usize::MAX)?;
    changes.insert(code_key, None);
    for (slot, _) in &slots {
        changes.insert(StateKey::Slot(*address, *slot), None);
    }
    // The code alone when the largest part of slots would not fit beside
    // it in one receipt.
    let room = MAX_RECEIPT_BYTES.saturating_sub(code.len() + 1024);
    let beside = match room >= MOVE_SLOTS_PER_RECEIPT * 64 {
        true => MOVE_SLOTS_PER_RECEIPT.min(slots.len()),
        false => 0,
    };
    let mut parts = vec![ReceiptAction::MoveState {
        account: *address,
        code: Some(code),
        slots: slots[..beside].to_vec(),
    }];
    for chunk in slots[beside..].chunks(MOVE_SLOTS_PER_RECEIPT) {
        parts.push(ReceiptAction::MoveState {
            account: *address,
            code: None,
            slots: chunk.to_vec(),
        });
    }
    Ok(parts)
}

/// Writes part of the code and storage of a contract arriving here (its
/// account stays arriving until the move receipt that follows the parts).
fn contract_arriving(
    address: &Address,
    code: &Option<Vec<u8>>,
    slots: &[Slot],
    changes: &mut BTreeMap<StateKey, Option<StateValue>>,
) {
    if let Some(code) = code {
        let hash = code_hash(code);
        changes.insert(StateKey::Code(hash), Some(StateValue::Code(code.clone())));
        changes.insert(
            StateKey::CodeHash(*address),
            Some(StateValue::CodeHash(hash)),
        );
    }
    for (slot, value) in slots {
        // A zero slot is never stored (nor sent).
        let value = (*value != [0; 32]).then_some(StateValue::Slot(*value));
        changes.insert(StateKey::Slot(*address, *slot), value);
    }
}

impl Opening {
    /// Takes in what a call (or a callback) run here did: its `writes`, the
    /// receipts it sends (numbered by `emit`) and the gas it burnt.
    fn take_in(
        &mut self,
        (writes, receipts, burnt): (WriteSet, Emitted, u128),
        mut emit: impl FnMut(ShardId, ReceiptAction) -> Receipt,
    ) {
        self.changes.extend(writes);
        for (destination, action) in receipts {
            self.receipts.push(emit(destination, action));
        }
        self.burnt = self
            .burnt
            .checked_add(burnt)
            .expect("burnt gas is bounded by the total supply, which fits in u128");
    }
}

/// Reads the state with the opening's changes so far on top (what a call
/// sees).
struct Reader<'a> {
    changes: &'a BTreeMap<StateKey, Option<StateValue>>,
    state: &'a dyn StateView,
}

impl TxReader for Reader<'_> {
    type Stop = ShardError;

    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        get(self.changes, self.state, key)
    }
}

/// The shard that holds `address` (whose account here is `account`) for a
/// receipt applied here: the one `map` gives, unless a placement here says
/// otherwise (a contract this shard created at an address of another's
/// range is here; one of this shard's range that another created, whose
/// account here is then empty, is there).
fn holder(
    shard: ShardId,
    map: &ShardMap,
    (address, account): (&Address, &Account),
    changes: &BTreeMap<StateKey, Option<StateValue>>,
    state: &dyn StateView,
) -> Result<ShardId, ShardError> {
    let home = map.shard_of(address);
    if home == shard
        && (*account != Account::default()
            || get(changes, state, &StateKey::CodeHash(*address))?.is_some())
    {
        return Ok(home);
    }
    let placement = get(changes, state, &StateKey::Placement(*address))?;
    Ok(placement.and_then(|v| v.placement()).unwrap_or(home))
}

fn get(
    changes: &BTreeMap<StateKey, Option<StateValue>>,
    state: &dyn StateView,
    key: &StateKey,
) -> Result<Option<StateValue>, ShardError> {
    match changes.get(key) {
        Some(value) => Ok(value.clone()),
        None => state.get(key),
    }
}

fn read(
    changes: &BTreeMap<StateKey, Option<StateValue>>,
    state: &dyn StateView,
    key: &StateKey,
) -> Result<Account, ShardError> {
    Ok(crate::state::account_in(get(changes, state, key)?))
}
