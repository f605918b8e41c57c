//! Canonical encoding and bounded decoding of untrusted bytes.

use crate::error::DecodeError;
use borsh::{BorshDeserialize, BorshSerialize};

/// Largest encoded signed transaction accepted (room for contract code later).
pub const MAX_TRANSACTION_BYTES: usize = 128 * 1024;
/// Largest encoded shard block accepted.
pub const MAX_BLOCK_BYTES: usize = 32 * 1024 * 1024;
/// Largest number of transactions in one shard block.
pub const MAX_BLOCK_TRANSACTIONS: usize = 100_000;
/// Largest encoded receipt accepted: a cross-shard call carries its
/// transaction's call data.
pub const MAX_RECEIPT_BYTES: usize = MAX_TRANSACTION_BYTES + 1024;

/// Encodes `value` canonically.
pub fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail")
}

/// Decodes untrusted `bytes` as a `T`: fails if `bytes` is longer than `limit`,
/// is not a valid encoding, or has bytes left over after the value.
pub fn decode<T: BorshDeserialize>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            limit,
        });
    }
    // `try_from_slice` fails when input is left over, which keeps the encoding
    // canonical: one value has exactly one accepted byte string.
    T::try_from_slice(bytes).map_err(|e| DecodeError::Invalid {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&7u64);
        assert_eq!(decode::<u64>("u64", &bytes, 16), Ok(7));
        bytes.push(0);
        assert!(matches!(
            decode::<u64>("u64", &bytes, 16),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn oversized_input_is_rejected_before_decoding() {
        let bytes = vec![0u8; 17];
        assert!(matches!(
            decode::<u64>("u64", &bytes, 16),
            Err(DecodeError::TooLarge { len: 17, .. })
        ));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming u32::MAX elements but carrying four bytes.
        let bytes = [0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4];
        assert!(decode::<Vec<u8>>("vec", &bytes, 64).is_err());
    }
}
