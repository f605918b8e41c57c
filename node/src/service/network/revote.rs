//! Header votes sent again when a shard's certification stalls.
//!
//! A vote is gossiped once, when its member executes the block. It can be
//! lost: the member had no peers yet (it just restarted), or the others
//! refused it because it was more than [`VOTE_WINDOW`] heights above what
//! the beacon had recorded (certification had stalled on a member that was
//! down). Without it a small committee never reaches its quorum on that
//! header, and since every recorded header must extend the one before,
//! the shard's certification would stop for good. So when a shard's
//! recorded height has not moved for [`REVOTE_AFTER`] while this member
//! has executed past it, the member signs its headers above the recorded
//! one again (ed25519 signatures are deterministic: the same votes) and
//! gossips them.
//!
//! [`VOTE_WINDOW`]: super::committee_view::VOTE_WINDOW

use super::committee_view::CommitteeView;
use super::wire::MAX_CERTIFIED_PER_SHARD;
use atoll_consensus::Beacon;
use atoll_primitives::ShardId;
use atoll_shard::ShardChain;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a shard's recorded height may stand still, while this member
/// has executed past it, before it votes again.
pub const REVOTE_AFTER: Duration = Duration::from_secs(1);

/// Per shard: the recorded height last seen, and since when it stands.
#[derive(Default)]
pub struct Revoter {
    watched: BTreeMap<ShardId, (u64, Instant)>,
}

impl Revoter {
    /// Votes again on each shard in `chains` whose recorded height has
    /// stood still for [`REVOTE_AFTER`] below this validator's head: on the
    /// headers just above it (as many as one payload records) whose
    /// committee it was in. Shards it no longer tracks too: a header of an
    /// epoch when it was a member may still need its vote.
    pub fn check(
        &mut self,
        chains: &[ShardChain],
        beacon: &RwLock<Beacon>,
        view: &CommitteeView,
        runtime: &tokio::runtime::Handle,
    ) {
        let now = Instant::now();
        for chain in chains {
            let shard = chain.head().shard;
            let recorded = beacon.read().shard_head(shard).map_or(0, |h| h.height);
            let Some(to) = self.due(shard, recorded, chain.head().height, now) else {
                continue;
            };
            tracing::info!(
                target: "committee",
                shard = %shard,
                recorded,
                to,
                "the shard's certification stands still; voting again on the headers above it"
            );
            for height in recorded + 1..=to {
                match chain.store().header(height) {
                    Ok(Some(header)) => view.vote_and_publish(&header, recorded, runtime),
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(target: "committee", %err, shard = %shard, height, "cannot read a header to vote again");
                        break;
                    }
                }
            }
        }
    }

    /// The newest height to vote on again for `shard` (from `recorded + 1`)
    /// if its recorded height stood still below `head` for
    /// [`REVOTE_AFTER`] (and as long again since the last time).
    fn due(&mut self, shard: ShardId, recorded: u64, head: u64, now: Instant) -> Option<u64> {
        let watch = self.watched.entry(shard).or_insert((recorded, now));
        if head <= recorded || watch.0 != recorded {
            *watch = (recorded, now);
            return None;
        }
        if now.duration_since(watch.1) < REVOTE_AFTER {
            return None;
        }
        watch.1 = now;
        Some(head.min(recorded + MAX_CERTIFIED_PER_SHARD as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_go_again_only_while_the_recorded_height_stands_still() {
        let mut revoter = Revoter::default();
        let (shard, start) = (ShardId(0), Instant::now());
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(revoter.due(shard, 10, 12, at(0)), None);
        assert_eq!(
            revoter.due(shard, 10, 14, at(900)),
            None,
            "not a second yet"
        );
        assert_eq!(revoter.due(shard, 10, 14, at(1_000)), Some(14));
        assert_eq!(revoter.due(shard, 10, 15, at(1_500)), None, "just voted");
        assert_eq!(revoter.due(shard, 10, 15, at(2_000)), Some(15));
        // It moved: the clock starts again.
        assert_eq!(revoter.due(shard, 11, 15, at(2_100)), None);
        assert_eq!(revoter.due(shard, 11, 15, at(3_000)), None);
        assert_eq!(revoter.due(shard, 11, 500, at(3_100)), Some(11 + 64));
        // Nothing above the recorded height: nothing to vote on.
        assert_eq!(revoter.due(shard, 500, 500, at(9_000)), None);
        assert_eq!(revoter.due(ShardId(1), 3, 4, at(9_000)), None);
    }
}
