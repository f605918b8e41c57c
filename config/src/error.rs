//! Errors of the config crate.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// A configuration or genesis file could not be used. Every message names
/// the file or field to fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// A section is malformed; `reason` names the field and what is wrong.
    #[error("invalid {section}: {reason}")]
    Invalid {
        /// The section or file at fault.
        section: &'static str,
        /// The parser's description, naming the field.
        reason: String,
    },
    /// A field has a value that is not allowed.
    #[error("{field}: {reason}")]
    Field {
        /// The field's path, e.g. `accounts[3].balance`.
        field: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// An error in a file, with the file named.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    /// This error, located in the file at `path`.
    pub fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::InFile {
            path: path.to_path_buf(),
            source: Box::new(self),
        }
    }
}
