//! The transaction pool of one shard: transactions waiting for a block.
//!
//! - Each sender's transactions are kept in nonce order. A transaction may
//!   wait for a gap before it to fill, up to `max_nonce_gap` ahead of the
//!   account's nonce.
//! - A transaction already held is refused, and so is a second one with the
//!   same sender and nonce unless it pays a strictly higher fee (it then
//!   replaces the first).
//! - Transactions waiting on a gap ("queued", as opposed to the ready run
//!   that starts at the account's nonce) have their own bound,
//!   `max_queued`, below the pool's: they can never fill the pool and lock
//!   out transactions that could run. The pool keeps each sender's account
//!   nonce as last told (at admission and after each block) to tell them apart.
//! - A sender at its limit can still send a nonce below its furthest pending
//!   one: that one makes room. So a sender whose slots hold only
//!   transactions waiting on a gap can always send the one that fills it.
//! - Limits per sender, in total count and in total bytes bound the memory a
//!   client can fill. When the pool is full, a new transaction evicts the
//!   cheapest evictable one if it pays more. Only the last transaction of a
//!   sender is evictable, so eviction never opens a gap in anyone's sequence.
//! - [`Mempool::ready`] takes, for a block, each sender's run of consecutive
//!   nonces from the account's nonce, highest fee first across senders.
//!
//! Signatures are checked before admission (in batches, by the caller): the
//! pool holds only [`VerifiedTx`], so a block built from it is not checked
//! again.

use crate::execution::PreparedTx;
use crate::signatures::VerifiedTx;
use ahash::RandomState;
use atoll_primitives::{Address, Hash};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::num::NonZeroUsize;
use thiserror::Error;

/// The pool's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most transactions held in total.
    pub max_transactions: NonZeroUsize,
    /// Most transactions held for one sender.
    pub max_per_sender: NonZeroUsize,
    /// How far ahead of the account's nonce a transaction may be.
    pub max_nonce_gap: u64,
    /// Most bytes of encoded transactions held in total.
    pub max_bytes: NonZeroUsize,
    /// Most transactions held that wait on a nonce gap.
    pub max_queued: NonZeroUsize,
}

/// Why a transaction was not admitted. Nothing changed in the pool.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AdmitError {
    /// The same transaction is already in the pool.
    #[error("transaction {0} is already in the pool")]
    Duplicate(Hash),
    /// The nonce was already used by the account.
    #[error("nonce {got} is too low: the account's next nonce is {expected}")]
    NonceTooLow {
        /// The account's nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce is too far ahead of the account's.
    #[error("nonce {got} is more than {max_gap} ahead of the account's next nonce {expected}")]
    NonceGapTooLarge {
        /// The account's nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
        /// The largest gap held.
        max_gap: u64,
    },
    /// Another transaction with this sender and nonce is held, and this one
    /// does not pay a higher fee.
    #[error("a transaction with nonce {nonce} from this sender is already pending with fee {held_fee}; pay more to replace it")]
    NonceTaken {
        /// The nonce.
        nonce: u64,
        /// The fee of the held transaction.
        held_fee: u128,
    },
    /// The sender has as many transactions pending as allowed.
    #[error("the sender already has {limit} transactions pending")]
    SenderFull {
        /// The per-sender limit.
        limit: usize,
    },
    /// The pool is full and the transaction does not pay more than the
    /// cheapest one that could make room.
    #[error("the pool is full; a fee above {min_fee} is needed to enter")]
    PoolFull {
        /// The fee to beat.
        min_fee: u128,
    },
    /// The transaction would wait on a nonce gap, and as many transactions
    /// as allowed already do.
    #[error("{limit} transactions already wait on nonce gaps; send the missing nonces first")]
    TooManyQueued {
        /// The bound on queued transactions.
        limit: usize,
    },
    /// The transaction alone is larger than the pool's byte limit.
    #[error("the transaction is {size} bytes, more than the pool holds ({limit} bytes)")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// The pool's byte limit.
        limit: usize,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    tx: VerifiedTx,
    size: usize,
    /// Admission order, to evict the newest of equal fees.
    arrival: u64,
}

impl Pending {
    fn fee(&self) -> u128 {
        self.tx.terms.fee
    }
}

/// An eviction candidate: a sender's last transaction, cheapest first,
/// newest first among equal fees.
type EvictionKey = (u128, Reverse<u64>, Address);

/// The pool.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    by_sender: HashMap<Address, BTreeMap<u64, Pending>, RandomState>,
    by_hash: HashMap<Hash, (Address, u64), RandomState>,
    evictable: BTreeSet<EvictionKey>,
    bytes: usize,
    arrivals: u64,
    /// Per sender: its account nonce as last told, and how many of its
    /// transactions are queued behind a gap.
    senders: HashMap<Address, SenderState, RandomState>,
    /// Queued transactions in total.
    queued: usize,
}

#[derive(Clone, Copy, Debug, Default)]
struct SenderState {
    account_nonce: u64,
    queued: usize,
}

impl Mempool {
    /// An empty pool with `limits`.
    pub fn new(limits: MempoolLimits) -> Mempool {
        Mempool {
            limits,
            by_sender: HashMap::default(),
            by_hash: HashMap::default(),
            evictable: BTreeSet::new(),
            bytes: 0,
            arrivals: 0,
            senders: HashMap::default(),
            queued: 0,
        }
    }

    /// The nonce `sender`'s next transaction would take: past the run of
    /// consecutive nonces this pool holds from `account_nonce` on (what
    /// Ethereum calls the "pending" nonce).
    pub fn pending_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        let mut next = account_nonce;
        if let Some(held) = self.by_sender.get(sender) {
            for nonce in held.range(account_nonce..).map(|(nonce, _)| *nonce) {
                if nonce != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Transactions held that wait on a nonce gap.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Length of `sender`'s ready run: consecutive nonces held from its
    /// account nonce.
    fn ready_run(&self, sender: &Address, account_nonce: u64) -> usize {
        let Some(queue) = self.by_sender.get(sender) else {
            return 0;
        };
        let mut run = 0;
        let mut next = account_nonce;
        while queue.contains_key(&next) {
            run += 1;
            match next.checked_add(1) {
                Some(n) => next = n,
                None => break,
            }
        }
        run
    }

    /// Records `sender`'s account nonce (never moving it back) and recounts
    /// its queued transactions.
    fn recount(&mut self, sender: Address, account_nonce: Option<u64>) {
        let old = self.senders.get(&sender).copied().unwrap_or_default();
        let held = self.by_sender.get(&sender).map_or(0, BTreeMap::len);
        self.queued -= old.queued;
        if held == 0 {
            self.senders.remove(&sender);
            return;
        }
        let nonce = account_nonce.map_or(old.account_nonce, |n| n.max(old.account_nonce));
        let queued = held - self.ready_run(&sender, nonce);
        self.queued += queued;
        self.senders.insert(
            sender,
            SenderState {
                account_nonce: nonce,
                queued,
            },
        );
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Bytes of encoded transactions held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `hash` is held.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Admits `tx`, whose signature has been verified, given the sender
    /// account's current nonce. Returns the hashes it displaced (a replaced
    /// transaction or evicted ones); on error nothing changes.
    pub fn admit(&mut self, tx: VerifiedTx, account_nonce: u64) -> Result<Vec<Hash>, AdmitError> {
        let nonce = tx.terms.nonce;
        let fee = tx.terms.fee;
        if self.by_hash.contains_key(&tx.hash) {
            return Err(AdmitError::Duplicate(tx.hash));
        }
        if nonce < account_nonce {
            return Err(AdmitError::NonceTooLow {
                expected: account_nonce,
                got: nonce,
            });
        }
        if nonce - account_nonce > self.limits.max_nonce_gap {
            let max_gap = self.limits.max_nonce_gap;
            return Err(AdmitError::NonceGapTooLarge {
                expected: account_nonce,
                got: nonce,
                max_gap,
            });
        }
        // The encoded size, counted without encoding.
        let size = borsh::object_length(&tx.signed).unwrap_or(usize::MAX);
        if size > self.limits.max_bytes.get() {
            return Err(AdmitError::TooLarge {
                size,
                limit: self.limits.max_bytes.get(),
            });
        }
        let sender = tx.sender;
        let queue = self.by_sender.get(&sender);
        let replaced = queue.and_then(|q| q.get(&nonce));
        if let Some(held) = replaced {
            if fee <= held.fee() {
                return Err(AdmitError::NonceTaken {
                    nonce,
                    held_fee: held.fee(),
                });
            }
        }
        let mut replaced = replaced.map(|held| (held.tx.hash, held.size, nonce));
        if replaced.is_none() && queue.map_or(0, BTreeMap::len) >= self.limits.max_per_sender.get()
        {
            // A full sender: a transaction nearer to running takes the slot
            // of the sender's furthest one, so a sender whose slots hold only
            // transactions waiting on a gap can still send the one that fills it.
            match queue.and_then(|q| q.iter().next_back()) {
                Some((&furthest, held)) if nonce < furthest => {
                    replaced = Some((held.tx.hash, held.size, furthest));
                }
                _ => {
                    return Err(AdmitError::SenderFull {
                        limit: self.limits.max_per_sender.get(),
                    })
                }
            }
        }
        // Room needed after a replacement frees its slot and bytes.
        let known = self
            .senders
            .get(&sender)
            .map_or(account_nonce, |s| s.account_nonce.max(account_nonce));
        let run_end = known.saturating_add(self.ready_run(&sender, known) as u64);
        if replaced.is_none() && nonce > run_end && self.queued >= self.limits.max_queued.get() {
            return Err(AdmitError::TooManyQueued {
                limit: self.limits.max_queued.get(),
            });
        }
        let (freed_count, freed_bytes) = replaced.map_or((0, 0), |(_, size, _)| (1, size));
        let evictions = self.plan_evictions(
            sender,
            fee,
            1 - freed_count,
            size.saturating_sub(freed_bytes),
        )?;
        let mut displaced = Vec::new();
        if let Some((hash, _, replaced_nonce)) = replaced {
            self.remove(sender, replaced_nonce);
            displaced.push(hash);
        }
        for (victim, victim_nonce) in evictions {
            if let Some(hash) = self.remove(victim, victim_nonce) {
                displaced.push(hash);
            }
        }
        self.insert(tx, size);
        self.recount(sender, Some(account_nonce));
        Ok(displaced)
    }

    /// Which transactions must go to make room for `extra_count` more
    /// transactions and `extra_bytes` more bytes for a transaction paying
    /// `fee`; an error if they cannot all be outbid.
    fn plan_evictions(
        &self,
        sender: Address,
        fee: u128,
        extra_count: usize,
        extra_bytes: usize,
    ) -> Result<Vec<(Address, u64)>, AdmitError> {
        let mut count = self.len() + extra_count;
        let mut bytes = self.bytes + extra_bytes;
        let mut plan = Vec::new();
        // Each sender's tail, cheapest first; after a sender's tail goes, its
        // next transaction becomes evictable, so walk per sender.
        let mut candidates = self.evictable.iter();
        let mut taken_from: HashMap<Address, usize> = HashMap::new();
        let mut frontier: BTreeSet<EvictionKey> = BTreeSet::new();
        while count > self.limits.max_transactions.get() || bytes > self.limits.max_bytes.get() {
            if frontier.is_empty() {
                match candidates.next() {
                    Some(key) => {
                        frontier.insert(*key);
                    }
                    None => return Err(AdmitError::PoolFull { min_fee: fee }),
                }
            }
            let cheapest = *frontier.iter().next().expect("frontier is not empty");
            // Peek the next global candidate too: it may be cheaper.
            if let Some(next) = candidates.clone().next() {
                if next < &cheapest {
                    frontier.insert(*next);
                    candidates.next();
                    continue;
                }
            }
            frontier.remove(&cheapest);
            let (victim_fee, _, victim) = cheapest;
            if victim == sender || victim_fee >= fee {
                return Err(AdmitError::PoolFull {
                    min_fee: victim_fee,
                });
            }
            let queue = &self.by_sender[&victim];
            let skip = taken_from.entry(victim).or_insert(0);
            let Some((&nonce, pending)) = queue.iter().rev().nth(*skip) else {
                continue;
            };
            *skip += 1;
            plan.push((victim, nonce));
            count -= 1;
            bytes -= pending.size;
            if let Some((_, before)) = queue.iter().rev().nth(*skip) {
                frontier.insert((before.fee(), Reverse(before.arrival), victim));
            }
        }
        Ok(plan)
    }

    fn insert(&mut self, tx: VerifiedTx, size: usize) {
        let sender = tx.sender;
        let nonce = tx.terms.nonce;
        self.arrivals += 1;
        self.by_hash.insert(tx.hash, (sender, nonce));
        self.bytes += size;
        self.unmark_tail(sender);
        self.by_sender.entry(sender).or_default().insert(
            nonce,
            Pending {
                tx,
                size,
                arrival: self.arrivals,
            },
        );
        self.mark_tail(sender);
    }

    /// Removes the transaction of `sender` with `nonce`, if held.
    fn remove(&mut self, sender: Address, nonce: u64) -> Option<Hash> {
        self.unmark_tail(sender);
        let queue = self.by_sender.get_mut(&sender)?;
        let removed = queue.remove(&nonce);
        if queue.is_empty() {
            self.by_sender.remove(&sender);
        }
        self.mark_tail(sender);
        let pending = removed?;
        self.by_hash.remove(&pending.tx.hash);
        self.bytes -= pending.size;
        self.recount(sender, None);
        Some(pending.tx.hash)
    }

    fn tail_key(&self, sender: Address) -> Option<EvictionKey> {
        let (_, last) = self.by_sender.get(&sender)?.iter().next_back()?;
        Some((last.fee(), Reverse(last.arrival), sender))
    }

    fn unmark_tail(&mut self, sender: Address) {
        if let Some(key) = self.tail_key(sender) {
            self.evictable.remove(&key);
        }
    }

    fn mark_tail(&mut self, sender: Address) {
        if let Some(key) = self.tail_key(sender) {
            self.evictable.insert(key);
        }
    }

    /// Up to `max` transactions, of at most `max_bytes` encoded bytes in
    /// all, that can run now: for each sender, the run of consecutive nonces
    /// starting at `account_nonce(sender)`, interleaved across senders by fee
    /// (highest first, then earliest admitted).
    pub fn ready(
        &self,
        max: usize,
        max_bytes: usize,
        account_nonce: impl Fn(&Address) -> u64,
    ) -> Vec<VerifiedTx> {
        self.ready_within_gas(max, max_bytes, u64::MAX, account_nonce)
    }

    /// As [`Mempool::ready`], with contract transactions whose gas limits
    /// sum to at most `max_gas` (a block's gas limit): a sender whose next
    /// transaction does not fit contributes nothing more (its later
    /// nonces need that one first).
    pub fn ready_within_gas(
        &self,
        max: usize,
        max_bytes: usize,
        max_gas: u64,
        account_nonce: impl Fn(&Address) -> u64,
    ) -> Vec<VerifiedTx> {
        let mut gas_left = max_gas;
        let mut heads = BinaryHeap::new();
        for (sender, queue) in &self.by_sender {
            let nonce = account_nonce(sender);
            if let Some(first) = queue.get(&nonce) {
                heads.push((first.fee(), Reverse(first.arrival), *sender, nonce));
            }
        }
        let mut out = Vec::with_capacity(max.min(self.len()));
        let mut bytes = 0;
        while out.len() < max {
            let Some((_, _, sender, nonce)) = heads.pop() else {
                break;
            };
            let queue = &self.by_sender[&sender];
            let pending = &queue[&nonce];
            if bytes + pending.size > max_bytes {
                break;
            }
            let gas = pending.tx.tx().terms.action.gas_limit().unwrap_or(0);
            if gas > gas_left {
                continue;
            }
            gas_left -= gas;
            bytes += pending.size;
            out.push(pending.tx.clone());
            if let Some(next) = nonce
                .checked_add(1)
                .and_then(|n| queue.get(&n).map(|p| (n, p)))
            {
                heads.push((next.1.fee(), Reverse(next.1.arrival), sender, next.0));
            }
        }
        out
    }

    /// The transaction `hash`, if held.
    pub fn get(&self, hash: &Hash) -> Option<&PreparedTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender
            .get(sender)?
            .get(nonce)
            .map(|pending| pending.tx.tx())
    }

    /// Removes the transaction `hash` (once it is in a block), if held.
    pub fn remove_hash(&mut self, hash: &Hash) -> bool {
        match self.by_hash.get(hash) {
            Some(&(sender, nonce)) => self.remove(sender, nonce).is_some(),
            None => false,
        }
    }

    /// Drops every transaction (the shard is no longer this node's) and
    /// returns them, each sender's in nonce order (senders by address), so
    /// that they can be handed to the shard's new trackers.
    pub fn clear(&mut self) -> Vec<VerifiedTx> {
        let mut senders: Vec<&Address> = self.by_sender.keys().collect();
        senders.sort_unstable();
        let held: Vec<VerifiedTx> = senders
            .into_iter()
            .flat_map(|sender| self.by_sender[sender].values().map(|p| p.tx.clone()))
            .collect();
        for tx in &held {
            self.remove_hash(&tx.hash);
        }
        held
    }

    /// Drops every transaction of `sender` with a nonce below `account_nonce`
    /// (after a block advanced the account); returns their hashes.
    pub fn prune(&mut self, sender: Address, account_nonce: u64) -> Vec<Hash> {
        let stale: Vec<u64> = match self.by_sender.get(&sender) {
            Some(queue) => queue.range(..account_nonce).map(|(n, _)| *n).collect(),
            None => return Vec::new(),
        };
        let pruned = stale
            .into_iter()
            .filter_map(|nonce| self.remove(sender, nonce))
            .collect();
        self.recount(sender, Some(account_nonce));
        pruned
    }
}
