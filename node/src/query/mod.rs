//! The node's read side: one typed view ([`NodeView`]) of every shard's
//! heads and finality, accounts, blocks, transactions and their receipts,
//! contract state, the node's status, and the chain as Ethereum tools see
//! it (`ethereum`: an Ethereum block is a beacon height). The RPC calls it instead of
//! reaching into the service's shared state; anything else that answers
//! questions about the chain would call it too.
//!
//! Answers are the chain's own types (headers, accounts, transaction
//! locations, stored receipts); the RPC turns them into its wire format. A
//! failed query is a [`QueryError`], which carries the message a client
//! sees; the RPC picks its error code.
//!
//! Two writes pass through it as well: a client's transaction, to its
//! sender's shard's admission stage ([`NodeView::submit`]), and the
//! operator's account move ([`NodeView::schedule_move`]).

mod accounts;
mod blocks;
mod contracts;
mod error;
mod ethereum;
mod status;
mod transactions;
mod view;

pub use accounts::AccountAt;
pub use blocks::BlockAt;
pub use contracts::CallSite;
pub use error::QueryError;
pub use ethereum::{BlockLog, EthBlock, EthBlockCall, EthBlockTx, EthTxAt, ShownTx};
pub use status::{BeaconSummary, ShardSummary};
pub use transactions::{Included, ReceiptAt, ReceiptStage, TxAt};
pub use view::{At, NodeView, SubmitError};
