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

use crate::error::ShardError;
use crate::state::StateView;
use atoll_primitives::hash::domain;
use atoll_primitives::{
    Account, Address, Hash, ProvenReceipt, Receipt, ReceiptAction, ShardId, ShardMap, StateKey,
    StateValue,
};
use atoll_storage::ReceiptRef;
use std::collections::BTreeMap;

/// The effect of a block's opening.
#[derive(Debug, Default)]
pub struct Opening {
    /// The final value of every key the opening changed (accounts and
    /// placements).
    pub changes: BTreeMap<StateKey, StateValue>,
    /// The receipts it emits (moves out, then forwarded receipts), numbered.
    pub receipts: Vec<Receipt>,
    /// Each forwarded incoming receipt (source, sequence) with the
    /// (destination, sequence) of the receipt that carries it on.
    pub forwarded: Vec<(ReceiptRef, ReceiptRef)>,
}

/// The origin hash of the receipt that carries `account`'s state when it
/// moves at the start of `epoch` (a move has no transaction of its own).
pub fn move_origin(account: &Address, epoch: u64) -> Hash {
    Hash::domain(&domain::ACCOUNT_MOVE, &[&account.0, &epoch.to_be_bytes()])
}

/// Runs the opening of a block of `shard` entering `epoch` under `next`
/// (the parent executed under `previous`), crediting `incoming`. Receipts
/// are numbered on from `outbox`, which is advanced.
pub fn run(
    shard: ShardId,
    (previous, next, epoch): (&ShardMap, &ShardMap, u64),
    incoming: &[ProvenReceipt],
    state: &dyn StateView,
    outbox: &mut BTreeMap<ShardId, u64>,
) -> Result<Opening, ShardError> {
    let mut opening = Opening::default();
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
                let action = ReceiptAction::Move {
                    account: address,
                    balance: account.balance,
                    nonce: account.nonce,
                };
                opening
                    .receipts
                    .push(emit(to, action, move_origin(&address, epoch)));
                opening.changes.insert(key, Account::default().into());
            } else if to == shard {
                opening
                    .changes
                    .insert(key, Account::arriving(account.balance).into());
            }
        }
    }
    for proven in incoming {
        let receipt = &proven.receipt;
        let address = receipt.action.account();
        let key = StateKey::Account(address);
        let account = read(&opening.changes, state, &key)?;
        let owner = holder(shard, next, (&address, &account), &opening.changes, state)?;
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
        let after = match receipt.action {
            ReceiptAction::Transfer { amount, .. } => Account {
                balance: account.balance.checked_add(amount).ok_or_else(overflow)?,
                ..account
            },
            ReceiptAction::Move { balance, nonce, .. } => account
                .merge_moved(Account { balance, nonce })
                .ok_or_else(overflow)?,
            ReceiptAction::Placed { shard: placed, .. } => {
                opening
                    .changes
                    .insert(StateKey::Placement(address), StateValue::Placement(placed));
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
        };
        opening.changes.insert(key, after.into());
    }
    Ok(opening)
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
    changes: &BTreeMap<StateKey, StateValue>,
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
    changes: &BTreeMap<StateKey, StateValue>,
    state: &dyn StateView,
    key: &StateKey,
) -> Result<Option<StateValue>, ShardError> {
    match changes.get(key) {
        Some(value) => Ok(Some(value.clone())),
        None => state.get(key),
    }
}

fn read(
    changes: &BTreeMap<StateKey, StateValue>,
    state: &dyn StateView,
    key: &StateKey,
) -> Result<Account, ShardError> {
    Ok(crate::state::account_in(get(changes, state, key)?))
}
