//! The faults a validator operator meets, on four real validators with two
//! shards under load that crosses shards (fault 1, a killed validator, is
//! in `network.rs`). After each: conservation, exactly-once credits, no
//! equivocation, and the same state roots at every final height on every
//! honest validator ([`Ledger::check`]).

use crate::harness::{Localnet, Node, CHAIN_ID};
use crate::network::{
    final_height, status, wait_all_final, wait_connected, wait_until, Ledger, FAST,
};
use atoll_consensus::simplex::{Block, Choice, Message, Proposal, Vote};
use atoll_p2p::{Multiaddr, P2pConfig, Topic};
use atoll_primitives::{codec, hash::domain, ChainId, Hash, KeyPair};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const ALL: [usize; 4] = [0, 1, 2, 3];

fn peer_id(node: &Node) -> String {
    status(node)["consensus"]["peer_id"]
        .as_str()
        .expect("peer id")
        .to_string()
}

/// Bytes in the validator's vote log: it grows with every vote it signs.
fn votes_written(node: &Node) -> u64 {
    std::fs::metadata(node.home.join("validator-votes.log")).map_or(0, |m| m.len())
}

#[test]
fn with_two_of_four_stopped_nothing_finalizes_and_nothing_final_is_lost() {
    let mut net = Localnet::start(4, 2, FAST);
    wait_connected(&net, &ALL, 3);
    let mut ledger = Ledger::new();
    ledger.final_round(&net, |i| (i % 4) as usize);

    net.nodes[2].signal(15);
    net.nodes[3].signal(15);
    // What was in flight settles; after that, half the stake cannot make
    // a quorum (more than two thirds): safety over liveness.
    std::thread::sleep(Duration::from_secs(2));
    let halted = [final_height(&net.nodes[0]), final_height(&net.nodes[1])];
    let pending = ledger.round(&net, |i| (i % 2) as usize);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        [final_height(&net.nodes[0]), final_height(&net.nodes[1])],
        halted,
        "blocks finalized without a quorum"
    );
    for (node, hash) in &pending {
        let s = net.nodes[*node].ok("atoll_getTransactionStatus", json!([hash]));
        assert_ne!(s["status"], "final", "{hash} final without a quorum");
    }

    // Back to a quorum: it resumes, the held transfers finalize and every
    // earlier one is still final everywhere.
    net.nodes[2].run();
    net.nodes[3].run();
    wait_all_final(&net, &pending);
    ledger.final_round(&net, |i| (i % 4) as usize);
    for i in ALL {
        ledger.all_final_on(&net, i);
    }
    ledger.check(&net, &ALL);
}

#[test]
fn a_partitioned_validator_heals_catches_up_and_signs_again() {
    let net = Localnet::start(4, 2, FAST);
    wait_connected(&net, &ALL, 3);
    let mut ledger = Ledger::new();
    ledger.final_round(&net, |i| (i % 4) as usize);

    // Validator 3 refuses the other three (its own peer-block list): it
    // is cut off both ways, and the others (3 of 4) keep finalizing.
    let others: Vec<String> = [0, 1, 2].iter().map(|i| peer_id(&net.nodes[*i])).collect();
    let blocked = net.nodes[3].ok("atoll_setBlockedPeers", json!([others]));
    assert_eq!(blocked.as_array().expect("list").len(), 3);
    wait_until("validator 3 is alone", Duration::from_secs(20), || {
        status(&net.nodes[3])["consensus"]["peers"] == 0
    });
    let cut_at = final_height(&net.nodes[3]);
    for _ in 0..3 {
        ledger.final_round(&net, |i| (i % 3) as usize);
    }
    wait_until("the others go on", Duration::from_secs(60), || {
        final_height(&net.nodes[0]) >= cut_at + 15
    });
    assert!(
        final_height(&net.nodes[3]) <= cut_at + 1,
        "a partitioned validator finalized alone"
    );

    // Healed: the redial reconnects it; it catches up and signs again.
    net.nodes[3].ok("atoll_setBlockedPeers", json!([[]]));
    let target = final_height(&net.nodes[0]);
    let written = votes_written(&net.nodes[3]);
    wait_until("it catches up", Duration::from_secs(60), || {
        final_height(&net.nodes[3]) >= target
    });
    ledger.final_round(&net, |_| 3);
    wait_until("it signs again", Duration::from_secs(30), || {
        votes_written(&net.nodes[3]) > written
    });
    ledger.check(&net, &ALL);
}

#[test]
fn a_validator_restarted_from_an_old_copy_of_its_data_does_not_sign_twice() {
    let mut net = Localnet::start(4, 2, FAST);
    wait_connected(&net, &ALL, 3);
    let mut ledger = Ledger::new();
    ledger.final_round(&net, |i| (i % 4) as usize);

    // A copy of validator 3's data directory, taken while it is stopped.
    net.nodes[3].signal(15);
    let home = net.nodes[3].home.clone();
    let backup = home.with_file_name("validator-3-data-copy");
    copy_dir(&home.join("data"), &backup);
    net.nodes[3].run();
    let copied_at = final_height(&net.nodes[0]);
    for _ in 0..3 {
        ledger.final_round(&net, |i| (i % 4) as usize);
    }
    wait_until(
        "it votes well past the copy",
        Duration::from_secs(60),
        || {
            status(&net.nodes[3])["consensus"]["height"]
                .as_u64()
                .expect("height")
                >= copied_at + 15
        },
    );

    // Killed, its data replaced by the old copy, restarted: the vote log
    // (beside the key) wins, so it starts above every height it voted at
    // instead of voting again where the copy left off.
    let voted_up_to = status(&net.nodes[3])["consensus"]["height"]
        .as_u64()
        .expect("height");
    net.nodes[3].signal(9);
    std::fs::remove_dir_all(home.join("data")).expect("remove data");
    std::fs::rename(&backup, home.join("data")).expect("restore the copy");
    net.nodes[3].run();
    let restarted = status(&net.nodes[3]);
    assert!(
        restarted["consensus"]["height"].as_u64().expect("height") >= voted_up_to,
        "restarted at {} below the height it had voted at, {voted_up_to}",
        restarted["consensus"]["height"]
    );
    assert!(final_height(&net.nodes[3]) < voted_up_to, "the copy is old");

    let target = final_height(&net.nodes[0]);
    wait_until("it catches up", Duration::from_secs(60), || {
        final_height(&net.nodes[3]) >= target
    });
    let written = votes_written(&net.nodes[3]);
    ledger.final_round(&net, |_| 3);
    wait_until("it signs again", Duration::from_secs(30), || {
        votes_written(&net.nodes[3]) > written
    });
    ledger.check(&net, &ALL);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The validator key of a home (its key file's secret).
fn validator_key(home: &Path) -> KeyPair {
    let text = std::fs::read_to_string(home.join("validator.json")).expect("key file");
    let file: serde_json::Value = serde_json::from_str(&text).expect("json");
    let secret = hex::decode(
        file["secret_key"]
            .as_str()
            .expect("secret")
            .trim_start_matches("0x"),
    )
    .expect("hex");
    KeyPair::from_seed(secret.try_into().expect("32 bytes"))
}

#[test]
fn a_validator_sending_garbage_is_banned_and_the_others_keep_finalizing() {
    // A small message limit, so an oversized message is cheap to make.
    let limit = 2 * 1024 * 1024;
    let extra = format!("{FAST}max_message_bytes = {limit}\n");
    let mut net = Localnet::start(4, 2, &extra);
    wait_connected(&net, &ALL, 3);
    let mut ledger = Ledger::new();
    ledger.final_round(&net, |i| (i % 4) as usize);

    // Validator 3's process stops; something with its key and its network
    // identity takes its place and sends the others only garbage.
    net.nodes[3].signal(9);
    let key = validator_key(&net.nodes[3].home);
    let others: Vec<Multiaddr> = [0, 1, 2]
        .iter()
        .map(|i| {
            let port = net.nodes[*i].rpc.port() + 2;
            format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", peer_id(&net.nodes[*i]))
                .parse()
                .expect("multiaddr")
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let rogue = runtime.block_on(async {
        let secret = Hash::domain(&domain::P2P_IDENTITY, &[&key.seed()]).0;
        let mut config = P2pConfig::new(
            CHAIN_ID,
            secret,
            "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
        );
        config.bootnodes = others;
        config.max_message_bytes = 4 * limit;
        let (handle, events) = atoll_p2p::start(config).expect("rogue network");
        handle.subscribe(Topic::Votes).await.expect("subscribe");
        handle.subscribe(Topic::Proposals).await.expect("subscribe");
        (handle, events)
    });
    let (rogue, _events) = rogue;
    let chain = ChainId(CHAIN_ID);
    let stranger = KeyPair::from_seed([9; 32]);
    let garbage: Vec<(Topic, Vec<u8>)> = vec![
        (Topic::Votes, b"not a message at all".to_vec()),
        // Signed by another key than validator 3's.
        (
            Topic::Votes,
            codec::encode(&Message::Vote(Vote::sign(
                chain,
                final_height(&net.nodes[0]) + 1,
                Some(Choice::Empty),
                3,
                &stranger,
            ))),
        ),
        // A proposal by a validator that does not lead that height, or
        // with a wrong signature.
        (
            Topic::Proposals,
            codec::encode(&Message::Propose(Proposal::sign(
                chain,
                Block {
                    height: 1_000_000,
                    parent: Hash([7; 32]),
                    parent_height: 0,
                    payload: vec![1, 2, 3],
                },
                3,
                &stranger,
            ))),
        ),
        // Larger than the validators take.
        (Topic::Votes, vec![0xAB; limit + 1024]),
        (Topic::Transactions(0), b"not transactions".to_vec()),
    ];
    let banned = |net: &Localnet| {
        [0, 1, 2].iter().all(|i| {
            status(&net.nodes[*i])["consensus"]["banned_peers"]
                .as_u64()
                .expect("banned")
                >= 1
        })
    };
    let mut sent = 0;
    for n in 0..600 {
        if banned(&net) {
            break;
        }
        let (topic, data) = &garbage[n % garbage.len()];
        if runtime
            .block_on(rogue.publish(*topic, data.clone()))
            .is_ok()
        {
            sent += 1;
        }
        // Garbage requests too.
        if let Ok(peers) = runtime.block_on(rogue.peers()) {
            for peer in peers {
                let _ = runtime.block_on(async {
                    tokio::time::timeout(
                        Duration::from_millis(200),
                        rogue.request(peer, b"\xff\xfe garbage".to_vec()),
                    )
                    .await
                });
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sent > 0, "the rogue never got a message out");
    assert!(banned(&net), "the garbage sender was not banned everywhere");
    // The three others stayed up and keep finalizing.
    let at = final_height(&net.nodes[0]);
    for _ in 0..2 {
        ledger.final_round(&net, |i| (i % 3) as usize);
    }
    wait_until("finalizing goes on", Duration::from_secs(30), || {
        final_height(&net.nodes[0]) >= at + 5
    });
    for i in 0..3 {
        assert!(net.nodes[i].is_running(), "validator {i} went down");
    }
    ledger.check(&net, &[0, 1, 2]);
    drop(runtime);
}
