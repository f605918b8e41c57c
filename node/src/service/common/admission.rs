//! The admission stage: transactions from RPC clients and peers are checked
//! in batches (signatures verified together on the shard's pool, a peer's
//! Ethereum transactions' senders recovered there too, then nonce,
//! balance and pool limits against the committed state) and enter the
//! mempool as verified transactions, so block production does not check
//! their signatures again.

use super::handoff::{Admission, Rejection};
use super::shared::Shared;
use crate::metrics::Metrics;
use atoll_p2p::Verdict;
use atoll_primitives::{SignedTransaction, TxFailure};
use atoll_shard::execution::rules::check_sender;
use atoll_shard::execution::PreparedTx;
use atoll_shard::mempool::AdmitError;
use atoll_shard::signatures::{prepare_all, verify_all};
use atoll_storage::Inclusion;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most transactions checked in one batch.
const MAX_BATCH: usize = 4096;

/// Runs the stage until the node stops.
pub fn run(shared: &Shared, mut queue: mpsc::Receiver<Admission>, pool: &Arc<rayon::ThreadPool>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        if shared.is_stopping() {
            break;
        }
        batch.clear();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Admission::Submit { tx, reply } => batch.push((tx, reply)),
                Admission::Peer { txs, verdict } => admit_from_peer(shared, txs, verdict, pool),
                Admission::Stop => break,
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            admit_batch(shared, std::mem::take(&mut batch), pool);
        }
    }
    // Whatever is still queued gets a clear answer rather than a dropped reply.
    queue.close();
    while let Ok(message) = queue.try_recv() {
        if let Admission::Submit { reply, .. } = message {
            drop(reply);
        }
    }
}

fn admit_batch(
    shared: &Shared,
    batch: Vec<(PreparedTx, oneshot::Sender<Result<(), Rejection>>)>,
    pool: &rayon::ThreadPool,
) {
    let (txs, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let verdicts = verify_all(txs, pool);
    let mut mempool = shared.mempool.lock();
    let mut displaced = Vec::new();
    let mut admitted = Vec::new();
    for (verdict, reply) in verdicts.into_iter().zip(replies) {
        let result = match verdict {
            None => Err(Rejection::BadSignature),
            Some(tx) => check_state(shared, &tx).and_then(|nonce| {
                // The state was read under the pool's lock, and the producer
                // prunes the pool under the same lock after each commit, so
                // a transaction admitted against a nonce that a block then
                // used is pruned with it.
                let signed = shared.gossip.is_some().then(|| tx.tx().signed.clone());
                let out = mempool.admit(tx, nonce).map_err(Rejection::from)?;
                admitted.extend(signed);
                displaced.extend(out);
                Ok(())
            }),
        };
        let _ = reply.send(result);
    }
    if let (Some(gossip), false) = (&shared.gossip, admitted.is_empty()) {
        // Full: these wait in this pool until this validator leads.
        let _ = gossip.try_send((shared.shard.0, admitted));
    }
    let shard = shared.shard.0;
    Metrics::shard(&shared.metrics.mempool_transactions, shard).set(mempool.len() as i64);
    Metrics::shard(&shared.metrics.mempool_bytes, shard).set(mempool.bytes() as i64);
    if mempool.len() >= shared.max_block_transactions {
        shared.wake.notify_one();
    }
    // Appended under the pool's lock, so the producer, which takes the list
    // after its commit, never misses one displaced before that commit.
    if !displaced.is_empty() {
        shared.displaced.lock().extend(displaced);
    }
    drop(mempool);
}

/// What becomes of a peer's batch of gossiped transactions, from what
/// admission found: forwarded only when every transaction in it is good
/// news (its signature verifies and it entered this pool or was there
/// already), so this validator never relays what cannot pay or is stale.
/// Its sender is scored down only for a bad signature, which no view of
/// the state excuses. A sender that cannot pay is not held against the
/// peer: a validator whose state is a block behind cannot tell an unfunded
/// sender from one a block it has not executed yet funded, and scoring
/// honest peers down for that would ban them.
pub fn peer_verdict(valid_signatures: bool, fresh: usize, total: usize) -> Verdict {
    if !valid_signatures {
        Verdict::Reject
    } else if fresh == total {
        Verdict::Accept
    } else {
        Verdict::Ignore
    }
}

/// Transactions from a peer: checked and admitted as a client's are
/// (refusals are normal: the peer's view of the state may differ), and
/// `verdict` hears whether to forward the gossip ([`peer_verdict`]). What
/// was admitted from a batch that is not forwarded is gossiped again by
/// this validator, so the good part of a mixed batch still spreads.
fn admit_from_peer(
    shared: &Shared,
    txs: Vec<SignedTransaction>,
    verdict: oneshot::Sender<Verdict>,
    pool: &rayon::ThreadPool,
) {
    let total = txs.len();
    let prepared: Vec<PreparedTx> = prepare_all(txs, pool)
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let recovered = prepared.len() == total;
    let verdicts = verify_all(prepared, pool);
    let valid = recovered && verdicts.iter().all(Option::is_some);
    let mut displaced = Vec::new();
    let mut admitted = Vec::new();
    let mut fresh = 0;
    {
        let mut mempool = shared.mempool.lock();
        for tx in verdicts.into_iter().flatten() {
            if mempool.contains(&tx.tx().hash) {
                fresh += 1;
                continue;
            }
            if let Ok(nonce) = check_state(shared, tx.tx()) {
                let signed = tx.tx().signed.clone();
                if let Ok(out) = mempool.admit(tx, nonce) {
                    displaced.extend(out);
                    admitted.push(signed);
                    fresh += 1;
                }
            }
        }
        let shard = shared.shard.0;
        Metrics::shard(&shared.metrics.mempool_transactions, shard).set(mempool.len() as i64);
        Metrics::shard(&shared.metrics.mempool_bytes, shard).set(mempool.bytes() as i64);
        if !displaced.is_empty() {
            shared.displaced.lock().extend(displaced);
        }
    }
    let verdict_now = peer_verdict(valid, fresh, total);
    if verdict_now != Verdict::Accept && !admitted.is_empty() {
        if let Some(gossip) = &shared.gossip {
            let _ = gossip.try_send((shared.shard.0, admitted));
        }
    }
    let _ = verdict.send(verdict_now);
}

/// Checks `tx` against the committed state: not already included, and the
/// sender can pay amount plus fee. Returns the sender's nonce.
///
/// The balance check looks at the committed balance only, not at what the
/// sender's other pending transactions will spend: a transaction that
/// passes it can still fail in its block, with the failure in its outcome.
fn check_state(shared: &Shared, tx: &PreparedTx) -> Result<u64, Rejection> {
    if let Some(reason) = atoll_shard::execution::evm::invalid_reason(&tx.terms, &shared.gas) {
        return Err(Rejection::Invalid(reason));
    }
    let storage = |e: atoll_storage::StorageError| Rejection::Storage(e.to_string());
    match shared.store.inclusion(&tx.hash).map_err(storage)? {
        None => {}
        Some(Inclusion::Indexed(location)) => {
            return Err(Rejection::AlreadyIncluded {
                shard: shared.shard.0,
                height: location.height,
            })
        }
        Some(Inclusion::BelowSnapshot { height }) => {
            return Err(Rejection::IncludedBeforeSnapshot { height })
        }
    }
    let home = shared.beacon.read().shard_of(&tx.sender);
    let nonce = tx.terms.nonce;
    let read = || {
        let account = shared
            .state
            .account(&tx.sender)
            .map_err(|e| Rejection::Storage(e.to_string()))?;
        // Arriving too: the shard has not made its first block under the
        // map that moved the account here.
        if shared.head_map.read().shard_of(&tx.sender) != shared.shard {
            return Err(Rejection::Arriving {
                shard: shared.shard.0,
            });
        }
        Ok(account)
    };
    let account = match check_sender(home, shared.shard, nonce, read)? {
        Ok((account, _next_or_ahead)) => account,
        Err(TxFailure::SenderOnOtherShard { shard }) => return Err(Rejection::Moved { shard }),
        Err(TxFailure::SenderArriving) => {
            return Err(Rejection::Arriving {
                shard: shared.shard.0,
            })
        }
        Err(TxFailure::BadNonce { expected, got }) => {
            return Err(Rejection::Pool(AdmitError::NonceTooLow { expected, got }))
        }
        // check_sender fails with the three above only.
        Err(other) => return Err(Rejection::Invalid(format!("{other:?}"))),
    };
    let needed = tx.terms.max_cost();
    if account.balance < needed {
        return Err(Rejection::InsufficientBalance {
            balance: account.balance,
            needed,
        });
    }
    Ok(account.nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (hostile peers): a batch whose senders cannot pay was
    /// forwarded with no penalty as long as its signatures verified.
    #[test]
    fn only_batches_that_are_all_good_news_are_forwarded() {
        assert_eq!(peer_verdict(true, 10, 10), Verdict::Accept);
        // A bad signature anywhere: the sender is scored down.
        assert_eq!(peer_verdict(false, 9, 10), Verdict::Reject);
        // Some or all that cannot pay or are stale: not forwarded (the
        // good ones are gossiped again by this validator), and not held
        // against a peer whose view of the state may be newer.
        assert_eq!(peer_verdict(true, 5, 10), Verdict::Ignore);
        assert_eq!(peer_verdict(true, 0, 10), Verdict::Ignore);
    }
}
