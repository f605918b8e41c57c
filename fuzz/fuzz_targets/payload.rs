//! A consensus block's payload, written by its leader (`service::builder`):
//! decoded as every validator decodes it (`Payload::decode_or_empty`: a
//! malformed one is empty), re-encoded to the same bytes when it decodes,
//! and its certified headers checked as the beacon block that records them
//! checks them (`CommitteeView::recordable`: each extends the recorded
//! chain of its shard and holds a quorum of its committee's signatures).
#![no_main]

use atoll_fuzz_fixtures::{consensus, limits, receipts};
use atoll_node::service::network::wire::{Payload, MAX_SHARD_TRANSACTIONS};
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limit = limits::max_message_bytes();
    let shards = usize::from(consensus::SHARDS);
    let decoded = codec::decode::<Payload>("payload", data, limit);
    if let Ok(payload) = &decoded {
        assert_eq!(
            &codec::encode(payload),
            data,
            "a non-canonical encoding decoded"
        );
    }
    let payload = Payload::decode_or_empty(data, shards, limit);
    assert_eq!(payload.shards.len(), shards);
    assert!(payload
        .shards
        .iter()
        .all(|t| t.len() <= MAX_SHARD_TRANSACTIONS));
    if payload.certified.is_empty() {
        return;
    }
    let view = consensus::committee_view(None);
    let recorded = view.recordable(&receipts::beacon(), &payload.certified);
    for header in &recorded {
        assert!(
            payload.certified.iter().any(|c| c.header == *header),
            "a recordable header that the payload did not carry"
        );
    }
});
