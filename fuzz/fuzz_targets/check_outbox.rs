//! The checks on a snapshot's outbox cursors (`service::network::state_sync::
//! verify::check_outbox`): part 0 of a peer's snapshot, decoded with the node's
//! limit, checked against the fixture's recorded source headers (which
//! sent to shards 0 and 2). Whatever the part, cursors that pass are the
//! source's own, each proven by its last receipt.
#![no_main]

use atoll_fuzz_fixtures::limits;
use atoll_fuzz_fixtures::receipts::{self, SOURCE};
use atoll_node::service::network::state_sync::verify::check_outbox;
use atoll_node::service::network::wire::SnapshotPart;
use atoll_primitives::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(part) =
        codec::decode::<SnapshotPart>("snapshot part", data, limits::max_message_bytes())
    else {
        return;
    };
    let headers = receipts::headers();
    let header_at = |h: u64| headers.get(usize::try_from(h).ok()?).cloned();
    let last_sent = receipts::last_sent();
    if check_outbox(
        SOURCE,
        &part.outbox,
        &part.last_receipts,
        &last_sent,
        &header_at,
    )
    .is_err()
    {
        return;
    }
    let (outbox, last) = receipts::outbox();
    assert_eq!(part.outbox, outbox, "forged outbox cursors passed");
    let got: Vec<_> = part
        .last_receipts
        .iter()
        .map(|p| (&p.receipt, p.source_height))
        .collect();
    let want: Vec<_> = last.iter().map(|p| (&p.receipt, p.source_height)).collect();
    assert_eq!(got, want, "forged last receipts passed");
});
