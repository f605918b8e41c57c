//! Errors of the primitives crate.

use thiserror::Error;

/// Decoding untrusted bytes failed; nothing was produced.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is larger than the limit for its type.
    #[error("{what} is {len} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The type being decoded.
        what: &'static str,
        /// The input length.
        len: usize,
        /// The limit for this type.
        limit: usize,
    },
    /// The bytes are not a valid encoding (truncated, bad tag, trailing bytes...).
    #[error("invalid {what} encoding: {reason}")]
    Invalid {
        /// The type being decoded.
        what: &'static str,
        /// What the decoder found wrong.
        reason: String,
    },
}

/// A key or signature check failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The 32 bytes are not a valid ed25519 public key.
    #[error("public key {0} is not a valid ed25519 point")]
    BadPublicKey(String),
    /// The signature does not verify against the key and message.
    #[error("signature does not verify")]
    BadSignature,
}
