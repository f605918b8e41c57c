//! RocksDB stores for atoll (being written).

pub mod error;
pub use error::StorageError;
