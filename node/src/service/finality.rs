//! When a committed block becomes final.
//!
//! Today a node runs the whole validator set (one validator), so a block is
//! final as soon as it is committed. The rule is still a separate, named
//! step: the RPC's `final` heights, `wait_until: "final"` and the load
//! generator's latencies all go through it, and the network issue replaces
//! it with the BFT protocol's decision without touching them.

/// How committed blocks become final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalityRule {
    /// The node is the only validator: its commit is the decision.
    SingleValidator,
}

impl FinalityRule {
    /// The newest final height once blocks up to `committed` are committed.
    pub fn final_height(self, committed: u64) -> u64 {
        match self {
            FinalityRule::SingleValidator => committed,
        }
    }

    /// A one-line description, shown by `atoll_status`.
    pub fn describe(self) -> &'static str {
        match self {
            FinalityRule::SingleValidator => {
                "single validator: a block is final when it is committed"
            }
        }
    }
}
