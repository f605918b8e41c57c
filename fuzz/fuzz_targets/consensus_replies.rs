//! A peer's answer to `Sync` or `Fetch` (`service::network::engine`, "consensus
//! replies"): decoded with the node's limit, re-encoded to the same bytes,
//! then taken message by message by a validator's machine as the engine
//! does: one the machine does not want (`Simplex::wants`) is skipped
//! unchecked, and it stops at the first one not signed as it must be.
//! A skipped message, handled anyway, must do nothing; finality never goes
//! back.
#![no_main]

use atoll_consensus::simplex::{Input, Message};
use atoll_fuzz_fixtures::{consensus, limits};
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(messages) =
        codec::decode::<Vec<Message>>("consensus replies", data, limits::max_message_bytes())
    else {
        return;
    };
    assert_eq!(
        codec::encode(&messages),
        data,
        "a non-canonical encoding decoded"
    );
    let mut machine = consensus::machine();
    let before = machine.final_block().0;
    for message in messages {
        if !machine.wants(&message) {
            let effects = machine.handle(Input::Message(message));
            assert!(
                effects.is_empty(),
                "the machine acts on what it does not want: {effects:?}"
            );
            continue;
        }
        if !machine.is_signed(&message) {
            break;
        }
        machine.handle(Input::Message(message));
    }
    assert!(machine.final_block().0 >= before, "finality went back");
});
