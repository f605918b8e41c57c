//! The types every atoll component shares: keys, addresses, transactions,
//! receipts, shard blocks, hashing, canonical encoding and Merkle proofs.
//!
//! Everything that is hashed, signed, stored or sent is encoded with
//! [borsh](https://borsh.io) (canonical and deterministic). Bytes that come from
//! outside (a client, a peer, the disk) are decoded only through
//! [`codec::decode`], which enforces a size limit and rejects trailing bytes.
//!
//! ```
//! use atoll_primitives::{Action, ChainId, KeyPair, Transaction};
//!
//! let alice = KeyPair::from_seed([1; 32]);
//! let bob = KeyPair::from_seed([2; 32]).address();
//! let tx = Transaction {
//!     chain_id: ChainId(7),
//!     sender: alice.public(),
//!     nonce: 0,
//!     fee: 1,
//!     action: Action::Transfer { to: bob, amount: 10 },
//! }
//! .sign(&alice);
//! assert!(tx.verify().is_ok());
//! ```

pub mod block;
pub mod codec;
pub mod cofactored;
pub mod crypto;
pub mod error;
pub mod ethereum;
pub mod gas;
pub mod hash;
pub mod merkle;
pub mod receipt;
pub mod shard;
pub mod shard_map;
pub mod state;
pub mod stream;
pub mod transaction;

pub use block::{
    ContractOutcome, ContractStatus, Log, ShardBlock, ShardBlockBody, ShardBlockHeader, TxFailure,
    TxOutcome,
};
pub use crypto::{Address, KeyPair, PublicKey, Signature};
pub use error::{CryptoError, DecodeError};
pub use gas::GasRules;
pub use hash::Hash;
pub use receipt::{
    CallRecord, Callback, ProvenReceipt, Receipt, ReceiptAction, Reply, MOVE_SLOTS_PER_RECEIPT,
};
pub use shard::{ShardId, ShardLayout};
pub use shard_map::ShardMap;
pub use state::{Account, Slot, StateChange, StateKey, StateValue};
pub use stream::{SequenceBreak, StreamCursors};
pub use transaction::{Action, ChainId, NativeTransaction, SignedTransaction, Terms, Transaction};
