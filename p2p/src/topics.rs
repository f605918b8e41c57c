//! Gossip topic names: `/atoll/<chain-id>/<beacon|shard-N>/<kind>/<version>`.

/// What a topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Transactions for shard `N`.
    Transactions(u16),
    /// Beacon block proposals.
    Proposals,
    /// Consensus votes and certificates.
    Votes,
    /// Committee members' signatures on shard headers.
    HeaderVotes,
}

impl Topic {
    /// The topic's name on chain `chain`.
    pub fn name(&self, chain: u64) -> String {
        match self {
            Topic::Transactions(shard) => format!("/atoll/{chain}/shard-{shard}/transactions/1"),
            Topic::Proposals => format!("/atoll/{chain}/beacon/proposals/1"),
            Topic::Votes => format!("/atoll/{chain}/beacon/votes/1"),
            Topic::HeaderVotes => format!("/atoll/{chain}/beacon/header-votes/1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        assert_eq!(
            Topic::Transactions(3).name(7),
            "/atoll/7/shard-3/transactions/1"
        );
        assert_eq!(Topic::Proposals.name(7), "/atoll/7/beacon/proposals/1");
        assert_eq!(Topic::Votes.name(7), "/atoll/7/beacon/votes/1");
    }
}
