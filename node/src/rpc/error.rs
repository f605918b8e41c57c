//! The RPC error codes: the node's own (1001–1022), the JSON-RPC standard
//! ones it uses, and those jsonrpsee returns on its own. Every code is
//! documented in `docs/rpc.md`; clients may match on them.

use crate::query::{QueryError, SubmitError};
use crate::service::common::handoff::Rejection;
use atoll_shard::mempool::AdmitError;
use jsonrpsee::types::ErrorObjectOwned;

/// Bad params: bad hex, bad encoding, trailing bytes, an unknown address form.
pub const INVALID_PARAMS: i32 = -32602;
/// The request body is larger than `rpc.max_request_bytes` (jsonrpsee's code).
pub const REQUEST_TOO_LARGE: i32 = -32007;
/// The signature does not verify.
pub const BAD_SIGNATURE: i32 = 1001;
/// The transaction is for another chain.
pub const WRONG_CHAIN_ID: i32 = 1002;
/// The nonce was already used.
pub const NONCE_TOO_LOW: i32 = 1003;
/// The nonce is further ahead of the account's than the mempool holds.
pub const NONCE_GAP_TOO_LARGE: i32 = 1004;
/// The sender cannot pay amount plus fee.
pub const INSUFFICIENT_BALANCE: i32 = 1005;
/// The mempool is full and the fee does not outbid what is there.
pub const MEMPOOL_FULL: i32 = 1006;
/// The sender already has as many pending transactions as allowed.
pub const SENDER_LIMIT: i32 = 1007;
/// The transaction is already pending or already in a block.
pub const ALREADY_KNOWN: i32 = 1008;
/// Another transaction with this nonce is pending and pays at least as much.
pub const REPLACEMENT_UNDERPRICED: i32 = 1009;
/// The requested shard does not exist.
pub const WRONG_SHARD: i32 = 1010;
/// No such block, height or receipt.
pub const NOT_FOUND: i32 = 1011;
/// The state at that height is not kept (the node keeps the latest state).
pub const STATE_NOT_KEPT: i32 = 1012;
/// A wait did not end in time: `wait_until` (the transaction is still
/// pending), or `atoll_getAccount` at `"final"` (the head did not become final).
pub const WAIT_TIMEOUT: i32 = 1013;
/// The node is overloaded (admission queue or waiter table full); retry.
pub const BUSY: i32 = 1014;
/// The node is shutting down.
pub const SHUTTING_DOWN: i32 = 1015;
/// With `wait_until`: the transaction left the mempool without being
/// included (replaced by a higher fee, evicted, or its nonce was used).
pub const DROPPED: i32 = 1016;
/// The sender's account is moving to this shard and its state has not
/// arrived yet (it arrives within a few blocks); retry.
pub const ACCOUNT_ARRIVING: i32 = 1017;
/// An operator's method (`atoll_moveAccount`) on a node whose
/// `rpc.admin` is false.
pub const ADMIN_DISABLED: i32 = 1018;
/// `atoll_moveAccount` could not schedule the move (no such shard, or the
/// map holds as many moved accounts as allowed).
pub const MOVE_REFUSED: i32 = 1019;
/// An operator's network method on a node that has no network (a lone
/// validator).
pub const NO_NETWORK: i32 = 1020;
/// The request is about a shard this validator does not store or execute
/// in this epoch (it is not in the shard's committee); ask a member.
pub const SHARD_NOT_TRACKED: i32 = 1021;
/// A block below the state snapshot this validator synced the shard from
/// (it holds the blocks above it only); ask another validator.
pub const HISTORY_NOT_HELD: i32 = 1022;
/// A contract transaction no block could run as it stands (gas price
/// below the base fee, gas limit out of bounds, creation code too long).
pub const INVALID_TRANSACTION: i32 = 1023;
/// A gas estimate found no gas limit with which the call succeeds.
pub const CALL_FAILED: i32 = 1024;
/// jsonrpsee: a connection asked for more subscriptions than allowed (16).
pub const TOO_MANY_SUBSCRIPTIONS: i32 = -32006;
/// jsonrpsee: a batch has more calls than allowed (10,000).
pub const BATCH_TOO_LARGE: i32 = -32010;
/// jsonrpsee: a batch's answer would exceed the response size limit.
pub const BATCH_RESPONSE_TOO_LARGE: i32 = -32011;
/// The node failed internally (a storage error); see its log.
pub const INTERNAL: i32 = -32603;

/// An error object with `code` and `message`.
pub fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

/// A bad-params error.
pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    error(INVALID_PARAMS, message)
}

/// An internal error; the details go to the log, not to the client.
pub fn internal(err: impl std::fmt::Display) -> ErrorObjectOwned {
    tracing::error!(target: "rpc", %err, "RPC request failed inside the node");
    error(INTERNAL, "internal error; see the node's log")
}

/// The short name of a code, for metrics labels and the load generator.
pub fn code_name(code: i32) -> &'static str {
    match code {
        INVALID_PARAMS => "invalid_params",
        REQUEST_TOO_LARGE => "request_too_large",
        BAD_SIGNATURE => "bad_signature",
        WRONG_CHAIN_ID => "wrong_chain_id",
        NONCE_TOO_LOW => "nonce_too_low",
        NONCE_GAP_TOO_LARGE => "nonce_gap_too_large",
        INSUFFICIENT_BALANCE => "insufficient_balance",
        MEMPOOL_FULL => "mempool_full",
        SENDER_LIMIT => "sender_limit",
        ALREADY_KNOWN => "already_known",
        REPLACEMENT_UNDERPRICED => "replacement_underpriced",
        WRONG_SHARD => "wrong_shard",
        NOT_FOUND => "not_found",
        STATE_NOT_KEPT => "state_not_kept",
        WAIT_TIMEOUT => "wait_timeout",
        BUSY => "busy",
        SHUTTING_DOWN => "shutting_down",
        DROPPED => "dropped",
        ACCOUNT_ARRIVING => "account_arriving",
        ADMIN_DISABLED => "admin_disabled",
        MOVE_REFUSED => "move_refused",
        NO_NETWORK => "no_network",
        SHARD_NOT_TRACKED => "shard_not_tracked",
        HISTORY_NOT_HELD => "history_not_held",
        INVALID_TRANSACTION => "invalid_transaction",
        CALL_FAILED => "call_failed",
        TOO_MANY_SUBSCRIPTIONS => "too_many_subscriptions",
        BATCH_TOO_LARGE => "batch_too_large",
        BATCH_RESPONSE_TOO_LARGE => "batch_response_too_large",
        INTERNAL => "internal",
        _ => "other",
    }
}

impl From<QueryError> for ErrorObjectOwned {
    fn from(failure: QueryError) -> ErrorObjectOwned {
        let code = match &failure {
            QueryError::NoShard { .. } => WRONG_SHARD,
            QueryError::NotTracked { .. } => SHARD_NOT_TRACKED,
            QueryError::NoBlock { .. }
            | QueryError::NoBlockWithHash { .. }
            | QueryError::BeyondHead { .. }
            | QueryError::NoReceipt { .. } => NOT_FOUND,
            QueryError::StateNotKept { .. } => STATE_NOT_KEPT,
            QueryError::StateAtHash => INVALID_PARAMS,
            QueryError::NotFinalInTime { .. } => WAIT_TIMEOUT,
            QueryError::HistoryNotHeld { .. } => HISTORY_NOT_HELD,
            QueryError::Internal(reason) => return internal(reason),
        };
        error(code, failure.to_string())
    }
}

impl From<SubmitError> for ErrorObjectOwned {
    fn from(failure: SubmitError) -> ErrorObjectOwned {
        let code = match failure {
            SubmitError::Query(query) => return query.into(),
            SubmitError::Rejected(rejection) => return rejection.into(),
            SubmitError::Busy | SubmitError::TooManyWaiters => BUSY,
            SubmitError::WaitTimeout { .. } => WAIT_TIMEOUT,
            SubmitError::Dropped { .. } => DROPPED,
            SubmitError::ShuttingDown => SHUTTING_DOWN,
        };
        error(code, failure.to_string())
    }
}

impl From<Rejection> for ErrorObjectOwned {
    fn from(rejection: Rejection) -> ErrorObjectOwned {
        let code = match &rejection {
            Rejection::BadSignature => BAD_SIGNATURE,
            Rejection::AlreadyIncluded { .. } | Rejection::IncludedBeforeSnapshot { .. } => {
                ALREADY_KNOWN
            }
            Rejection::InsufficientBalance { .. } => INSUFFICIENT_BALANCE,
            Rejection::Storage(message) => return internal(message),
            Rejection::Invalid(_) => INVALID_TRANSACTION,
            Rejection::Moved { .. } => WRONG_SHARD,
            Rejection::Arriving { .. } => ACCOUNT_ARRIVING,
            Rejection::Pool(pool) => match pool {
                AdmitError::Duplicate(_) => ALREADY_KNOWN,
                AdmitError::NonceTooLow { .. } => NONCE_TOO_LOW,
                AdmitError::NonceGapTooLarge { .. } => NONCE_GAP_TOO_LARGE,
                AdmitError::NonceTaken { .. } => REPLACEMENT_UNDERPRICED,
                AdmitError::SenderFull { .. } => SENDER_LIMIT,
                AdmitError::PoolFull { .. }
                | AdmitError::TooLarge { .. }
                | AdmitError::TooManyQueued { .. } => MEMPOOL_FULL,
            },
        };
        error(code, rejection.to_string())
    }
}
