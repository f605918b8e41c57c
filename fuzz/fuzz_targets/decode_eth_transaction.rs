//! Decoding an Ethereum transaction (`atoll_primitives::ethereum::decode`)
//! from arbitrary bytes never panics, and what it accepts is what it
//! claims: canonical (decoded again, the same transaction), hashed as
//! keccak-256 of exactly those bytes, for the chain asked, with a sender
//! recovered.
#![no_main]

use atoll_primitives::ethereum::{decode, samples::CHAIN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = decode(data, CHAIN) {
        assert_eq!(tx.chain_id, CHAIN, "accepted for another chain");
        let again = decode(data, CHAIN).expect("decodes again");
        assert_eq!(again, tx, "decoding is not deterministic");
        let hash = alloy_primitives::keccak256(data);
        assert_eq!(tx.hash.0, hash.0, "the hash is not keccak-256 of the bytes");
    }
});
