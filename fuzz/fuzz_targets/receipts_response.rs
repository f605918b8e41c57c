//! A peer's answer to a receipts request (`service::receipts`): decoded
//! with the node's limit and re-encoded to the same bytes (the checks on
//! its receipts are the `check_run` target).
#![no_main]

use atoll_fuzz_fixtures::limits;
use atoll_node::service::network::wire::ReceiptsResponse;
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) =
        codec::decode::<ReceiptsResponse>("receipts", data, limits::max_message_bytes())
    {
        assert_eq!(
            codec::encode(&response),
            data,
            "a non-canonical encoding decoded"
        );
    }
});
