//! The checks on a run of receipts a peer sent: each proven against the
//! recorded header of its source block, in sequence, no block skipped.
//! Nothing a peer says is trusted (see [`super`]).

use crate::service::common::keeper::FinalHeaders;
use atoll_primitives::stream::follows;
use atoll_primitives::{ProvenReceipt, ShardId};

/// Where the next receipt of one (source, destination) pair stands.
#[derive(Clone, Copy, Debug)]
pub struct Anchor {
    /// The next sequence number wanted.
    pub next: u64,
    /// Every receipt of source blocks up to this height is held (or was
    /// credited).
    pub complete_to: u64,
    /// The height of the block of the last receipt held, and whether that
    /// receipt was its block's last.
    pub last: Option<(u64, bool)>,
}

/// Whether the block of `header` sent receipts to `destination`.
pub fn sends_to(header: &atoll_primitives::ShardBlockHeader, destination: ShardId) -> bool {
    header.receipt_root(destination).is_some()
}

/// Whether `proven` is a receipt to `destination` proven against the
/// recorded header of its source block.
pub fn proven_ok(
    headers: &impl FinalHeaders,
    destination: ShardId,
    proven: &ProvenReceipt,
) -> bool {
    let receipt = &proven.receipt;
    let Some(header) = headers.final_header(receipt.source, proven.source_height) else {
        return false;
    };
    receipt.destination == destination && proven.is_proven_by(&header)
}

/// How many of `run`'s first receipts make a good run after `anchor`
/// (see [`check_run`]; a start of a good run is good).
pub fn good_start(
    headers: &impl FinalHeaders,
    destination: ShardId,
    anchor: &Anchor,
    limit: u64,
    run: &[ProvenReceipt],
) -> usize {
    let ok = |n: usize| {
        n == 0
            || check_run(
                headers,
                destination,
                anchor.next,
                anchor.last,
                limit,
                &run[..n],
            )
    };
    // The whole run passes unless someone sent a bad receipt: one check.
    if ok(run.len()) {
        return run.len();
    }
    let (mut low, mut high) = (0, run.len());
    while low + 1 < high {
        let middle = (low + high) / 2;
        if ok(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

/// Whether `got` is a good next run of receipts to `destination` from
/// sequence `next`: consecutive, each proven against its recorded source
/// header, each block complete from its first receipt (a run starts where
/// `previous` ended or mid-block right after it), and no block skipped that
/// had receipts for `destination`, all at or below `limit`.
pub fn check_run(
    headers: &impl FinalHeaders,
    destination: ShardId,
    next: u64,
    previous: Option<(u64, bool)>,
    limit: u64,
    got: &[ProvenReceipt],
) -> bool {
    if got.is_empty() {
        return false;
    }
    // Before the first receipt of a stream: "block 0 ended".
    let mut at = previous.unwrap_or((0, true));
    let mut expected = next;
    for proven in got {
        let receipt = &proven.receipt;
        let Ok(after) = follows(expected, receipt.sequence) else {
            return false;
        };
        expected = after;
        if receipt.destination != destination || proven.source_height > limit {
            return false;
        }
        if !proven_ok(headers, destination, proven) {
            return false;
        }
        // Continuity: within the same block the index goes up by one; a
        // new block starts at index 0 after the previous one ended, and
        // every recorded header in between had nothing for `destination`.
        let index = proven.proof.index;
        let (height, ended) = at;
        let ok = height == proven.source_height
            || (ended
                && index == 0
                && proven.source_height > height
                && (height + 1..proven.source_height).all(|h| {
                    headers
                        .final_header(receipt.source, h)
                        .is_some_and(|x| !sends_to(&x, destination))
                }));
        if !ok {
            return false;
        }
        at = (proven.source_height, proven.proof.is_last());
    }
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::service::common::keeper::Recorded;
    use atoll_consensus::Beacon;
    use atoll_primitives::{
        Address, ChainId, Hash, Receipt, ReceiptAction, ShardBlockHeader, ShardLayout, ShardMap,
    };
    use atoll_shard::inbox::prove_receipts;
    use atoll_storage::BeaconStore;

    pub(crate) const SOURCE: ShardId = ShardId(1);
    pub(crate) const DEST: ShardId = ShardId(0);

    /// Receipt `sequence` from [`SOURCE`] to [`DEST`], moving `amount`.
    pub(crate) fn receipt(sequence: u64, amount: u128) -> Receipt {
        Receipt {
            source: SOURCE,
            destination: DEST,
            sequence,
            origin: Hash([sequence as u8; 32]),
            action: ReceiptAction::Transfer {
                to: Address([7; 20]),
                amount,
            },
        }
    }

    /// A header of [`SOURCE`] at `height` that sent `receipts` to [`DEST`].
    pub(crate) fn header(height: u64, receipts: &[Receipt]) -> ShardBlockHeader {
        let hashes: Vec<Hash> = receipts.iter().map(Receipt::hash).collect();
        ShardBlockHeader {
            chain_id: ChainId(5),
            shard: SOURCE,
            height,
            parent: Hash::ZERO,
            timestamp_ms: height,
            epoch: 0,
            map_hash: ShardMap::new(ShardLayout::uniform(2).expect("layout")).hash(),
            state_root: Hash::ZERO,
            tx_root: Hash::ZERO,
            outcome_root: Hash::ZERO,
            receipt_roots: if receipts.is_empty() {
                Vec::new()
            } else {
                vec![(DEST, atoll_primitives::merkle::root(&hashes))]
            },
            incoming_root: Hash::ZERO,
            inbox_cursors: Vec::new(),
            congested: false,
            tx_count: 0,
            burnt_fees: 0,
        }
    }

    /// Source blocks 1 (two receipts), 2 (none) and 3 (one), recorded; the
    /// honest run of all three receipts, proven.
    fn recorded() -> (Beacon, Vec<ProvenReceipt>) {
        let blocks = [
            vec![receipt(0, 10), receipt(1, 11)],
            vec![],
            vec![receipt(2, 12)],
        ];
        let mut headers = vec![header(0, &[])];
        let mut proven = Vec::new();
        for (i, receipts) in blocks.iter().enumerate() {
            let height = i as u64 + 1;
            headers.push(header(height, receipts));
            proven.extend(prove_receipts(height, receipts, DEST));
        }
        (beacon_of(headers), proven)
    }

    /// A beacon that holds `headers` of the source (oldest first).
    fn beacon_of(headers: Vec<ShardBlockHeader>) -> Beacon {
        Beacon::restore(
            ChainId(5),
            ShardLayout::uniform(2).expect("layout"),
            10,
            None,
            None,
            vec![headers],
        )
    }

    #[test]
    fn an_honest_run_passes_whole_or_in_parts() {
        let (beacon, proven) = recorded();
        assert!(check_run(&beacon, DEST, 0, None, 3, &proven));
        assert!(check_run(&beacon, DEST, 0, None, 3, &proven[..1]));
        // From the middle of block 1, then block 3 after block 1 ended.
        assert!(check_run(
            &beacon,
            DEST,
            1,
            Some((1, false)),
            3,
            &proven[1..]
        ));
        assert!(check_run(
            &beacon,
            DEST,
            2,
            Some((1, true)),
            3,
            &proven[2..]
        ));
    }

    #[test]
    fn forged_skipped_or_unrecorded_receipts_are_refused() {
        let (beacon, proven) = recorded();
        // A forged amount fails its proof.
        let mut forged = proven.clone();
        forged[1].receipt.action = ReceiptAction::Transfer {
            to: Address([7; 20]),
            amount: 1_000_000,
        };
        assert!(!check_run(&beacon, DEST, 0, None, 3, &forged));
        // A receipt left out: the sequence breaks.
        let gap = vec![proven[0].clone(), proven[2].clone()];
        assert!(!check_run(&beacon, DEST, 0, None, 3, &gap));
        // Block 1's last receipt withheld and the next block's offered
        // instead (renumbered): block 1 had not ended.
        let mut renumbered = proven[2].clone();
        renumbered.receipt.sequence = 1;
        assert!(!check_run(
            &beacon,
            DEST,
            1,
            Some((1, false)),
            3,
            &[renumbered]
        ));
        // Beyond the limit the destination asked for.
        assert!(!check_run(
            &beacon,
            DEST,
            2,
            Some((1, true)),
            2,
            &proven[2..]
        ));
        // For another destination.
        assert!(!check_run(&beacon, ShardId(1), 0, None, 3, &proven));
        // Nothing is not an answer.
        assert!(!check_run(&beacon, DEST, 0, None, 3, &[]));
        // Numbers at the top of their range are refused, not a panic.
        let mut top = proven.clone();
        top[0].proof.index = u64::MAX;
        top[0].proof.leaf_count = u64::MAX;
        assert!(!check_run(&beacon, DEST, 0, None, 3, &top));
        let mut high = proven[2].clone();
        high.source_height = u64::MAX;
        assert!(!check_run(
            &beacon,
            DEST,
            2,
            Some((1, true)),
            u64::MAX,
            &[high.clone()]
        ));
        assert!(!check_run(
            &beacon,
            DEST,
            2,
            Some((u64::MAX, true)),
            u64::MAX,
            &[high]
        ));
    }

    #[test]
    fn a_pushed_run_is_kept_up_to_its_first_bad_receipt() {
        let (beacon, proven) = recorded();
        let start = Anchor {
            next: 0,
            complete_to: 0,
            last: None,
        };
        assert_eq!(good_start(&beacon, DEST, &start, 3, &proven), 3);
        let mut forged = proven.clone();
        if let ReceiptAction::Transfer { amount, .. } = &mut forged[1].receipt.action {
            *amount += 1;
        }
        assert_eq!(good_start(&beacon, DEST, &start, 3, &forged), 1);
        forged[0].receipt.sequence = 5;
        assert_eq!(good_start(&beacon, DEST, &start, 3, &forged), 0);
        // Receipt 2 is of source block 3, above a limit of 2.
        assert_eq!(good_start(&beacon, DEST, &start, 2, &proven), 2);
    }

    #[test]
    fn headers_the_beacon_let_go_are_read_from_its_store() {
        let (full, proven) = recorded();
        // A beacon that keeps only the newest header, as after thousands
        // of blocks; the store indexed every one.
        let newest = full.shard_head(SOURCE).expect("recorded").clone();
        let beacon = beacon_of(vec![newest]);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BeaconStore::open(&dir.path().join("beacon"), ChainId(5)).expect("open");
        for height in 1..=3 {
            let header = Beacon::final_header(&full, SOURCE, height)
                .expect("kept")
                .clone();
            store
                .index_headers(height, &Hash::ZERO, &[header])
                .expect("index");
        }
        assert!(!check_run(&beacon, DEST, 0, None, 3, &proven));
        let headers = Recorded {
            beacon: &beacon,
            store: &store,
        };
        assert!(check_run(&headers, DEST, 0, None, 3, &proven));
        // Nothing above what the beacon recorded comes from the store.
        store
            .index_headers(4, &Hash::ZERO, &[header(4, &[receipt(3, 13)])])
            .expect("index");
        assert!(headers.final_header(SOURCE, 4).is_none());
    }
}
