//! Decoding a signed transaction from arbitrary bytes never panics, and
//! whatever decodes re-encodes to exactly the same bytes (one accepted
//! encoding per value).
#![no_main]

use atoll_primitives::SignedTransaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTransaction::decode(data) {
        assert_eq!(
            tx.encode(),
            data,
            "decoding accepted a non-canonical encoding"
        );
        // Verification of arbitrary keys and signatures must not panic either.
        let _ = tx.verify();
    }
});
