//! The checks on a peer's receipts answer (`service::network::receipts::runs::check_run`):
//! the answer is decoded with the node's limit, then checked as the next
//! run of the receipts the fixture's source shard sent to shard 0 after
//! sequence `next`, at or below source height `limit`. The first two
//! input bytes pick `next` and `limit` (what the node knows: where its
//! stream stands, honestly); the rest is the peer's answer.
//!
//! Whatever the answer, a run that passes is the source's own receipts,
//! from `next` on, in order, none above `limit`.
#![no_main]

use atoll_fuzz_fixtures::receipts::{self, DEST, TOP};
use atoll_fuzz_fixtures::{limits, split_local};
use atoll_node::service::network::receipts::runs::check_run;
use atoll_node::service::network::wire::ReceiptsResponse;
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(([next, limit], answer)) = split_local::<2>(data) else {
        return;
    };
    let Ok(response) =
        codec::decode::<ReceiptsResponse>("receipts", answer, limits::max_message_bytes())
    else {
        return;
    };
    let genuine = receipts::proven(DEST);
    let next = u64::from(next) % (genuine.len() as u64 + 1);
    let limit = u64::from(limit) % (TOP + 2);
    let previous = receipts::anchor(next);
    let beacon = receipts::beacon();
    if !check_run(&beacon, DEST, next, previous, limit, &response.receipts) {
        return;
    }
    for (got, sequence) in response.receipts.iter().zip(next..) {
        let genuine = genuine
            .get(sequence as usize)
            .unwrap_or_else(|| panic!("receipt {sequence} passed; the source never sent it"));
        assert_eq!(got.receipt, genuine.receipt, "a forged receipt passed");
        assert_eq!(
            got.source_height, genuine.source_height,
            "a receipt passed as another block's"
        );
        assert!(
            got.source_height <= limit,
            "a receipt above the limit passed"
        );
    }
});
