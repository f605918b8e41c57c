//! Gas: what contract execution costs and the limits on it.
//!
//! A contract action buys `gas_limit × price` up front (the price is the
//! transaction's `fee`), is refunded the gas it did not use, and the gas it
//! used is burnt, whatever its result. A transfer keeps its flat fee; one
//! that reaches code runs it with [`TRANSFER_CALL_GAS`].

/// The gas a plain transfer to an account holding code runs that code
/// with: the 21,000 a call costs plus Ethereum's 2,300 stipend for a
/// value-bearing call, so a `receive()` can log but not write storage.
pub const TRANSFER_CALL_GAS: u64 = 21_000 + 2_300;

/// A block's gas limit unless the genesis sets another: the sum of the gas
/// limits of a block's contract transactions stays within it. Sized so
/// that a full block executes well within the default block interval on a
/// 2-core machine (see ARCHITECTURE.md, "Contracts").
pub const DEFAULT_BLOCK_GAS_LIMIT: u64 = 200_000_000;

/// The base fee unless the genesis sets another: the least price per gas a
/// contract action may offer, and what contracts read as `BASEFEE`.
pub const DEFAULT_BASE_FEE: u64 = 1;

/// The gas rules every validator of a chain shares (from its genesis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GasRules {
    /// The most gas (by limit) one block's contract transactions may buy.
    pub block_gas_limit: u64,
    /// The least price per gas a contract action may offer.
    pub base_fee: u64,
}

impl Default for GasRules {
    fn default() -> GasRules {
        GasRules {
            block_gas_limit: DEFAULT_BLOCK_GAS_LIMIT,
            base_fee: DEFAULT_BASE_FEE,
        }
    }
}
