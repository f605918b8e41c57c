//! Signing the load before the clock starts, and sending it in batches.

use super::keys::LoadKey;
use super::routes::Routes;
use super::track::Tracker;
use super::workloads::Targets;
use crate::rpc::error::code_name;
use atoll_primitives::{Action, ChainId, Hash, ShardLayout};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::http_client::HttpClient;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What the generated transfers look like.
pub struct Plan {
    pub chain_id: ChainId,
    pub layout: ShardLayout,
    pub cross_shard_ratio: f64,
    /// `Some`: contract calls (ERC-20 transfers, swaps) instead of native
    /// transfers.
    pub targets: Option<Targets>,
}

/// Signs `total` transfers: sender `k % accounts` with consecutive nonces;
/// the recipient another account, on another shard with probability
/// `cross_shard_ratio` (when there is one); amount 1, fee or price 1. Returns
/// each one's `atoll_sendTransaction` parameters, already JSON, and the
/// hashes with whether each crosses shards (a contract call: whether its
/// contract lives on another shard than its sender).
pub fn sign_all(
    plan: &Plan,
    keys: &[LoadKey],
    nonces: &[u64],
    total: usize,
) -> (Vec<Params>, (Vec<Hash>, Vec<bool>)) {
    let accounts = keys.len();
    let shard_of: Vec<_> = keys
        .iter()
        .map(|k| plan.layout.shard_of(&k.address()))
        .collect();
    // Per shard: its accounts, and everyone else's.
    let mut home: BTreeMap<_, Vec<usize>> = BTreeMap::new();
    for (i, shard) in shard_of.iter().enumerate() {
        home.entry(*shard).or_default().push(i);
    }
    let away: BTreeMap<_, Vec<usize>> = home
        .keys()
        .map(|&shard| {
            let others = (0..accounts).filter(|&i| shard_of[i] != shard).collect();
            (shard, others)
        })
        .collect();
    (0..total)
        .into_par_iter()
        .map(|k| {
            let sender = k % accounts;
            let mut rng = StdRng::seed_from_u64(k as u64);
            let shard = shard_of[sender];
            let cross = !away[&shard].is_empty() && rng.gen_bool(plan.cross_shard_ratio);
            let to = if cross || home[&shard].len() < 2 {
                let pool = if away[&shard].is_empty() {
                    &home[&shard]
                } else {
                    &away[&shard]
                };
                pool[rng.gen_range(0..pool.len())]
            } else {
                let pool = &home[&shard];
                loop {
                    let pick = pool[rng.gen_range(0..pool.len())];
                    if pick != sender {
                        break pick;
                    }
                }
            };
            let action = match &plan.targets {
                None => Action::Transfer {
                    to: keys[to].address(),
                    amount: 1,
                },
                Some(targets) => targets.action(sender, keys[to].address(), &mut rng),
            };
            let nonce = nonces[sender] + (k / accounts) as u64;
            let signed = keys[sender].sign(plan.chain_id, nonce, action);
            let crosses = match &plan.targets {
                None => shard_of[to] != shard_of[sender],
                Some(targets) => targets.crosses[sender],
            };
            (Params::new(&signed.encode()), (signed.hash(), crosses))
        })
        .unzip()
}

/// The parameters of one `atoll_sendTransaction` call (the transaction's
/// hex, answer once admitted), serialized before the clock starts: a batch
/// of 500 then costs the generator a copy of each, not a JSON escape scan
/// of every hex digit, which took CPU from the node on the same machine.
pub struct Params(Box<RawValue>);

impl Params {
    fn new(encoded: &[u8]) -> Params {
        let json = format!("[\"0x{}\",\"none\"]", const_hex::encode(encoded));
        Params(RawValue::from_string(json).expect("hex digits in quotes are JSON"))
    }
}

impl ToRpcParams for &Params {
    fn to_rpc_params(self) -> Result<Option<Box<RawValue>>, serde_json::Error> {
        Ok(Some(self.0.to_owned()))
    }
}

/// Sends the transactions of `range`, each shard's to its endpoint (with
/// one endpoint per shard, batches take turns by `spread`), and moves a
/// shard to the next endpoint when its endpoint does not track it.
pub async fn send_batch(
    routes: &Routes,
    (shard_of_tx, spread): (&[u16], usize),
    params: &[Params],
    range: std::ops::Range<usize>,
    tracker: &Mutex<Tracker>,
    errors: &Mutex<BTreeMap<String, u64>>,
    admitted: &AtomicU64,
) {
    let mut by_shard: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for i in range {
        by_shard.entry(shard_of_tx[i]).or_default().push(i);
    }
    for (shard, mut indices) in by_shard {
        let shard = usize::from(shard);
        for _ in 0..=routes.clients.len() {
            let route = routes.route(shard);
            let client = if routes.everywhere {
                &routes.clients[spread % routes.clients.len()]
            } else {
                routes.client(shard)
            };
            indices = send_to(client, params, &indices, tracker, errors, admitted).await;
            if indices.is_empty() {
                break;
            }
            routes.moved(shard, route);
        }
        if !indices.is_empty() {
            *errors.lock().entry("shard_not_tracked".into()).or_default() += indices.len() as u64;
        }
    }
}

/// Sends `indices`; returns those refused with 1021 (not tracked there).
async fn send_to(
    client: &HttpClient,
    params: &[Params],
    indices: &[usize],
    tracker: &Mutex<Tracker>,
    errors: &Mutex<BTreeMap<String, u64>>,
    admitted: &AtomicU64,
) -> Vec<usize> {
    let mut refused = Vec::new();
    let mut batch = BatchRequestBuilder::new();
    for call in indices.iter().map(|i| &params[*i]) {
        batch
            .insert("atoll_sendTransaction", call)
            .expect("the parameters are JSON already");
    }
    let sent = Instant::now();
    {
        let mut tracker = tracker.lock();
        for i in indices {
            tracker.sent[*i].get_or_insert(sent);
        }
    }
    // The answers are the hashes the generator already has: not kept.
    match client.batch_request::<IgnoredAny>(batch).await {
        Ok(answers) => {
            let mut ok = 0;
            let mut errors = errors.lock();
            let mut tracker = tracker.lock();
            for (&i, answer) in indices.iter().zip(answers) {
                match answer {
                    Ok(_) => ok += 1,
                    Err(e) if e.code() == crate::rpc::error::SHARD_NOT_TRACKED => refused.push(i),
                    Err(e) => {
                        tracker.sent[i] = None;
                        *errors.entry(code_name(e.code()).into()).or_default() += 1;
                    }
                }
            }
            admitted.fetch_add(ok, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(%e, "a batch failed");
            let mut tracker = tracker.lock();
            for i in indices {
                tracker.sent[*i] = None;
            }
            *errors.lock().entry("transport".into()).or_default() += indices.len() as u64;
        }
    }
    refused
}
