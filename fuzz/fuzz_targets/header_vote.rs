//! A header vote gossiped by a committee member (`service::committee`):
//! decoded with `MAX_VOTE_BYTES`, re-encoded to the same bytes, then
//! checked as the node checks it (`CommitteeView::check_vote`: chain,
//! shard, committee membership, both signatures, the signer's peer id) and
//! kept by the certifier when it passes.
#![no_main]

use atoll_fuzz_fixtures::{consensus, limits};
use atoll_node::service::committee::HeaderVote;
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(vote) = codec::decode::<HeaderVote>("header vote", data, limits::MAX_VOTE_BYTES) else {
        return;
    };
    assert_eq!(
        codec::encode(&vote),
        data,
        "a non-canonical encoding decoded"
    );
    let view = consensus::committee_view(Some(0));
    if let Some(checked) = view.check_vote(data) {
        assert_eq!(checked, vote, "check_vote decoded another vote");
        view.certifier.lock().add(checked, Some(0));
    }
});
