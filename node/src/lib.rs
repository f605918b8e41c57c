//! The atoll validator node as a library: everything the `atoll` binary
//! (`src/main.rs`, the command line only) runs, and what the fuzz targets
//! (`fuzz/`) decode and check.
//!
//! - [`home`], [`run`], [`dev`], [`localnet`]: a node's home directory,
//!   running it, a dev node and local testnets; [`eth_accounts`]: the dev
//!   accounts of the standard test mnemonic that Ethereum tools know.
//! - [`service`]: the node's threads and tasks, by role: what every node
//!   runs ([`service::common`]: admission, waiters, the committed-block
//!   path), the lone validator's producers and coordinator
//!   ([`service::solo`]), and a validator among others
//!   ([`service::network`]: the peer router, the consensus engine and its
//!   host, the wire types, payloads, header votes, receipts between
//!   committees and state sync).
//! - [`rpc`]: the JSON-RPC server; [`metrics`]: Prometheus metrics.
//! - [`client`], [`load`], [`bench`]: the client commands, the load
//!   generator and `atoll bench`.
//!
//! Every type a peer or a client sends is decoded with
//! `atoll_primitives::codec::decode`, each with its own size limit; `fuzz/`
//! has a target for each of them.

pub mod bench;
pub mod client;
pub mod dev;
pub mod eth_accounts;
pub mod home;
mod keyfile;
pub mod load;
pub mod localnet;
pub mod metrics;
pub mod query;
pub mod rpc;
pub mod run;
pub mod service;
