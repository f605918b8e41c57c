//! The signature stage: ed25519 batch verification spread over threads, run
//! before execution, and the recovery of Ethereum transactions' senders
//! ([`prepare_all`]).
//!
//! Native signatures follow the cofactored rule
//! ([`atoll_primitives::cofactored`]), under which a signature gets the same
//! verdict alone and in any batch. A block is cut into batches of
//! [`BATCH_SIZE`] transactions in block order; a batch that fails is split
//! in halves until the bad signatures are isolated, each then checked on
//! its own, so exactly the bad signatures are reported at a cost of
//! O(k log n) batch checks for k bad ones.
//!
//! Because verdicts do not depend on batches, a transaction checked once
//! need not be checked again: transactions admitted to the mempool are
//! carried as [`VerifiedTx`], which a block producer does not check again
//! (`ShardChain::produce_verified_block`), and a validator executing an
//! agreed block skips the transactions it checked at admission
//! (`ShardChain::execute_agreed_block`), so it checks each signature once.

use crate::execution::PreparedTx;
use atoll_primitives::cofactored::{self, Claim, KeyPoint};
use atoll_primitives::ethereum::EthTxError;
use atoll_primitives::SignedTransaction;
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

/// Most transactions per batch. The multi-scalar multiplication costs less
/// per signature in larger batches: on this project's 2-core machine, 1,024
/// per batch check about 12% more signatures per second than 256.
pub const BATCH_SIZE: usize = 1024;

/// Fewest transactions per batch when a block is spread over many threads.
pub const MIN_BATCH_SIZE: usize = 256;

/// Indices (sorted) of the transactions in `txs` whose signature is invalid,
/// checked in batches on the threads of `pool`: as large as
/// [`BATCH_SIZE`], or smaller (down to [`MIN_BATCH_SIZE`]) so that every
/// thread gets one. Verdicts do not depend on the cut.
pub fn find_bad_signatures(txs: &[PreparedTx], pool: &rayon::ThreadPool) -> Vec<usize> {
    let size = txs
        .len()
        .div_ceil(pool.current_num_threads().max(1))
        .clamp(MIN_BATCH_SIZE, BATCH_SIZE);
    pool.install(|| {
        txs.par_chunks(size)
            .enumerate()
            .flat_map_iter(|(chunk, batch)| {
                let mut bad = Vec::new();
                check_batch(batch, chunk * size, &mut bad);
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
        SignedTransaction::Native(_) => claim(tx).is_some_and(|claim| claim.check()),
        // Its sender was recovered when it was prepared: that is its check.
        SignedTransaction::Ethereum(_) => true,
    }
}

/// A native transaction's signature decoded for checking (over its hash,
/// computed when it was prepared, with its sender's cached key); None if it
/// is bad before any equation (the key is not a valid key, `R` is not a
/// point or `s` is not canonical), or if `tx` is not native.
fn claim(tx: &PreparedTx) -> Option<Claim> {
    let SignedTransaction::Native(native) = &tx.signed else {
        return None;
    };
    let sender = &native.tx.sender.0;
    let point = KEYS.get(sender)?;
    Claim::new(sender, point, tx.hash.as_bytes(), &native.signature.0)
}

/// Decompressed public keys of recent senders. Decompressing a key costs
/// a field exponentiation, about a tenth of a batch verification per
/// signature; senders repeat, so their keys are kept. Process-wide, because
/// a key is the same on every shard; bounded, and emptied when full.
static KEYS: KeyCache = KeyCache::new();

/// Most keys [`KEYS`] holds (about 10 MiB).
const KEY_CACHE_CAPACITY: usize = 1 << 16;

struct KeyCache {
    keys: parking_lot::RwLock<Option<std::collections::HashMap<[u8; 32], KeyPoint>>>,
}

impl KeyCache {
    const fn new() -> KeyCache {
        KeyCache {
            keys: parking_lot::RwLock::new(None),
        }
    }

    /// The point of the key with these bytes, if they are a valid key
    /// ([`cofactored::public_point`]: a curve point not of small order).
    fn get(&self, bytes: &[u8; 32]) -> Option<KeyPoint> {
        if let Some(key) = self.keys.read().as_ref().and_then(|keys| keys.get(bytes)) {
            return Some(*key);
        }
        let key = cofactored::public_point(bytes)?;
        let mut keys = self.keys.write();
        let keys = keys.get_or_insert_with(std::collections::HashMap::new);
        if keys.len() >= KEY_CACHE_CAPACITY {
            keys.clear();
        }
        keys.insert(*bytes, key);
        Some(key)
    }
}

/// Checks `batch` (whose first element is at `offset` in the block) and pushes
/// the indices of bad signatures, in order.
fn check_batch(batch: &[PreparedTx], offset: usize, bad: &mut Vec<usize>) {
    let mut claims = Vec::with_capacity(batch.len());
    for (i, tx) in batch.iter().enumerate() {
        if let SignedTransaction::Ethereum(_) = tx.signed {
            continue; // Checked when it was prepared.
        }
        match claim(tx) {
            Some(claim) => claims.push((i, claim)),
            None => bad.push(offset + i),
        }
    }
    let start = bad.len();
    bisect(&claims, offset, bad);
    // Refused decodings and bisection results interleave: keep the output
    // sorted.
    if start > 0 {
        bad.sort_unstable();
    }
}

/// Pushes the indices (plus `offset`) of the claims that fail, in order.
fn bisect(claims: &[(usize, Claim)], offset: usize, bad: &mut Vec<usize>) {
    match claims {
        [] => {}
        [(i, claim)] => {
            if !claim.check() {
                bad.push(offset + i);
            }
        }
        _ => {
            let batch: Vec<Claim> = claims.iter().map(|(_, claim)| *claim).collect();
            if cofactored::check_batch(&batch) {
                return;
            }
            let (left, right) = claims.split_at(claims.len() / 2);
            bisect(left, offset, bad);
            bisect(right, offset, bad);
        }
    }
}
