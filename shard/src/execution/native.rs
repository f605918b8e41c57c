//! Native transfers: the sender pays a flat fee and moves an amount to an
//! account on this shard or, through a receipt, on another. A transfer to
//! an account holding code runs that code ([`super::evm::transfer_to_code`]).
//!
//! Where the recipient lives: the shard its address range gives, unless a
//! placement says otherwise. This shard holds a placement for each contract
//! it created at an address of another shard's range (it is here), and
//! for each contract of its own range that another shard created (it is
//! there; then its account here is empty, so the placement is read only
//! for an empty recipient). A third shard holds none: its transfer goes to
//! the range's shard, which forwards it.

use super::rules::{placement, set, Checked, Emitted, TxEffect, TxReader, WriteSet};
use super::{evm, BlockContext, PreparedTx};
use atoll_primitives::{Account, Address, ReceiptAction, ShardId, StateKey, TxFailure, TxOutcome};

/// Where value sent to `to` goes, by the rules above.
pub(super) enum Destination {
    /// Another shard, in a receipt.
    Shard(ShardId),
    /// An account here that holds code.
    Code,
    /// An account here without code (the empty one when the state holds
    /// none).
    Account(Account),
}

/// Where value sent to `to` goes: the one routing rule of transfers and of
/// calls without input ([`super::evm::contract_action`]). Reads the
/// placement (another shard's range), then the code hash and the account
/// (this shard's), then the placement of an empty account of this range.
pub(super) fn destination<R: TxReader>(
    ctx: &BlockContext,
    reader: &mut R,
    to: &Address,
) -> Result<Destination, R::Stop> {
    if *to == super::calls::CROSS_SHARD {
        // Its code runs on every shard (and takes no plain value).
        return Ok(Destination::Code);
    }
    let home = ctx.map.shard_of(to);
    if home != ctx.shard && placement(reader, to)? != Some(ctx.shard) {
        return Ok(Destination::Shard(home));
    }
    if reader.read(&StateKey::CodeHash(*to))?.is_some() {
        return Ok(Destination::Code);
    }
    let account = reader.read_account(&StateKey::Account(*to))?;
    if home == ctx.shard && account == Account::default() {
        if let Some(holder) = placement(reader, to)? {
            return Ok(Destination::Shard(holder));
        }
    }
    Ok(Destination::Account(account))
}

/// Executes a transfer of `amount` to `to` by a sender that passed the
/// common checks.
pub(super) fn transfer<R: TxReader>(
    ctx: &BlockContext,
    tx: &PreparedTx,
    checked: Checked,
    to: Address,
    amount: u128,
    reader: &mut R,
) -> Result<TxEffect, R::Stop> {
    let fee = tx.terms.fee;
    let sender = checked.sender;
    let Some(after_fee) = sender.balance.checked_sub(fee) else {
        return Ok(TxEffect::failed(TxFailure::CannotPayFee {
            balance: sender.balance,
            fee,
        }));
    };
    let sender_key = StateKey::Account(tx.sender);
    let charged = Account {
        balance: after_fee,
        nonce: checked.next_nonce,
    };
    // From here on the fee is burnt and the nonce advances, whatever the action does.
    let mut effect = TxEffect {
        outcome: TxOutcome::Success,
        writes: WriteSet::new(),
        receipts: Emitted::new(),
        fee_burnt: fee,
    };
    let Some(after_amount) = after_fee.checked_sub(amount) else {
        effect.outcome = TxOutcome::Failure(TxFailure::InsufficientBalance {
            balance: sender.balance,
            needed: amount.saturating_add(fee),
        });
        effect.writes.push(set(sender_key, charged));
        return Ok(effect);
    };
    let sent = Account {
        balance: after_amount,
        ..charged
    };
    if to == tx.sender {
        effect.writes.push(set(sender_key, charged));
        return Ok(effect);
    }
    let recipient = match destination(ctx, reader, &to)? {
        Destination::Shard(shard) => {
            effect.writes.push(set(sender_key, sent));
            effect
                .receipts
                .push((shard, ReceiptAction::Transfer { to, amount }));
            return Ok(effect);
        }
        Destination::Code => {
            return evm::transfer_to_code(ctx, tx, checked, charged, to, amount, reader)
        }
        Destination::Account(recipient) => recipient,
    };
    match recipient.balance.checked_add(amount) {
        Some(balance) => {
            effect.writes.push(set(sender_key, sent));
            effect.writes.push(set(
                StateKey::Account(to),
                Account {
                    balance,
                    ..recipient
                },
            ));
        }
        None => {
            effect.outcome = TxOutcome::Failure(TxFailure::BalanceOverflow);
            effect.writes.push(set(sender_key, charged));
        }
    }
    Ok(effect)
}
