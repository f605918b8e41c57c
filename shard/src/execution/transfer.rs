//! What one transaction does to the state: the single definition of the
//! transaction semantics, shared by every executor.

use super::{BlockContext, PreparedTx};
use crate::state::account_in;
use atoll_primitives::{
    Account, Action, ReceiptAction, ShardId, StateChange, StateKey, StateValue, TxFailure,
    TxOutcome,
};
use smallvec::SmallVec;

/// Where a transaction's reads come from. The sequential executor reads its
/// own overlay then the store; Block-STM reads the multi-version memory and
/// may stop the transaction when it meets an unfinished write.
pub(crate) trait TxReader {
    /// Why a read could not return a value.
    type Stop;
    /// The current value of `key` as seen by this transaction (`None`:
    /// the state does not hold it).
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, Self::Stop>;

    /// The account under `key` (an account key): the empty account when
    /// the state does not hold it.
    fn read_account(&mut self, key: &StateKey) -> Result<Account, Self::Stop> {
        Ok(account_in(self.read(key)?))
    }
}

/// The writes a transaction makes (a transfer: at most the sender and the
/// recipient).
pub(crate) type WriteSet = SmallVec<[StateChange; 2]>;

/// The write of `account` under `key`.
fn set(key: StateKey, account: Account) -> StateChange {
    (key, Some(StateValue::Account(account)))
}

/// The effect of one transaction.
#[derive(Clone, Debug)]
pub(crate) struct TxEffect {
    pub outcome: TxOutcome,
    pub writes: WriteSet,
    pub receipt: Option<(ShardId, ReceiptAction)>,
    pub fee_burnt: u128,
}

impl TxEffect {
    fn failed(failure: TxFailure) -> TxEffect {
        TxEffect {
            outcome: TxOutcome::Failure(failure),
            writes: WriteSet::new(),
            receipt: None,
            fee_burnt: 0,
        }
    }
}

/// The keys a transaction may read or write, known before it runs. For a
/// native transfer this is exact up to failures (a failed transfer writes a
/// subset), which is what lets Block-STM schedule it without aborts.
pub(crate) fn declared_keys(ctx: &BlockContext, tx: &PreparedTx) -> SmallVec<[StateKey; 2]> {
    let mut keys = SmallVec::new();
    keys.push(StateKey::Account(tx.sender));
    match &tx.signed.tx.action {
        Action::Transfer { to, .. } => {
            if *to != tx.sender && ctx.map.shard_of(to) == ctx.shard {
                keys.push(StateKey::Account(*to));
            }
        }
    }
    keys
}

/// Executes `tx`: checks chain id, sender shard, nonce and fee; charges the
/// fee; applies the action or records why it failed.
pub(crate) fn execute_transaction<R: TxReader>(
    ctx: &BlockContext,
    tx: &PreparedTx,
    reader: &mut R,
) -> Result<TxEffect, R::Stop> {
    let body = &tx.signed.tx;
    if body.chain_id != ctx.chain_id {
        return Ok(TxEffect::failed(TxFailure::WrongChainId {
            expected: ctx.chain_id.0,
            got: body.chain_id.0,
        }));
    }
    let sender_shard = ctx.map.shard_of(&tx.sender);
    if sender_shard != ctx.shard {
        return Ok(TxEffect::failed(TxFailure::SenderOnOtherShard {
            shard: sender_shard.0,
        }));
    }
    let sender_key = StateKey::Account(tx.sender);
    let sender = reader.read_account(&sender_key)?;
    if sender.is_arriving() {
        return Ok(TxEffect::failed(TxFailure::SenderArriving));
    }
    if body.nonce != sender.nonce {
        return Ok(TxEffect::failed(TxFailure::BadNonce {
            expected: sender.nonce,
            got: body.nonce,
        }));
    }
    let Some(after_fee) = sender.balance.checked_sub(body.fee) else {
        return Ok(TxEffect::failed(TxFailure::CannotPayFee {
            balance: sender.balance,
            fee: body.fee,
        }));
    };
    // The nonce after u64::MAX - 1 would read as "arriving".
    let Some(next_nonce) = sender
        .nonce
        .checked_add(1)
        .filter(|next| *next != Account::ARRIVING_NONCE)
    else {
        return Ok(TxEffect::failed(TxFailure::NonceExhausted));
    };
    let charged = Account {
        balance: after_fee,
        nonce: next_nonce,
    };
    // From here on the fee is burnt and the nonce advances, whatever the action does.
    let mut effect = TxEffect {
        outcome: TxOutcome::Success,
        writes: WriteSet::new(),
        receipt: None,
        fee_burnt: body.fee,
    };
    match &body.action {
        Action::Transfer { to, amount } => {
            let Some(after_amount) = after_fee.checked_sub(*amount) else {
                let needed = amount.saturating_add(body.fee);
                effect.outcome = TxOutcome::Failure(TxFailure::InsufficientBalance {
                    balance: sender.balance,
                    needed,
                });
                effect.writes.push(set(sender_key, charged));
                return Ok(effect);
            };
            let destination = ctx.map.shard_of(to);
            if destination != ctx.shard {
                effect.writes.push(set(
                    sender_key,
                    Account {
                        balance: after_amount,
                        ..charged
                    },
                ));
                effect.receipt = Some((
                    destination,
                    ReceiptAction::Transfer {
                        to: *to,
                        amount: *amount,
                    },
                ));
            } else if *to == tx.sender {
                effect.writes.push(set(sender_key, charged));
            } else {
                let recipient_key = StateKey::Account(*to);
                let recipient = reader.read_account(&recipient_key)?;
                match recipient.balance.checked_add(*amount) {
                    Some(balance) => {
                        effect.writes.push(set(
                            sender_key,
                            Account {
                                balance: after_amount,
                                ..charged
                            },
                        ));
                        effect.writes.push(set(
                            recipient_key,
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
            }
        }
    }
    Ok(effect)
}
