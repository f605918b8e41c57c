//! `atoll load --workload erc20|amm`: the contracts the load calls,
//! deployed and set up (tokens handed out, pools funded and approved)
//! before the measurement starts.
//!
//! On each shard, the first dev account there deploys the shard's
//! contracts, which live on that shard (a contract lives on its creator's).
//! Each sender is given one contract to call: one on its own shard, or,
//! with probability `--cross-shard-ratio`, one on another shard, which it
//! then calls across shards (a call receipt there, a refund back).

use super::keys::LoadKey;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::BlockRef;
use anyhow::{bail, Context};
use atoll_primitives::{Action, Address, ChainId, Hash, ShardLayout};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use atoll_shard::workload::defi::swap_data;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::http_client::HttpClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Gas limit of one ERC-20 transfer or approval (they use about 35,000 to
/// 52,000).
pub const TRANSFER_GAS: u64 = 60_000;
/// Gas limit of one swap (it uses about 70,000 to 90,000).
pub const SWAP_GAS: u64 = 150_000;
/// Tokens of each kind each account gets.
const GRANT: u128 = 1_000_000_000;
/// Tokens of each kind in each pool.
const LIQUIDITY: u128 = GRANT * 1_000;
/// Tokens one swap puts in: small beside the pool, so prices barely move.
const SWAP_IN: u128 = 1_000;

/// What the load's contract transactions call.
#[derive(Clone, Debug)]
pub struct Targets {
    /// ERC-20 transfers, or swaps.
    pub kind: TargetKind,
    /// Per sender: the token it transfers, or the pool it swaps on (which
    /// it approved during the set-up).
    pub of_sender: Vec<Address>,
    /// Per sender: whether that contract lives on another shard.
    pub crosses: Vec<bool>,
}

/// The contract workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Transfers of 1 unit of a token.
    Token,
    /// Swaps in a random direction.
    Pool,
}

impl Targets {
    /// The action of account `sender` toward account `to`.
    pub fn action(&self, sender: usize, to: Address, rng: &mut impl Rng) -> Action {
        let target = self.of_sender[sender];
        match self.kind {
            TargetKind::Token => transfer_action(target, to, 1),
            TargetKind::Pool => Action::Call {
                to: target,
                value: 0,
                input: swap_data(SWAP_IN, rng.gen(), 0),
                gas_limit: SWAP_GAS,
            },
        }
    }
}

/// The call of `token.transfer(to, amount)`.
pub fn transfer_action(token: Address, to: Address, amount: u128) -> Action {
    token_call(
        token,
        "transfer(address,uint256)",
        &[Word::address(to), Word::uint(amount)],
    )
}

fn token_call(token: Address, signature: &str, args: &[Word]) -> Action {
    Action::Call {
        to: token,
        value: 0,
        input: call_data(signature, args),
        gas_limit: TRANSFER_GAS,
    }
}

/// What the set-up sends: per sender (an index into the keys), its
/// actions in nonce order.
type Plan = Vec<(usize, Vec<Action>)>;

/// Which shard's contracts each sender calls: its own, or with probability
/// `ratio` another (chosen at random; seeded, so a run can be repeated).
/// Also the deployer of each shard that has one: its first key.
struct Assignment {
    /// Per sender: the shard whose contract it calls.
    shard_of_target: Vec<u16>,
    /// Per sender: its own shard.
    home: Vec<u16>,
    /// Per shard with keys: its deployer (an index into the keys).
    deployers: BTreeMap<u16, usize>,
}

impl Assignment {
    fn new(keys: &[LoadKey], layout: &ShardLayout, ratio: f64) -> Assignment {
        let home: Vec<u16> = keys
            .iter()
            .map(|k| layout.shard_of(&k.address()).0)
            .collect();
        let mut deployers = BTreeMap::new();
        for (i, shard) in home.iter().enumerate() {
            deployers.entry(*shard).or_insert(i);
        }
        let shards: Vec<u16> = deployers.keys().copied().collect();
        let mut rng = StdRng::seed_from_u64(0xa770);
        let shard_of_target = home
            .iter()
            .enumerate()
            .map(|(i, own)| {
                let others: Vec<u16> = shards.iter().copied().filter(|s| s != own).collect();
                let deployer = deployers[own] == i;
                if !deployer && !others.is_empty() && rng.gen_bool(ratio) {
                    others[rng.gen_range(0..others.len())]
                } else {
                    *own
                }
            })
            .collect();
        Assignment {
            shard_of_target,
            home,
            deployers,
        }
    }

    /// The senders that call shard `shard`'s contracts, the deployer
    /// excluded.
    fn users(&self, shard: u16) -> Vec<usize> {
        let deployer = self.deployers[&shard];
        (0..self.home.len())
            .filter(|i| self.shard_of_target[*i] == shard && *i != deployer)
            .collect()
    }
}

/// Deploys an ERC-20 from `deployer`, hands each of `users` [`GRANT`], and
/// leaves the deployer `GRANT + reserve`. The hand-out goes through
/// distributors on the deployer's shard, so none of it crosses shards.
async fn token(
    sender: &Sender<'_>,
    (deployer, users, home): (usize, &[usize], &[u16]),
    reserve: u128,
    progress: bool,
) -> anyhow::Result<Address> {
    let keys = sender.keys;
    let nonce = sender.nonce(deployer).await?;
    let token = create_address(&keys[deployer].address(), nonce);
    if progress {
        eprintln!(
            "Deploying an ERC-20 ({token}) on shard {} and granting it to {} accounts…",
            home[deployer],
            users.len()
        );
    }
    let supply = GRANT * (users.len() as u128 + 1) + reserve;
    let deploy = Action::Create {
        value: 0,
        init_code: Contract::Token.init_code(&[Word::uint(supply)]),
        gas_limit: 1_000_000,
    };
    // The mempool holds at most 64 pending transactions per sender, so
    // the deployer hands out to up to 63 distributors on its shard, which
    // hand out to the rest.
    let (local, remote): (Vec<usize>, Vec<usize>) =
        users.iter().partition(|i| home[**i] == home[deployer]);
    let distributors = local.len().min(63);
    let rest: Vec<usize> = local[distributors..]
        .iter()
        .chain(&remote)
        .copied()
        .collect();
    let share = rest.len().div_ceil(distributors.max(1));
    let grant = |to: usize, amount: u128| transfer_action(token, keys[to].address(), amount);
    let mut first: Plan = vec![(deployer, vec![deploy])];
    let mut second: Plan = Vec::new();
    for (d, distributor) in local.iter().take(distributors).enumerate() {
        let own: Vec<usize> = rest.iter().copied().skip(d * share).take(share).collect();
        first[0]
            .1
            .push(grant(*distributor, GRANT * (1 + own.len() as u128)));
        second.push((
            *distributor,
            own.into_iter().map(|i| grant(i, GRANT)).collect(),
        ));
    }
    if distributors == 0 {
        // No other account on the deployer's shard: it hands out itself.
        first[0].1.extend(rest.iter().map(|i| grant(*i, GRANT)));
    }
    sender.send(&first).await.context("deploying the token")?;
    sender.send(&second).await.context("granting the token")?;
    Ok(token)
}

/// Deploys the shipped ERC-20 on every shard and hands it to the accounts
/// that call it; returns each sender's token once every grant is final.
pub async fn set_up_erc20(
    client: &HttpClient,
    chain_id: ChainId,
    keys: &[LoadKey],
    (layout, ratio): (&ShardLayout, f64),
    progress: bool,
) -> anyhow::Result<Targets> {
    let sender = Sender::new(client, chain_id, keys);
    let assignment = Assignment::new(keys, layout, ratio);
    let mut tokens = BTreeMap::new();
    for (&shard, &deployer) in &assignment.deployers {
        let users = assignment.users(shard);
        let setup = (deployer, &users[..], &assignment.home[..]);
        tokens.insert(shard, token(&sender, setup, 0, progress).await?);
    }
    Ok(targets(TargetKind::Token, &assignment, |shard, _| {
        tokens[&shard]
    }))
}

/// Each sender's target, and whether it crosses shards; `pick(shard, n)`
/// is the contract of `shard` for its `n`th user (in the order of
/// [`Assignment::users`]); a deployer calls its own shard's first.
fn targets(
    kind: TargetKind,
    assignment: &Assignment,
    pick: impl Fn(u16, usize) -> Address,
) -> Targets {
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let (of_sender, crosses) = (0..assignment.home.len())
        .map(|i| {
            let (target, home) = (assignment.shard_of_target[i], assignment.home[i]);
            if assignment.deployers[&home] == i {
                return (pick(home, 0), false);
            }
            let n = seen.entry(target).or_insert(0);
            *n += 1;
            (pick(target, *n - 1), target != home)
        })
        .unzip();
    Targets {
        kind,
        of_sender,
        crosses,
    }
}

/// On every shard: deploys two tokens (each handed to the accounts that
/// use the shard) and `pools` pairs of them, funded with [`LIQUIDITY`] of
/// each; every user approves its pool on both tokens (across shards for
/// those assigned another shard's pools).
pub async fn set_up_amm(
    client: &HttpClient,
    chain_id: ChainId,
    keys: &[LoadKey],
    (layout, ratio, pools): (&ShardLayout, f64, usize),
    progress: bool,
) -> anyhow::Result<Targets> {
    let sender = Sender::new(client, chain_id, keys);
    let assignment = Assignment::new(keys, layout, ratio);
    let mut pairs_of = BTreeMap::new();
    let mut approvals: Plan = Vec::new();
    for (&shard, &deployer) in &assignment.deployers {
        let users = assignment.users(shard);
        let setup = (deployer, &users[..], &assignment.home[..]);
        let reserve = LIQUIDITY * pools as u128;
        let t0 = token(&sender, setup, reserve, progress).await?;
        let t1 = token(&sender, setup, reserve, progress).await?;
        if progress {
            eprintln!("Deploying {pools} pools on shard {shard} and adding liquidity…");
        }
        let nonce = sender.nonce(deployer).await?;
        let address = keys[deployer].address();
        let pairs: Vec<Address> = (0..pools as u64)
            .map(|i| create_address(&address, nonce + i))
            .collect();
        let mut actions: Vec<Action> = pairs
            .iter()
            .map(|_| Action::Create {
                value: 0,
                init_code: Contract::Pair.init_code(&[Word::address(t0), Word::address(t1)]),
                gas_limit: 3_000_000,
            })
            .collect();
        let approve = |token: Address, pair: Address| {
            token_call(
                token,
                "approve(address,uint256)",
                &[Word::address(pair), Word::max()],
            )
        };
        for pair in &pairs {
            actions.push(approve(t0, *pair));
            actions.push(approve(t1, *pair));
            actions.push(Action::Call {
                to: *pair,
                value: 0,
                input: call_data(
                    "addLiquidity(uint256,uint256)",
                    &[Word::uint(LIQUIDITY), Word::uint(LIQUIDITY)],
                ),
                gas_limit: SWAP_GAS,
            });
        }
        sender
            .send(&[(deployer, actions)])
            .await
            .context("funding the pools")?;
        for (n, user) in users.iter().enumerate() {
            let pair = pairs[n % pools];
            approvals.push((*user, vec![approve(t0, pair), approve(t1, pair)]));
        }
        pairs_of.insert(shard, (pairs, deployer));
    }
    if progress {
        eprintln!("Approving the pools for {} traders…", approvals.len());
    }
    sender
        .send(&approvals)
        .await
        .context("approving the pools")?;
    // A shard's deployer approved all its pools when it funded them.
    Ok(targets(TargetKind::Pool, &assignment, |shard, n| {
        let (pairs, _) = &pairs_of[&shard];
        pairs[n % pairs.len()]
    }))
}

/// Most transactions one sender has pending at once during the set-up.
const PER_WAVE: usize = 60;
/// Most transactions in one JSON-RPC batch.
const PER_BATCH: usize = 1_000;

/// Sends set-up transactions and waits for them.
struct Sender<'a> {
    client: &'a HttpClient,
    chain_id: ChainId,
    keys: &'a [LoadKey],
}

impl<'a> Sender<'a> {
    fn new(client: &'a HttpClient, chain_id: ChainId, keys: &'a [LoadKey]) -> Sender<'a> {
        Sender {
            client,
            chain_id,
            keys,
        }
    }

    /// The next nonce of key `who`.
    async fn nonce(&self, who: usize) -> anyhow::Result<u64> {
        let address = self.keys[who].address().to_string();
        Ok(self
            .client
            .get_account(address, Some(BlockRef::Latest))
            .await
            .context("reading a nonce")?
            .nonce)
    }

    /// Sends every action of `plan`, each sender at most [`PER_WAVE`] at a
    /// time, and waits until each wave is final and its calls to other
    /// shards settled (a sender's calls to one shard run there in order, so
    /// its last one settling means all did). A failure of a sender's last
    /// set-up transaction of a wave (a revert) stops the load, since what
    /// it would measure is then not what it says.
    async fn send(&self, plan: &[(usize, Vec<Action>)]) -> anyhow::Result<()> {
        let mut nonces = Vec::with_capacity(plan.len());
        for (who, _) in plan {
            nonces.push(self.nonce(*who).await?);
        }
        let waves = plan
            .iter()
            .map(|(_, actions)| actions.len().div_ceil(PER_WAVE))
            .max()
            .unwrap_or(0);
        for wave in 0..waves {
            let mut signed = Vec::new();
            let mut last = Vec::new();
            for ((who, actions), nonce) in plan.iter().zip(nonces.iter_mut()) {
                let mut hash = None;
                for action in actions.iter().skip(wave * PER_WAVE).take(PER_WAVE) {
                    let tx = self.keys[*who].sign(self.chain_id, *nonce, action.clone());
                    hash = Some(tx.hash());
                    signed.push(hex::encode(tx.encode()));
                    *nonce += 1;
                }
                last.extend(hash);
            }
            for chunk in signed.chunks(PER_BATCH) {
                let mut batch = BatchRequestBuilder::new();
                for hex in chunk {
                    batch.insert("atoll_sendTransaction", jsonrpsee::rpc_params![hex])?;
                }
                let answers = self.client.batch_request::<String>(batch).await?;
                if let Some(Err(error)) = answers.into_iter().find(|a| a.is_err()) {
                    bail!("a set-up transaction was refused: {}", error.message());
                }
            }
            self.wait_final(plan, &nonces).await?;
            self.wait_settled(&last).await?;
        }
        Ok(())
    }

    /// Waits until each of `hashes` (final) succeeded, or, for a call to
    /// another shard, its call ran there and succeeded and its refund is
    /// final; fails on the first that did not succeed.
    async fn wait_settled(&self, hashes: &[Hash]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut waiting: Vec<Hash> = hashes.to_vec();
        while !waiting.is_empty() {
            let mut still = Vec::new();
            for chunk in waiting.chunks(PER_BATCH) {
                let mut batch = BatchRequestBuilder::new();
                for hash in chunk {
                    let hash = format!("0x{hash}");
                    batch.insert("atoll_getTransactionStatus", jsonrpsee::rpc_params![hash])?;
                }
                let answers = self
                    .client
                    .batch_request::<crate::rpc::types::TxStatus>(batch)
                    .await?;
                for (hash, answer) in chunk.iter().zip(answers) {
                    let status = answer
                        .map_err(|e| anyhow::anyhow!("transaction status: {}", e.message()))?;
                    match settled(&status) {
                        Some(Ok(())) => {}
                        Some(Err(why)) => bail!("set-up transaction {hash} failed: {why}"),
                        None => still.push(*hash),
                    }
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                if Instant::now() > deadline {
                    bail!(
                        "{} set-up calls to other shards had not settled after 120 s",
                        waiting.len()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Waits until every sender of `plan` has its final nonce at `nonces`.
    async fn wait_final(
        &self,
        plan: &[(usize, Vec<Action>)],
        nonces: &[u64],
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        for ((who, _), nonce) in plan.iter().zip(nonces) {
            loop {
                let account = self
                    .client
                    .get_account(self.keys[*who].address().to_string(), Some(BlockRef::Final))
                    .await?;
                if account.nonce >= *nonce {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the set-up transactions were not final after 120 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}

/// Whether a final set-up transaction is done: `None` while a call it sent
/// to another shard has not settled; `Some(Err)`: it (or its call) failed.
fn settled(status: &crate::rpc::types::TxStatus) -> Option<Result<(), String>> {
    let outcome = status.outcome.as_ref()?;
    let sent = outcome
        .contract
        .as_ref()
        .is_some_and(|c| c.status == "sent");
    if !sent {
        return Some(match outcome.success {
            true => Ok(()),
            false => Err(outcome.message.clone().unwrap_or_default()),
        });
    }
    let call = status.receipts.iter().find_map(|r| r.call.as_ref())?;
    if !call.success {
        return Some(Err(call.message.clone().unwrap_or_default()));
    }
    let refund_final = status.receipts.len() >= 2
        && status.receipts.last().is_some_and(|r| {
            r.status == crate::rpc::types::ReceiptState::Final && r.forwarded_to.is_none()
        });
    refund_final.then_some(Ok(()))
}
