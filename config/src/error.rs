//! Errors of the config crate.

use thiserror::Error;

/// A configuration file could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A section is malformed; `reason` names the field and what is wrong.
    #[error("invalid [{section}] configuration: {reason}")]
    Invalid {
        /// The section (TOML table) at fault.
        section: &'static str,
        /// The parser's description, naming the field.
        reason: String,
    },
}
