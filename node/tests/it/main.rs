//! Integration tests of the `atoll` binary: real processes in temporary
//! homes, real RocksDB, real HTTP and WebSocket. One test binary for the
//! crate (see the CI notes in the README).

mod abuse;
mod cli;
mod committees;
mod contracts;
mod crash;
mod ethereum;
mod faults;
mod harness;
mod moves;
mod network;
mod rpc;
mod sharded;
