//! `atoll load --workload erc20|amm`: the contracts the load calls,
//! deployed by dev account 0 and set up (tokens handed out, pools funded
//! and approved) before the measurement starts.

use super::keys::LoadKey;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::BlockRef;
use anyhow::{bail, Context};
use atoll_primitives::{Action, Address, ChainId};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use atoll_shard::workload::defi::swap_data;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::http_client::HttpClient;
use rand::Rng;
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
pub enum Targets {
    /// Transfers of 1 unit of this token.
    Token(Address),
    /// Swaps on these pools: account `i` swaps on pool `i % len`, which it
    /// approved during the set-up, in a random direction.
    Pools(Vec<Address>),
}

impl Targets {
    /// The action of account `sender` toward account `to`.
    pub fn action(&self, sender: usize, to: Address, rng: &mut impl Rng) -> Action {
        match self {
            Targets::Token(token) => transfer_action(*token, to, 1),
            Targets::Pools(pools) => Action::Call {
                to: pools[sender % pools.len()],
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

/// The hex of `action` signed by `key` with `nonce`, at price 1.
fn signed_hex(chain_id: ChainId, key: &LoadKey, nonce: u64, action: Action) -> String {
    hex::encode(key.sign(chain_id, nonce, action).encode())
}

/// What the set-up sends: per sender (an index into the keys), its
/// actions in nonce order.
type Plan = Vec<(usize, Vec<Action>)>;

/// Deploys an ERC-20 from `keys[0]`, hands every other key [`GRANT`], and
/// leaves the deployer `GRANT + reserve`.
async fn token(sender: &Sender<'_>, reserve: u128, progress: bool) -> anyhow::Result<Address> {
    let keys = sender.keys;
    let nonce = sender.nonce(0).await?;
    let token = create_address(&keys[0].address(), nonce);
    if progress {
        eprintln!(
            "Deploying an ERC-20 from dev account 0 ({token}) and granting it to {} accounts…",
            keys.len() - 1
        );
    }
    let supply = GRANT * keys.len() as u128 + reserve;
    let deploy = Action::Create {
        value: 0,
        init_code: Contract::Token.init_code(&[Word::uint(supply)]),
        gas_limit: 1_000_000,
    };
    // The mempool holds at most 64 pending transactions per sender, so
    // the deployer hands out to up to 63 distributors, which hand out to
    // the rest.
    let rest: Vec<usize> = (1..keys.len()).collect();
    let distributors = rest.len().min(63);
    let share = (rest.len() - distributors).div_ceil(distributors.max(1));
    let grant = |to: usize, amount: u128| transfer_action(token, keys[to].address(), amount);
    let mut first: Plan = vec![(0, vec![deploy])];
    let mut second: Plan = Vec::new();
    for d in 0..distributors {
        let own: Vec<usize> = rest[distributors..]
            .iter()
            .copied()
            .skip(d * share)
            .take(share)
            .collect();
        first[0]
            .1
            .push(grant(rest[d], GRANT * (1 + own.len() as u128)));
        second.push((rest[d], own.into_iter().map(|i| grant(i, GRANT)).collect()));
    }
    sender.send(&first).await.context("deploying the token")?;
    sender.send(&second).await.context("granting the token")?;
    Ok(token)
}

/// Deploys the shipped ERC-20 from `keys[0]` and sends every other key
/// [`GRANT`] tokens; returns the token once every grant is final.
pub async fn set_up_erc20(
    client: &HttpClient,
    chain_id: ChainId,
    keys: &[LoadKey],
    progress: bool,
) -> anyhow::Result<Targets> {
    let sender = Sender::new(client, chain_id, keys);
    Ok(Targets::Token(token(&sender, 0, progress).await?))
}

/// Deploys two tokens (each handed to every key) and `pools` pairs of
/// them from `keys[0]`, which funds every pool with [`LIQUIDITY`] of each;
/// every other key approves its pool on both tokens.
pub async fn set_up_amm(
    client: &HttpClient,
    chain_id: ChainId,
    keys: &[LoadKey],
    pools: usize,
    progress: bool,
) -> anyhow::Result<Targets> {
    let sender = Sender::new(client, chain_id, keys);
    let reserve = LIQUIDITY * pools as u128;
    let t0 = token(&sender, reserve, progress).await?;
    let t1 = token(&sender, reserve, progress).await?;
    if progress {
        eprintln!("Deploying {pools} pools and adding liquidity…");
    }
    let nonce = sender.nonce(0).await?;
    let deployer = keys[0].address();
    let pairs: Vec<Address> = (0..pools as u64)
        .map(|i| create_address(&deployer, nonce + i))
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
        .send(&[(0, actions)])
        .await
        .context("funding the pools")?;
    if progress {
        eprintln!("Approving the pools for {} traders…", keys.len() - 1);
    }
    let approvals: Plan = (1..keys.len())
        .map(|i| {
            let pair = pairs[i % pools];
            (i, vec![approve(t0, pair), approve(t1, pair)])
        })
        .collect();
    sender
        .send(&approvals)
        .await
        .context("approving the pools")?;
    Ok(Targets::Pools(pairs))
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
    /// time, and waits until each wave is final. Any failure of a set-up
    /// transaction in its block (a revert) stops the load, since what it
    /// would measure is then not what it says.
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
            for ((who, actions), nonce) in plan.iter().zip(nonces.iter_mut()) {
                for action in actions.iter().skip(wave * PER_WAVE).take(PER_WAVE) {
                    let hex = signed_hex(self.chain_id, &self.keys[*who], *nonce, action.clone());
                    signed.push(hex);
                    *nonce += 1;
                }
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
