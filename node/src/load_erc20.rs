//! `atoll load --workload erc20`: the token the load transfers, deployed
//! by dev account 0 and handed out to every account the load uses before
//! the measurement starts.

use crate::rpc::api::AtollApiClient;
use crate::rpc::types::{BlockRef, WaitUntil};
use anyhow::{bail, Context};
use atoll_primitives::{Action, Address, ChainId, KeyPair, Transaction};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::http_client::HttpClient;
use std::time::{Duration, Instant};

/// Gas limit of one ERC-20 transfer (it uses about 35,000 to 52,000).
pub const TRANSFER_GAS: u64 = 60_000;
/// Tokens each account gets.
const GRANT: u128 = 1_000_000_000;

/// The call of `token.transfer(to, amount)`.
pub fn transfer_action(token: Address, to: Address, amount: u128) -> Action {
    Action::Call {
        to: token,
        value: 0,
        input: call_data(
            "transfer(address,uint256)",
            &[Word::address(to), Word::uint(amount)],
        ),
        gas_limit: TRANSFER_GAS,
    }
}

/// The hex of `action` signed by `key` with `nonce`, at price 1.
fn signed_hex(chain_id: ChainId, key: &KeyPair, nonce: u64, action: Action) -> String {
    let signed = Transaction {
        chain_id,
        sender: key.public(),
        nonce,
        fee: 1,
        action,
    }
    .sign(key);
    hex::encode(signed.encode())
}

/// Deploys the shipped ERC-20 from `keys[0]` and sends every other key
/// [`GRANT`] tokens; returns the token once every grant is final.
pub async fn set_up(
    client: &HttpClient,
    chain_id: ChainId,
    keys: &[KeyPair],
    progress: bool,
) -> anyhow::Result<Address> {
    let deployer = &keys[0];
    let mut nonce = client
        .get_account(deployer.address().to_string(), Some(BlockRef::Latest))
        .await
        .context("reading the deployer's nonce")?
        .nonce;
    let token = create_address(&deployer.address(), nonce);
    if progress {
        eprintln!("Deploying an ERC-20 from dev account 0 ({token})…");
    }
    let supply = GRANT * keys.len() as u128;
    let deploy = Action::Create {
        value: 0,
        init_code: Contract::Token.init_code(&[Word::uint(supply)]),
        gas_limit: 1_000_000,
    };
    client
        .send_transaction(
            signed_hex(chain_id, deployer, nonce, deploy),
            Some(WaitUntil::Final),
        )
        .await
        .context("deploying the token")?;
    nonce += 1;
    if progress {
        eprintln!("Granting tokens to {} accounts…", keys.len() - 1);
    }
    // The mempool holds at most 64 pending transactions per sender, so
    // the deployer hands out to up to 63 distributors, which hand out to
    // the rest, each sender at most PER_WAVE at a time.
    let rest: Vec<usize> = (1..keys.len()).collect();
    let distributors = rest.len().min(63);
    let share = (rest.len() - distributors).div_ceil(distributors.max(1));
    let mut plan: Vec<(usize, Vec<(usize, u128)>)> = vec![(0, Vec::new())];
    for d in 0..distributors {
        let own: Vec<usize> = rest[distributors..]
            .iter()
            .copied()
            .skip(d * share)
            .take(share)
            .collect();
        plan[0].1.push((rest[d], GRANT * (1 + own.len() as u128)));
        plan.push((rest[d], own.into_iter().map(|i| (i, GRANT)).collect()));
    }
    // Wave by wave: first the deployer's grants, then the distributors'.
    grant(client, (chain_id, token), keys, &plan[..1], Some(nonce)).await?;
    grant(client, (chain_id, token), keys, &plan[1..], None).await?;
    Ok(token)
}

/// Most transactions one sender has pending at once during the grants.
const PER_WAVE: usize = 60;

/// Sends every grant of `plan` (sender, recipients with amounts), each
/// sender at most [`PER_WAVE`] at a time, and waits until each wave is
/// final. `first_nonce`: the first sender's next nonce if known (the
/// others are read from the node).
async fn grant(
    client: &HttpClient,
    (chain_id, token): (ChainId, Address),
    keys: &[KeyPair],
    plan: &[(usize, Vec<(usize, u128)>)],
    first_nonce: Option<u64>,
) -> anyhow::Result<()> {
    let mut nonces = Vec::with_capacity(plan.len());
    for (i, (sender, _)) in plan.iter().enumerate() {
        let nonce = if let (0, Some(first)) = (i, first_nonce) {
            first
        } else {
            client
                .get_account(keys[*sender].address().to_string(), Some(BlockRef::Latest))
                .await?
                .nonce
        };
        nonces.push(nonce);
    }
    let waves = plan
        .iter()
        .map(|(_, r)| r.len().div_ceil(PER_WAVE))
        .max()
        .unwrap_or(0);
    for wave in 0..waves {
        let mut batch = BatchRequestBuilder::new();
        let mut sent = 0;
        for ((sender, recipients), nonce) in plan.iter().zip(nonces.iter_mut()) {
            for (to, amount) in recipients.iter().skip(wave * PER_WAVE).take(PER_WAVE) {
                let action = transfer_action(token, keys[*to].address(), *amount);
                let hex = signed_hex(chain_id, &keys[*sender], *nonce, action);
                batch.insert("atoll_sendTransaction", jsonrpsee::rpc_params![hex])?;
                *nonce += 1;
                sent += 1;
            }
        }
        if sent == 0 {
            continue;
        }
        let answers = client.batch_request::<String>(batch).await?;
        if let Some(Err(error)) = answers.into_iter().find(|a| a.is_err()) {
            bail!("a grant was refused: {}", error.message());
        }
        // The wave is in once every sender's final nonce reached its last.
        let deadline = Instant::now() + Duration::from_secs(120);
        for ((sender, _), nonce) in plan.iter().zip(&nonces) {
            loop {
                let account = client
                    .get_account(keys[*sender].address().to_string(), Some(BlockRef::Final))
                    .await?;
                if account.nonce >= *nonce {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the grants were not final after 120 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(())
}
