//! The rules of one transaction: what it does to the state (the single
//! definition of the transaction semantics, shared by every executor), and
//! the checks other paths share with execution, so each is written once:
//! the chain id ([`wrong_chain`]) and the sender's shard, arrival and nonce
//! ([`check_sender`], which the mempool's admission calls too).
//!
//! [`execute_transaction`] makes the checks every transaction needs (chain
//! id, sender's shard, nonce, that the sender can pay) and dispatches by
//! action: native transfers to [`super::native`], contract actions (and a
//! transfer that reaches code) to [`super::evm`].

use super::{evm, native, BlockContext, PreparedTx};
use crate::state::account_in;
use atoll_primitives::{
    Account, Action, Address, ChainId, ReceiptAction, ShardId, StateChange, StateKey, StateValue,
    TxFailure, TxOutcome,
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

/// The receipts a transaction emits, by destination (a transfer: at most
/// one; a contract action: one per contract it placed here).
pub(crate) type Emitted = SmallVec<[(ShardId, ReceiptAction); 1]>;

/// The effect of one transaction.
#[derive(Clone, Debug)]
pub(crate) struct TxEffect {
    pub outcome: TxOutcome,
    pub writes: WriteSet,
    pub receipts: Emitted,
    pub fee_burnt: u128,
}

impl TxEffect {
    pub(super) fn failed(failure: TxFailure) -> TxEffect {
        TxEffect {
            outcome: TxOutcome::Failure(failure),
            writes: WriteSet::new(),
            receipts: Emitted::new(),
            fee_burnt: 0,
        }
    }
}

/// The keys a transaction may read or write, known before it runs. For a
/// native transfer this is exact up to failures (a failed transfer writes a
/// subset) and up to code at the recipient (then it runs that code and
/// reads more), which is what lets Block-STM schedule transfers without
/// aborts. A contract action declares only its sender.
/// Placements are not declared (see [`super::declared`]).
pub(crate) fn declared_keys(ctx: &BlockContext, tx: &PreparedTx) -> SmallVec<[StateKey; 3]> {
    let mut keys = SmallVec::new();
    keys.push(StateKey::Account(tx.sender));
    match &tx.terms.action {
        Action::Transfer { to, .. } => {
            if *to != tx.sender && ctx.map.shard_of(to) == ctx.shard {
                keys.push(StateKey::Account(*to));
                keys.push(StateKey::CodeHash(*to));
            }
        }
        Action::Create { .. } | Action::Call { .. } => {}
    }
    keys
}

/// The shard a placement in this shard's state records for `address`
/// (see [`StateKey::Placement`]), if any.
pub(super) fn placement<R: TxReader>(
    reader: &mut R,
    address: &Address,
) -> Result<Option<ShardId>, R::Stop> {
    Ok(reader
        .read(&StateKey::Placement(*address))?
        .and_then(|value| value.placement()))
}

/// The sender's account once the checks every transaction needs have
/// passed, and its nonce after this transaction.
pub(super) struct Checked {
    /// The sender's account before the transaction.
    pub sender: Account,
    /// Its nonce after the transaction.
    pub next_nonce: u64,
}

/// Executes `tx`: checks chain id, sender shard and nonce, then runs the
/// action (which charges its fee or gas) or records why it failed.
pub(crate) fn execute_transaction<R: TxReader>(
    ctx: &BlockContext,
    tx: &PreparedTx,
    reader: &mut R,
) -> Result<TxEffect, R::Stop> {
    let checked = match check(ctx, tx, reader)? {
        Ok(checked) => checked,
        Err(failure) => return Ok(TxEffect::failed(failure)),
    };
    match &tx.terms.action {
        Action::Transfer { to, amount } => native::transfer(ctx, tx, checked, *to, *amount, reader),
        Action::Create { .. } | Action::Call { .. } => {
            evm::contract_action(ctx, tx, checked, reader)
        }
    }
}

/// The chain-id rule, in one place for every path that applies it (the
/// RPC, a block's transactions before execution, the checks of a state
/// snapshot's history and execution itself): a transaction signed for
/// another chain is never part of this one. `Some` is the failure.
pub fn wrong_chain(got: ChainId, chain_id: ChainId) -> Option<TxFailure> {
    (got != chain_id).then_some(TxFailure::WrongChainId {
        expected: chain_id.0,
        got: got.0,
    })
}

/// Where a transaction's nonce stands against its sender's account, once
/// [`check_sender`] passed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonce {
    /// The account's next nonce: a block may run it now.
    Next,
    /// Ahead of the account's next nonce: the pool may hold it until the
    /// ones between arrive; a block fails it.
    Ahead,
}

/// The rules on a transaction's sender that the pool's admission and
/// execution both apply, in one place: the sender's account lives on
/// `shard` (its `home` under the map in force), its state has settled there
/// (it is not arriving from another shard), and `nonce` is not behind the
/// account's. `account` reads the sender's account, only once its home is
/// known to be `shard`. The inner `Err` is the failure; the outer one, a
/// read that could not finish.
pub fn check_sender<E>(
    home: ShardId,
    shard: ShardId,
    nonce: u64,
    account: impl FnOnce() -> Result<Account, E>,
) -> Result<Result<(Account, Nonce), TxFailure>, E> {
    if home != shard {
        return Ok(Err(TxFailure::SenderOnOtherShard { shard: home.0 }));
    }
    let account = account()?;
    if account.is_arriving() {
        return Ok(Err(TxFailure::SenderArriving));
    }
    Ok(match nonce.cmp(&account.nonce) {
        std::cmp::Ordering::Less => Err(TxFailure::BadNonce {
            expected: account.nonce,
            got: nonce,
        }),
        std::cmp::Ordering::Equal => Ok((account, Nonce::Next)),
        std::cmp::Ordering::Greater => Ok((account, Nonce::Ahead)),
    })
}

/// The checks every transaction needs before it may be charged anything:
/// chain id, the sender on this shard and settled here, its nonce, and
/// that the nonce can advance.
fn check<R: TxReader>(
    ctx: &BlockContext,
    tx: &PreparedTx,
    reader: &mut R,
) -> Result<Result<Checked, TxFailure>, R::Stop> {
    let body = &tx.terms;
    if let Some(failure) = wrong_chain(body.chain_id, ctx.chain_id) {
        return Ok(Err(failure));
    }
    let home = ctx.map.shard_of(&tx.sender);
    let read = || reader.read_account(&StateKey::Account(tx.sender));
    let sender = match check_sender(home, ctx.shard, body.nonce, read)? {
        Ok((sender, Nonce::Next)) => sender,
        Ok((sender, Nonce::Ahead)) => {
            return Ok(Err(TxFailure::BadNonce {
                expected: sender.nonce,
                got: body.nonce,
            }))
        }
        Err(failure) => return Ok(Err(failure)),
    };
    // The nonce after u64::MAX - 1 would read as "arriving".
    let Some(next_nonce) = sender
        .nonce
        .checked_add(1)
        .filter(|next| *next != Account::ARRIVING_NONCE)
    else {
        return Ok(Err(TxFailure::NonceExhausted));
    };
    Ok(Ok(Checked { sender, next_nonce }))
}

/// The write of `account` under `key`.
pub(super) fn set(key: StateKey, account: Account) -> StateChange {
    (key, Some(StateValue::Account(account)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(nonce: u64) -> Result<Account, ()> {
        Ok(Account { balance: 5, nonce })
    }

    #[test]
    fn the_sender_rules_admission_and_execution_share() {
        let (here, there) = (ShardId(0), ShardId(1));
        // On another shard: refused before the account is read.
        let unread = || -> Result<Account, ()> { panic!("read an account of another shard") };
        assert_eq!(
            check_sender(there, here, 0, unread),
            Ok(Err(TxFailure::SenderOnOtherShard { shard: 1 }))
        );
        assert_eq!(
            check_sender(here, here, 0, || Ok::<_, ()>(Account::arriving(5))),
            Ok(Err(TxFailure::SenderArriving))
        );
        assert_eq!(
            check_sender(here, here, 2, || account(3)),
            Ok(Err(TxFailure::BadNonce {
                expected: 3,
                got: 2
            }))
        );
        assert_eq!(
            check_sender(here, here, 3, || account(3)).map(|r| r.map(|(_, n)| n)),
            Ok(Ok(Nonce::Next))
        );
        assert_eq!(
            check_sender(here, here, 9, || account(3)).map(|r| r.map(|(_, n)| n)),
            Ok(Ok(Nonce::Ahead))
        );
        // A read that cannot finish is the caller's to handle.
        assert_eq!(check_sender(here, here, 0, || Err(())), Err(()));
    }
}
