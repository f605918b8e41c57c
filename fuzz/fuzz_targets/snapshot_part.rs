//! A part of a peer's state snapshot (`service::state_sync`): decoded with
//! the node's limit and re-encoded to the same bytes (the checks on its
//! outbox are the `check_outbox` target, its installation
//! `install_snapshot`).
#![no_main]

use atoll_fuzz_fixtures::limits;
use atoll_node::service::network::wire::SnapshotPart;
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(part) =
        codec::decode::<SnapshotPart>("snapshot part", data, limits::max_message_bytes())
    {
        assert_eq!(
            codec::encode(&part),
            data,
            "a non-canonical encoding decoded"
        );
    }
});
