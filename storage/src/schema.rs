//! The store's identity and schema version, and the checks `open` runs on a
//! data directory before it writes anything there.
//!
//! Every check only reads: the directory listing, RocksDB's column family list
//! and a read-only handle whose info log goes nowhere. A read-write open would
//! create files (and column families) in a directory that may not be ours, so
//! it comes only after the checks pass; `tests/it/open_checks.rs` checks that a
//! refused open leaves every file of the directory unchanged.

use crate::error::StorageError;
use crate::keys::{self, cf};
use atoll_primitives::{ChainId, ShardId};
use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{DBWithThreadMode, IteratorMode, LogLevel, Options, SingleThreaded};
use std::fmt;
use std::io::ErrorKind;
use std::path::Path;

/// Version of the store layout (column families, key and value encodings).
/// Bump it whenever a stored byte would be read differently.
/// 2: shard headers carry the incoming receipt root and inbox cursors,
/// bodies the proven incoming receipts, and outgoing receipts are stored
/// with the height of the block that emitted them.
/// 3: shard headers carry the epoch they executed under, receipts may carry
/// a moving account's state, and the meta column family holds the shard map
/// of the head.
pub const SCHEMA_VERSION: u32 = 3;

/// Largest encoded meta value accepted (they are a few bytes each).
const MAX_META_BYTES: usize = 64;

/// Which chain and shard a store holds; recorded at creation and checked on
/// every open, so one shard's data is never read as another's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct StoreIdentity {
    /// The chain.
    pub chain_id: ChainId,
    /// The shard.
    pub shard: ShardId,
}

impl fmt::Display for StoreIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shard == crate::BEACON {
            write!(f, "chain id {}, beacon", self.chain_id)
        } else {
            write!(f, "chain id {}, shard {}", self.chain_id, self.shard)
        }
    }
}

/// What `open` found at the data directory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing (the directory was missing or empty): create a store.
    Nothing,
    /// A store whose creation stopped before its meta data was written (only
    /// atoll's column families, all empty): finish creating it.
    Unfinished,
    /// A store of this schema and identity, with these column families.
    Store {
        /// Every column family present, which must all be opened.
        column_families: Vec<String>,
    },
}

/// Options for a read-only look that writes no info log file.
fn quiet_options() -> Options {
    let mut options = Options::default();
    options.set_info_logger(rocksdb::InfoLogger::new_callback_logger(
        LogLevel::Header,
        |_, _| {},
    ));
    options
}

/// Inspects `path` without modifying it (except creating it when missing) and
/// checks that it is empty or holds the store of `identity` at [`SCHEMA_VERSION`].
pub(crate) fn inspect(path: &Path, identity: StoreIdentity) -> Result<Found, StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(io)?;
            return Ok(Found::Nothing);
        }
        Err(e) if e.kind() == ErrorKind::NotADirectory => {
            return Err(StorageError::NotADataDirectory {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    if entries.next().is_none() {
        return Ok(Found::Nothing);
    }
    if !path.join("CURRENT").is_file() {
        return Err(StorageError::NotADataDirectory {
            path: path.to_path_buf(),
        });
    }
    let open_error = |source| StorageError::Open {
        path: path.to_path_buf(),
        source,
    };
    let column_families =
        DBWithThreadMode::<SingleThreaded>::list_cf(&quiet_options(), path).map_err(open_error)?;
    let foreign = || StorageError::ForeignDatabase {
        path: path.to_path_buf(),
        column_families: column_families.clone(),
    };
    if !column_families.iter().any(|name| name == cf::META) {
        return Err(foreign());
    }
    let db = DBWithThreadMode::<SingleThreaded>::open_cf_for_read_only(
        &quiet_options(),
        path,
        &column_families,
        false,
    )
    .map_err(open_error)?;
    let meta = db.cf_handle(cf::META).ok_or_else(foreign)?;
    let Some(version) = db.get_pinned_cf(meta, keys::META_SCHEMA_VERSION)? else {
        return if is_unfinished_store(&db, &column_families)? {
            Ok(Found::Unfinished)
        } else {
            Err(foreign())
        };
    };
    let version: u32 = keys::decode(
        "schema version",
        keys::META_SCHEMA_VERSION,
        &version,
        MAX_META_BYTES,
    )?;
    if version != SCHEMA_VERSION {
        return Err(StorageError::SchemaVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let found: StoreIdentity = match db.get_pinned_cf(meta, keys::META_IDENTITY)? {
        Some(bytes) => keys::decode(
            "store identity",
            keys::META_IDENTITY,
            &bytes,
            MAX_META_BYTES,
        )?,
        None => {
            return Err(StorageError::Corrupt {
                what: "store identity",
                key: hex::encode(keys::META_IDENTITY),
                reason: "missing, though the schema version is present".into(),
            })
        }
    };
    if found != identity {
        return Err(StorageError::IdentityMismatch {
            path: path.to_path_buf(),
            found,
            expected: identity,
        });
    }
    Ok(Found::Store { column_families })
}

/// Whether `db` is a shard store whose creation was cut off between creating
/// the column families and writing the meta data: it has only atoll's column
/// families (and RocksDB's "default") and every one of them is empty.
fn is_unfinished_store(
    db: &DBWithThreadMode<SingleThreaded>,
    column_families: &[String],
) -> Result<bool, StorageError> {
    for name in column_families {
        if name != rocksdb::DEFAULT_COLUMN_FAMILY_NAME && !cf::ALL.contains(&name.as_str()) {
            return Ok(false);
        }
        let Some(handle) = db.cf_handle(name) else {
            return Ok(false);
        };
        if db.iterator_cf(handle, IteratorMode::Start).next().is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_display_names_chain_and_shard() {
        let identity = StoreIdentity {
            chain_id: ChainId(7),
            shard: ShardId(3),
        };
        assert_eq!(identity.to_string(), "chain id 7, shard 3");
    }

    #[test]
    fn missing_directory_is_created_and_reported_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a").join("b");
        let identity = StoreIdentity {
            chain_id: ChainId(1),
            shard: ShardId(0),
        };
        assert_eq!(inspect(&path, identity).ok(), Some(Found::Nothing));
        assert!(path.is_dir());
    }

    #[test]
    fn a_file_is_not_a_data_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("file");
        std::fs::write(&path, b"x").expect("write file");
        let identity = StoreIdentity {
            chain_id: ChainId(1),
            shard: ShardId(0),
        };
        assert!(matches!(
            inspect(&path, identity),
            Err(StorageError::NotADataDirectory { .. })
        ));
    }
}
