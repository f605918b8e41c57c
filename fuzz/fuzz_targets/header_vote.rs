//! A header vote gossiped by a committee member (`service::committee`):
//! decoded with `MAX_VOTE_BYTES`, re-encoded to the same bytes, then
//! checked as the node checks it (`CommitteeView::check_vote`: chain,
//! shard, the vote window and epoch, committee membership, both
//! signatures, the signer's peer id) and kept by the certifier when it
//! passes. The recorded height and the beacon's epoch come from the first
//! byte, so both sides of the window are reached.
#![no_main]

use atoll_fuzz_fixtures::{consensus, limits};
use atoll_node::service::network::wire::HeaderVote;
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&context, data)) = input.split_first() else {
        return;
    };
    let (recorded, epoch) = (u64::from(context & 0x0f), u64::from(context >> 4));
    let Ok(vote) = codec::decode::<HeaderVote>("header vote", data, limits::MAX_VOTE_BYTES) else {
        return;
    };
    assert_eq!(
        codec::encode(&vote),
        data,
        "a non-canonical encoding decoded"
    );
    let view = consensus::committee_view(Some(0));
    if let Ok(checked) = view.check_vote(data, &|_| recorded, epoch) {
        assert_eq!(checked, vote, "check_vote decoded another vote");
        assert!(
            view.certifier.lock().add(checked, Some(recorded)),
            "check_vote passed a vote the certifier does not want"
        );
    }
});
