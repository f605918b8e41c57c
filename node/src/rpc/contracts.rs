//! The contract queries of the API: a read-only call at the head, a gas
//! estimate, and code and storage reads. Calls run on the blocking pool,
//! a few at a time (each may run up to the transaction gas cap).

use super::error::{self, error, internal, invalid_params};
use super::outcomes::contract_outcome;
use super::types::{parse_address, parse_data, CallArgs, Outcome};
use crate::query::{CallSite, NodeView};
use atoll_primitives::{Address, ContractOutcome};
use atoll_shard::execution::evm::{self, CallRequest, MAX_TX_GAS};
use jsonrpsee::core::RpcResult;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Calls and estimates run at once; more are refused with `BUSY`.
pub const MAX_CONCURRENT_CALLS: usize = 4;

/// Largest call data or creation code a call may carry (a block's size
/// bounds what a transaction could carry anyway).
const MAX_CALL_INPUT: usize = 128 * 1024;

/// Runs the contract queries of one node.
#[derive(Clone)]
pub struct Contracts {
    node: NodeView,
    running: Arc<Semaphore>,
}

impl Contracts {
    pub fn new(node: NodeView) -> Contracts {
        Contracts {
            node,
            running: Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS)),
        }
    }

    /// `atoll_call`: runs `args` at the head of the callee's shard.
    pub async fn call(&self, args: CallArgs) -> RpcResult<Outcome> {
        let (site, request) = self.request(&args)?;
        match self.run_call(site, request).await? {
            Ok(outcome) => Ok(uncharged(&outcome)),
            Err(reason) => Err(error(
                error::INVALID_TRANSACTION,
                format!("invalid call: {reason}"),
            )),
        }
    }

    /// `atoll_estimateGas`: the least gas limit with which `args` succeeds.
    pub async fn estimate_gas(&self, args: CallArgs) -> RpcResult<u64> {
        let (site, request) = self.request(&args)?;
        let cap = request.gas_limit;
        match self.run_estimate(site, request).await? {
            Ok(gas) => Ok(gas),
            Err(Ok(outcome)) => {
                let shown = uncharged(&outcome);
                Err(error(
                    error::CALL_FAILED,
                    format!(
                        "it fails with {cap} gas: {}",
                        shown.message.unwrap_or_else(|| "it did not succeed".into())
                    ),
                ))
            }
            Err(Err(reason)) => Err(error(
                error::INVALID_TRANSACTION,
                format!("invalid call: {reason}"),
            )),
        }
    }

    /// Runs `request` at the head of `site` on the blocking pool, a few at
    /// a time: what it did, or why the EVM refused it as a transaction.
    pub(super) async fn run_call(
        &self,
        site: CallSite,
        request: CallRequest,
    ) -> RpcResult<Result<ContractOutcome, String>> {
        let _permit = self.permit()?;
        tokio::task::spawn_blocking(move || {
            site.at_head(|context, head| evm::call(context, head, &request))
        })
        .await
        .map_err(internal)??
        .map_err(internal)
    }

    /// The least gas limit up to `request`'s with which it succeeds at the
    /// head of `site`; or what it did with all of it, or why the EVM
    /// refused it.
    pub(super) async fn run_estimate(
        &self,
        site: CallSite,
        request: CallRequest,
    ) -> RpcResult<Result<u64, Result<ContractOutcome, String>>> {
        let cap = request.gas_limit;
        let _permit = self.permit()?;
        tokio::task::spawn_blocking(move || {
            site.at_head(|context, head| evm::estimate_gas(context, head, &request, cap))
        })
        .await
        .map_err(internal)??
        .map_err(internal)
    }

    /// `atoll_getCode`: the code at `address` (`0x` if none).
    pub fn code(&self, address: &str) -> RpcResult<String> {
        let address: Address = address.parse().map_err(invalid_params)?;
        let code = self.node.code(&address)?.unwrap_or_default();
        Ok(format!("0x{}", hex::encode(code)))
    }

    /// `atoll_getStorageAt`: the 32-byte word in `slot` of `address`.
    pub fn storage(&self, address: &str, slot: &str) -> RpcResult<String> {
        let address: Address = address.parse().map_err(invalid_params)?;
        let slot = word(slot).map_err(invalid_params)?;
        Ok(format!(
            "0x{}",
            hex::encode(self.node.storage_at(&address, slot)?)
        ))
    }

    fn permit(&self) -> RpcResult<tokio::sync::SemaphorePermit<'_>> {
        self.running.try_acquire().map_err(|_| {
            error(
                error::BUSY,
                format!("{MAX_CONCURRENT_CALLS} calls are already running; retry shortly"),
            )
        })
    }

    /// The shard that runs `args` and the request, checked.
    fn request(&self, args: &CallArgs) -> RpcResult<(CallSite, CallRequest)> {
        let address = |field, text: &Option<String>| {
            text.as_deref()
                .map(|t| parse_address(field, t).map_err(invalid_params))
                .transpose()
        };
        let value = match &args.value {
            None => 0,
            Some(text) => text.parse().map_err(|_| {
                invalid_params(format!("value: {text:?} is not a whole number below 2^128"))
            })?,
        };
        self.checked(Call {
            from: address("from", &args.from)?.unwrap_or(Address([0; 20])),
            to: address("to", &args.to)?,
            value,
            input: match &args.data {
                None => Vec::new(),
                Some(text) => parse_data("data", text).map_err(invalid_params)?,
            },
            gas: args.gas,
        })
    }

    /// Where `call` runs and the request, its input and gas checked: a gas
    /// limit asked for may not pass the cap (the most a transaction may
    /// use); without one, the call gets the cap.
    pub(super) fn checked(&self, call: Call) -> RpcResult<(CallSite, CallRequest)> {
        let Call {
            from,
            to,
            value,
            input,
            gas,
        } = call;
        if input.len() > MAX_CALL_INPUT {
            return Err(invalid_params(format!(
                "data: {} bytes is more than the {MAX_CALL_INPUT} a call may carry",
                input.len()
            )));
        }
        let site = self.node.call_site(&from, to.as_ref(), &input)?;
        let cap = MAX_TX_GAS.min(site.gas().block_gas_limit);
        let gas_limit = gas.unwrap_or(cap);
        if gas_limit > cap {
            return Err(invalid_params(format!(
                "gas: {gas_limit} is above the most a transaction may use ({cap})"
            )));
        }
        let request = CallRequest {
            from,
            to,
            value,
            input,
            gas_limit,
        };
        Ok((site, request))
    }
}

/// A call or creation as a client asked for it, before its checks.
pub(super) struct Call {
    /// The caller.
    pub from: Address,
    /// The callee; `None` runs `input` as creation code.
    pub to: Option<Address>,
    /// Value sent with it.
    pub value: u128,
    /// Call data or creation code.
    pub input: Vec<u8>,
    /// The gas limit asked for (`None`: the most a transaction may use).
    pub gas: Option<u64>,
}

/// The API's view of a call's outcome. Nothing is charged for a call, so
/// the message leaves out what a transaction would have paid.
pub(super) fn uncharged(outcome: &ContractOutcome) -> Outcome {
    let mut shown = contract_outcome(outcome);
    shown.message = shown.message.map(|m| match m.rsplit_once("; ") {
        Some((what, _)) => what.to_string(),
        None => m,
    });
    shown
}

/// A 32-byte word from hex (`0x` optional, fewer digits left-padded).
pub(super) fn word(text: &str) -> Result<[u8; 32], String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 64 {
        return Err(format!("slot: {text:?} is not 1 to 64 hex digits"));
    }
    let padded = format!("{digits:0>64}");
    let mut out = [0u8; 32];
    hex::decode_to_slice(&padded, &mut out).map_err(|e| format!("slot: {text:?}: {e}"))?;
    Ok(out)
}
