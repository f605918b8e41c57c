//! A consensus message from a peer (gossip on the proposal and vote
//! topics, or a `Sync`/`Fetch` request), as the engine takes it
//! (`service::bft`): decoded with the node's limit, re-encoded to the same
//! bytes, and handed to a validator's machine when it is signed as it must
//! be (gossip) or is a request. Nothing a peer sends may panic the machine.
#![no_main]

use atoll_consensus::simplex::{Input, Message};
use atoll_fuzz_fixtures::{consensus, limits};
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) =
        codec::decode::<Message>("consensus message", data, limits::max_message_bytes())
    else {
        return;
    };
    assert_eq!(
        codec::encode(&message),
        data,
        "a non-canonical encoding decoded"
    );
    let mut machine = consensus::machine();
    if machine.is_signed(&message) {
        machine.handle(Input::Message(message));
    }
});
