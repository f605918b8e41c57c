//! A request from a peer (`service::network::wire::Request`, sorted by `service::network::router`): decoded with the
//! node's limit, re-encoded to the same bytes, then handled as the node
//! handles it, against the fixtures:
//!
//! - `Consensus`: a `Sync` or `Fetch` goes to a validator's machine; its
//!   replies encode within the limit.
//! - `Receipts`: answered from shard 0's store (`receipts::serve`); the
//!   answer decodes, and holds only receipts to the shard asked for, at or
//!   below the height asked for, each proven against its block's header.
//! - `Push`: the receipts the node keeps go into the pushed-receipts
//!   buffer (`push::Pushed`); what is taken from it is a run in sequence
//!   order.
//! - `Snapshot`: answered from shard 0's store (`snapshot::Served`); the
//!   answer decodes, and a part of a snapshot is of the store's head.
#![no_main]

use atoll_consensus::simplex::{Effect, Input, Message};
use atoll_fuzz_fixtures::store::{self, Fixture};
use atoll_fuzz_fixtures::{consensus, limits};
use atoll_node::service::network::pushed::Pushed;
use atoll_node::service::network::receipts::serve;
use atoll_node::service::network::snapshot_serve::Served;
use atoll_node::service::network::wire::ReceiptsResponse;
use atoll_node::service::network::wire::Request;
use atoll_node::service::network::wire::SnapshotPart;
use atoll_primitives::{codec, ShardId};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

/// Shard 0 with receipts to serve, and the snapshots served from it (kept
/// across inputs, as a running node keeps them).
fn served() -> &'static Mutex<(Fixture, Served)> {
    static SERVED: OnceLock<Mutex<(Fixture, Served)>> = OnceLock::new();
    SERVED.get_or_init(|| Mutex::new((store::chain_with_receipts(), Served::default())))
}

fuzz_target!(|data: &[u8]| {
    let limit = limits::max_message_bytes();
    let Ok(request) = codec::decode::<Request>("request", data, limit) else {
        return;
    };
    assert_eq!(
        codec::encode(&request),
        data,
        "a non-canonical encoding decoded"
    );
    match request {
        Request::Consensus(message @ (Message::Sync(_) | Message::Fetch(_))) => {
            let replies: Vec<Message> = consensus::machine()
                .handle(Input::Message(message))
                .into_iter()
                .filter_map(|effect| match effect {
                    Effect::Reply(message) => Some(message),
                    _ => None,
                })
                .collect();
            assert!(codec::encode(&replies).len() <= limit);
        }
        Request::Consensus(_) => {} // The peer is scored down.
        Request::Receipts(request) => {
            let served = served().lock().unwrap_or_else(|e| e.into_inner());
            let store = served.0.chain.shared_store();
            let answer = serve(std::slice::from_ref(&store), &request, limit);
            let response = codec::decode::<ReceiptsResponse>("receipts", &answer, limit)
                .expect("the node's own answer decodes");
            for proven in &response.receipts {
                let receipt = &proven.receipt;
                assert_eq!(receipt.source, store::SHARD);
                assert_eq!(receipt.destination, request.destination);
                assert!(receipt.sequence >= request.from);
                assert!(proven.source_height <= request.up_to);
                let header = store
                    .header(proven.source_height)
                    .expect("the fixture store reads")
                    .expect("a served receipt's block is stored");
                let root = header
                    .receipt_roots
                    .iter()
                    .find(|(d, _)| *d == request.destination)
                    .map(|(_, root)| root)
                    .expect("a served receipt's block sent to its destination");
                assert!(
                    proven.proof.verify(root, &receipt.hash()),
                    "a served proof fails"
                );
            }
        }
        Request::Push(pushed) => {
            // As the node's host: only receipts between two shards of the
            // chain, to a shard it tracks (here every shard).
            let shards = consensus::SHARDS;
            let receipts: Vec<_> = pushed
                .receipts
                .into_iter()
                .filter(|p| {
                    let (source, destination) = (p.receipt.source, p.receipt.destination);
                    source != destination && source.0 < shards && destination.0 < shards
                })
                .collect();
            let pairs: BTreeSet<(ShardId, ShardId)> = receipts
                .iter()
                .map(|p| (p.receipt.source, p.receipt.destination))
                .collect();
            let buffer = Pushed::default();
            let peer = atoll_p2p::peer_id_of([9; 32]);
            buffer.add(peer, receipts);
            for (source, destination) in pairs {
                let run = buffer.take(source, destination, 0, u64::MAX);
                for (held, sequence) in run.iter().zip(0u64..) {
                    assert_eq!(held.0.receipt.sequence, sequence, "a run out of order");
                }
            }
        }
        Request::Snapshot(request) if request.shard == store::SHARD => {
            let served = served().lock().unwrap_or_else(|e| e.into_inner());
            let (fixture, snapshots) = &*served;
            let answer = snapshots.serve(fixture.chain.store(), &request);
            let part = codec::decode::<SnapshotPart>("snapshot part", &answer, limit)
                .expect("the node's own answer decodes");
            if part.height != 0 {
                assert_eq!(part.height, fixture.chain.head().height);
            }
        }
        Request::Snapshot(_) => {} // A shard without a store here: an empty part.
    }
});
