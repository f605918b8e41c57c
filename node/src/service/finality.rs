//! When a committed block becomes final.
//!
//! A shard block is final when a beacon block records its header, and a
//! beacon block is final when the validators decide it. Today a node runs
//! the whole validator set (one validator), so the coordinator makes each
//! beacon block final as it makes it, right after the shards commit. The
//! rule is still a separate, named step: the RPC's `final` heights,
//! `wait_until: "final"` and the load generator's latencies all follow the
//! coordinator, and the network issue puts the BFT decision there.

/// How committed blocks become final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalityRule {
    /// Final once a beacon block records the header; with one validator,
    /// beacon blocks are final when made.
    Beacon,
}

impl FinalityRule {
    /// A one-line description, shown by `atoll_status`.
    pub fn describe(self) -> &'static str {
        match self {
            FinalityRule::Beacon => {
                "single validator: a shard block is final once a beacon block records it (right after its commit)"
            }
        }
    }
}
