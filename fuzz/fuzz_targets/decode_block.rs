//! Decoding a shard block from arbitrary bytes never panics, and whatever
//! decodes (and passes the header/body consistency checks) re-encodes to
//! exactly the same bytes.
#![no_main]

use atoll_primitives::ShardBlock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = ShardBlock::decode(data) {
        assert_eq!(
            block.encode(),
            data,
            "decoding accepted a non-canonical encoding"
        );
        assert_eq!(
            block.header.tx_count as usize,
            block.body.transactions.len()
        );
    }
});
