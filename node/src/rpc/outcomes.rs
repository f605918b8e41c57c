//! The API's view of a transaction's outcome: status, gas, logs, return
//! or revert data and the decoded revert reason.

use super::types::{ContractResult, LogEntry, Outcome};
use atoll_primitives::TxOutcome;

/// The API's view of an outcome.
pub(super) fn outcome(outcome: &TxOutcome) -> Outcome {
    match outcome {
        TxOutcome::Success => Outcome {
            success: true,
            failure: None,
            message: None,
            contract: None,
        },
        TxOutcome::Failure(failure) => Outcome {
            success: false,
            failure: Some(failure_name(failure).into()),
            message: Some(failure_message(failure)),
            contract: None,
        },
        TxOutcome::Contract(run) => contract_outcome(run),
    }
}

/// The API's view of what a transaction's code did.
pub(super) fn contract_outcome(run: &atoll_primitives::ContractOutcome) -> Outcome {
    use atoll_primitives::ContractStatus;
    let hex = |bytes: &[u8]| format!("0x{}", hex::encode(bytes));
    let (status, message) = match &run.status {
        ContractStatus::Success => ("success", None),
        ContractStatus::Revert => (
            "revert",
            Some(match revert_reason(&run.output) {
                Some(reason) => format!("reverted: {reason}; the gas used was charged"),
                None => "reverted; the gas used was charged".to_string(),
            }),
        ),
        ContractStatus::OutOfGas => (
            "out_of_gas",
            Some("ran out of gas; all of it was charged".to_string()),
        ),
        ContractStatus::Halted { reason } => (
            "halted",
            Some(format!("halted ({reason}); all its gas was charged")),
        ),
        ContractStatus::OtherShard { address, shard } => (
            "other_shard",
            Some(format!(
                "it would change {address}, which lives on shard {shard}: code cannot change another shard's account; the gas used was charged"
            )),
        ),
        ContractStatus::Sent { shard } => (
            "sent",
            Some(format!(
                "the call went to shard {shard} in a call receipt with its value and gas; its outcome there is the call's (see the receipts)"
            )),
        ),
    };
    let sent = matches!(run.status, ContractStatus::Sent { .. });
    Outcome {
        success: run.status == ContractStatus::Success,
        failure: (message.is_some() && !sent).then(|| status.to_string()),
        message,
        contract: Some(ContractResult {
            status: status.into(),
            gas_used: run.gas_used,
            logs: run
                .logs
                .iter()
                .map(|log| LogEntry {
                    address: log.address.to_string(),
                    topics: log.topics.iter().map(|t| hex(t)).collect(),
                    data: hex(&log.data),
                })
                .collect(),
            output: hex(&run.output),
            created: run.created.map(|a| a.to_string()),
        }),
    }
}

/// The message of a Solidity `Error(string)` revert, if `output` is one.
pub(crate) fn revert_reason(output: &[u8]) -> Option<String> {
    let body = output.strip_prefix(&[0x08, 0xc3, 0x79, 0xa0])?;
    let word = |at: usize| -> Option<usize> {
        let bytes = body.get(at..at + 32)?;
        if bytes[..24].iter().any(|b| *b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(bytes[24..].try_into().ok()?) as usize)
    };
    let offset = word(0)?;
    let len = word(offset)?;
    let start = offset.checked_add(32)?;
    let text = body.get(start..start.checked_add(len)?)?;
    Some(String::from_utf8_lossy(text).into_owned())
}

pub(super) fn failure_name(failure: &atoll_primitives::TxFailure) -> &'static str {
    use atoll_primitives::TxFailure::*;
    match failure {
        WrongChainId { .. } => "wrong_chain_id",
        BadNonce { .. } => "bad_nonce",
        CannotPayFee { .. } => "cannot_pay_fee",
        InsufficientBalance { .. } => "insufficient_balance",
        BalanceOverflow => "balance_overflow",
        SenderOnOtherShard { .. } => "sender_on_other_shard",
        NonceExhausted => "nonce_exhausted",
        SenderArriving => "sender_arriving",
        Invalid { .. } => "invalid",
    }
}

pub(super) fn failure_message(failure: &atoll_primitives::TxFailure) -> String {
    use atoll_primitives::TxFailure::*;
    match failure {
        WrongChainId { expected, got } => {
            format!("signed for chain {got}, this is chain {expected}; nothing was charged")
        }
        BadNonce { expected, got } => {
            format!("nonce {got} is not the account's next nonce {expected}; nothing was charged")
        }
        CannotPayFee { balance, fee } => {
            format!("the balance {balance} cannot pay the fee {fee}; nothing was charged")
        }
        InsufficientBalance { balance, needed } => format!(
            "the balance {balance} does not cover amount plus fee ({needed}); the fee was charged"
        ),
        BalanceOverflow => "the recipient's balance would overflow; the fee was charged".into(),
        SenderOnOtherShard { shard } => {
            format!("the sender lives on shard {shard}; nothing was charged")
        }
        NonceExhausted => "the sender's nonce cannot advance further; nothing was charged".into(),
        SenderArriving => "the sender's account is moving to this shard and its state has not arrived yet; nothing was charged: send it again shortly".into(),
        Invalid { reason } => format!("{reason}; nothing was charged"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::{ContractOutcome, ContractStatus};

    /// An `Error(string)` revert as Solidity encodes it.
    fn error_string(message: &str) -> Vec<u8> {
        let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
        let mut word = |n: usize| {
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&(n as u64).to_be_bytes());
            data.extend_from_slice(&w);
        };
        word(32);
        word(message.len());
        data.extend_from_slice(message.as_bytes());
        data.resize(4 + 64 + message.len().div_ceil(32) * 32, 0);
        data
    }

    #[test]
    fn a_revert_shows_its_reason_and_what_was_charged() {
        let output = error_string("Token: balance too low");
        assert_eq!(
            revert_reason(&output).as_deref(),
            Some("Token: balance too low")
        );
        assert_eq!(revert_reason(&output[..40]), None, "truncated data");
        assert_eq!(revert_reason(b"\x08\xc3\x79\xa0"), None);
        let shown = outcome(&TxOutcome::Contract(ContractOutcome {
            status: ContractStatus::Revert,
            gas_used: 24_000,
            logs: Vec::new(),
            output,
            created: None,
        }));
        assert!(!shown.success);
        assert_eq!(shown.failure.as_deref(), Some("revert"));
        assert_eq!(
            shown.message.as_deref(),
            Some("reverted: Token: balance too low; the gas used was charged")
        );
        let contract = shown.contract.expect("a contract outcome");
        assert_eq!(contract.status, "revert");
        assert_eq!(contract.gas_used, 24_000);
        assert!(contract.output.starts_with("0x08c379a0"));
    }

    #[test]
    fn a_success_has_no_failure_and_shows_logs_and_the_created_address() {
        let created = atoll_primitives::Address([7; 20]);
        let shown = outcome(&TxOutcome::Contract(ContractOutcome {
            status: ContractStatus::Success,
            gas_used: 50_000,
            logs: vec![atoll_primitives::Log {
                address: created,
                topics: vec![[1; 32]],
                data: vec![2, 3],
            }],
            output: Vec::new(),
            created: Some(created),
        }));
        assert!(shown.success && shown.failure.is_none() && shown.message.is_none());
        let contract = shown.contract.expect("a contract outcome");
        assert_eq!(contract.created, Some(created.to_string()));
        assert_eq!(contract.logs[0].data, "0x0203");
        assert_eq!(contract.logs[0].topics[0], format!("0x{}", "01".repeat(32)));
    }
}
