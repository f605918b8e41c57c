//! A consensus message from a peer (gossip on the proposal and vote
//! topics, or a `Sync`/`Fetch` request), as the engine takes it
//! (`service::network::engine`): decoded with the node's limit, re-encoded to the same
//! bytes; one the machine does not want (`Simplex::wants`: replayed or out
//! of its window) is ignored unchecked, the rest handed to a validator's
//! machine when signed as it must be (gossip) or when a request. Nothing a
//! peer sends may panic the machine, and what the engine ignores unchecked
//! must be what the machine would drop: handled anyway, it does nothing.
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
    if !machine.wants(&message) {
        let effects = machine.handle(Input::Message(message));
        assert!(
            effects.is_empty(),
            "the machine acts on what it does not want: {effects:?}"
        );
    } else if machine.is_signed(&message) {
        machine.handle(Input::Message(message));
    }
});
