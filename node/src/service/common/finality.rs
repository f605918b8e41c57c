//! When a committed block becomes final.
//!
//! A shard block is final when a beacon block records its header, and a
//! beacon block is final when the validators decide it. A lone validator
//! is the whole validator set, so its coordinator makes each beacon block
//! final as it makes it, right after the shards commit. With several
//! validators, Simplex consensus finalizes a block's contents before any
//! shard executes them (`replica`), so the shard blocks and the beacon
//! block made of them are final as they are made.

/// How committed blocks become final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalityRule {
    /// Final once a beacon block records the header; with one validator,
    /// beacon blocks are final when made.
    Beacon,
    /// Final once consensus finalized the block that fixed the contents.
    Consensus,
}

impl FinalityRule {
    /// A one-line description, shown by `atoll_status`.
    pub fn describe(self) -> &'static str {
        match self {
            FinalityRule::Beacon => {
                "single validator: a shard block is final once a beacon block records it (right after its commit)"
            }
            FinalityRule::Consensus => {
                "simplex consensus: a shard block is final once the consensus block that fixed its contents is final (it is executed after)"
            }
        }
    }
}
