//! Integration tests of the shard store (one binary, one module per topic).

#![allow(clippy::unwrap_used)]

mod common;
mod crash;
mod head_state;
mod open_checks;
mod reopen;
mod validation;
