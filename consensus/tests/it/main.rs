//! Integration tests of the consensus crate (one binary, one module per area).
#![allow(clippy::unwrap_used, missing_docs)]

mod beacon;
mod ledger;
mod simplex;
mod simulation;
