//! The signature stage: ed25519 batch verification spread over threads, run
//! before execution, and the recovery of Ethereum transactions' senders
//! ([`prepare_all`]).
//!
//! A block is cut into batches of [`BATCH_SIZE`] transactions in block order;
//! the cut never depends on the thread count, so every validator checks the
//! same batches. A batch that fails is split in halves until the bad
//! signatures are isolated, each then checked on its own with
//! `verify_strict`, so exactly the bad signatures are reported at a cost of
//! O(k log n) batch checks for k bad ones.
//!
//! Known limit: ed25519-dalek's batch equation and `verify_strict` can
//! disagree on adversarially crafted signatures with small-order components,
//! so such a signature's verdict can depend on its batch mates. The verdict
//! on a given list is still deterministic (the cut is fixed), and a block
//! producer re-checks its list after removing bad signatures until a pass
//! finds none (`ShardChain::produce_block`), so a sealed body passes the same
//! check every validator runs on it. Transactions admitted to the mempool
//! are checked in admission batches and carried as [`VerifiedTx`], which a
//! block producer does not check again (`ShardChain::produce_verified_block`):
//! such a crafted signature could pass its admission batch and fail a peer's
//! block-order batch. With one validator no peer re-checks; before blocks
//! are checked by peers (the network issue) both checks move to one
//! cofactored rule (ZIP-215), under which batch and single verdicts agree.

use crate::execution::PreparedTx;
use atoll_primitives::ethereum::EthTxError;
use atoll_primitives::SignedTransaction;
use ed25519_dalek::VerifyingKey;
use rayon::prelude::*;

/// A transaction whose signature passed the signature stage. Only this
/// module makes one, so holding a `VerifiedTx` is proof of the check.
#[derive(Clone, Debug)]
pub struct VerifiedTx(PreparedTx);

impl VerifiedTx {
    /// The transaction.
    pub fn tx(&self) -> &PreparedTx {
        &self.0
    }

    /// The transaction, giving up the proof.
    pub fn into_inner(self) -> PreparedTx {
        self.0
    }

    /// Checks one signature on its own; None if it is bad.
    pub fn verify(tx: PreparedTx) -> Option<VerifiedTx> {
        verify_single(&tx).then_some(VerifiedTx(tx))
    }
}

impl std::ops::Deref for VerifiedTx {
    type Target = PreparedTx;

    fn deref(&self) -> &PreparedTx {
        &self.0
    }
}

/// Checks `txs` in batches on `pool`; each comes back, in order, verified,
/// or as None if its signature is bad.
pub fn verify_all(txs: Vec<PreparedTx>, pool: &rayon::ThreadPool) -> Vec<Option<VerifiedTx>> {
    let mut bad = find_bad_signatures(&txs, pool).into_iter().peekable();
    txs.into_iter()
        .enumerate()
        .map(|(i, tx)| bad.next_if_eq(&i).is_none().then_some(VerifiedTx(tx)))
        .collect()
}

/// Prepares `txs` on the threads of `pool` ([`PreparedTx::prepare`]): an
/// Ethereum transaction's sender is recovered here, its signature check,
/// so it costs the signature stage's threads and not the caller's. Each
/// comes back in order, prepared or refused.
pub fn prepare_all(
    txs: Vec<SignedTransaction>,
    pool: &rayon::ThreadPool,
) -> Vec<Result<PreparedTx, EthTxError>> {
    pool.install(|| {
        txs.into_par_iter()
            .with_min_len(64)
            .map(PreparedTx::prepare)
            .collect()
    })
}

/// Transactions per batch: large enough to amortise the multi-scalar
/// multiplication, small enough to spread a block over many threads.
pub const BATCH_SIZE: usize = 256;

/// Indices (sorted) of the transactions in `txs` whose signature is invalid,
/// checked in batches on the threads of `pool`.
pub fn find_bad_signatures(txs: &[PreparedTx], pool: &rayon::ThreadPool) -> Vec<usize> {
    pool.install(|| {
        txs.par_chunks(BATCH_SIZE)
            .enumerate()
            .flat_map_iter(|(chunk, batch)| {
                let mut bad = Vec::new();
                check_batch(batch, chunk * BATCH_SIZE, &mut bad);
                bad
            })
            .collect()
    })
}

/// Indices (sorted) of the transactions whose signature is invalid, checked
/// one at a time on the calling thread (the baseline the benchmark compares with).
pub fn find_bad_signatures_one_by_one(txs: &[PreparedTx]) -> Vec<usize> {
    txs.iter()
        .enumerate()
        .filter(|(_, tx)| !verify_single(tx))
        .map(|(i, _)| i)
        .collect()
}

fn verify_single(tx: &PreparedTx) -> bool {
    match &tx.signed {
        SignedTransaction::Native(native) => native
            .tx
            .sender
            .verify(tx.hash.as_bytes(), &native.signature)
            .is_ok(),
        // Its sender was recovered when it was prepared: that is its check.
        SignedTransaction::Ethereum(_) => true,
    }
}

/// Checks `batch` (whose first element is at `offset` in the block) and pushes
/// the indices of bad signatures, in order.
/// Decompressed public keys of recent senders. Decompressing a key costs
/// a field exponentiation, about a tenth of a batch verification per
/// signature; senders repeat, so their keys are kept. Process-wide, because
/// a key is the same on every shard; bounded, and emptied when full.
static KEYS: KeyCache = KeyCache::new();

/// Most keys [`KEYS`] holds (about 14 MiB).
const KEY_CACHE_CAPACITY: usize = 1 << 16;

struct KeyCache {
    keys: parking_lot::RwLock<Option<std::collections::HashMap<[u8; 32], VerifyingKey>>>,
}

impl KeyCache {
    const fn new() -> KeyCache {
        KeyCache {
            keys: parking_lot::RwLock::new(None),
        }
    }

    /// The key with these bytes, if they are a valid, non-weak key (weak
    /// keys are rejected by `verify_strict`, so they never join a batch).
    fn get(&self, bytes: &[u8; 32]) -> Option<VerifyingKey> {
        if let Some(key) = self.keys.read().as_ref().and_then(|keys| keys.get(bytes)) {
            return Some(*key);
        }
        let key = VerifyingKey::from_bytes(bytes)
            .ok()
            .filter(|k| !k.is_weak())?;
        let mut keys = self.keys.write();
        let keys = keys.get_or_insert_with(std::collections::HashMap::new);
        if keys.len() >= KEY_CACHE_CAPACITY {
            keys.clear();
        }
        keys.insert(*bytes, key);
        Some(key)
    }
}

fn check_batch(batch: &[PreparedTx], offset: usize, bad: &mut Vec<usize>) {
    // Keys that are not valid points, or are weak (rejected by verify_strict),
    // cannot join a batch.
    let mut keys = Vec::with_capacity(batch.len());
    let mut members = Vec::with_capacity(batch.len());
    for (i, tx) in batch.iter().enumerate() {
        let SignedTransaction::Native(native) = &tx.signed else {
            continue; // Checked when it was prepared.
        };
        match KEYS.get(&native.tx.sender.0) {
            Some(key) => {
                keys.push(key);
                members.push(i);
            }
            None => bad.push(offset + i),
        }
    }
    let start = bad.len();
    bisect(batch, &members, &keys, offset, bad);
    // Bad keys and bisection results interleave: keep the output sorted.
    if start > 0 {
        bad.sort_unstable();
    }
}

fn bisect(
    batch: &[PreparedTx],
    members: &[usize],
    keys: &[VerifyingKey],
    offset: usize,
    bad: &mut Vec<usize>,
) {
    match members.len() {
        0 => {}
        1 => {
            if !verify_single(&batch[members[0]]) {
                bad.push(offset + members[0]);
            }
        }
        _ => {
            let messages: Vec<&[u8]> = members
                .iter()
                .map(|&i| batch[i].hash.as_bytes().as_slice())
                .collect();
            let signatures: Vec<ed25519_dalek::Signature> = members
                .iter()
                .map(|&i| match &batch[i].signed {
                    SignedTransaction::Native(native) => native.signature.to_dalek(),
                    SignedTransaction::Ethereum(_) => unreachable!("only native members"),
                })
                .collect();
            if ed25519_dalek::verify_batch(&messages, &signatures, keys).is_ok() {
                return;
            }
            let half = members.len() / 2;
            bisect(batch, &members[..half], &keys[..half], offset, bad);
            bisect(batch, &members[half..], &keys[half..], offset, bad);
        }
    }
}
