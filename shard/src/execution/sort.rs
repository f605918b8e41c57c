//! Sorting a block's write set by key.
//!
//! A write set entry is about 110 bytes and its key compares field by
//! field, byte slice by byte slice. Sorted whole, entries were compared
//! and moved about n log n times: 5 ms of a 20,000-key ERC-20 block here,
//! most of what finishing the block cost. Instead each key is encoded
//! once into big-endian words that compare as integers in the key's own
//! order, those 64-byte (words, position) pairs are sorted, and every
//! entry then moves once, along the permutation's cycles.

use atoll_primitives::{StateChange, StateKey};
use rayon::slice::ParallelSliceMut;

/// A key as seven big-endian words whose order is the key's: the variant
/// (in declaration order, as the derived `Ord` compares it first), then
/// its fields' bytes, zero-padded. Keys of one variant have fields of the
/// same length, so the padding never decides between them.
type SortWords = [u64; 7];

fn sort_words(key: &StateKey) -> SortWords {
    let mut bytes = [0u8; 56];
    let (tag, fields): (u8, &[&[u8]]) = match key {
        StateKey::Account(address) => (0, &[&address.0]),
        StateKey::CodeHash(address) => (1, &[&address.0]),
        StateKey::Code(hash) => (2, &[&hash.0]),
        StateKey::Slot(address, slot) => (3, &[&address.0, slot]),
        StateKey::Placement(address) => (4, &[&address.0]),
    };
    bytes[0] = tag;
    let mut at = 1;
    for field in fields {
        bytes[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    std::array::from_fn(|i| {
        u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("eight bytes"))
    })
}

/// Sorts `changes` by key, on `pool` when one is given. A write set holds
/// each key once, so the order is total.
pub(crate) fn sort_changes(changes: &mut [StateChange], pool: Option<&rayon::ThreadPool>) {
    const PLACED: u32 = u32::MAX;
    let positions = u32::try_from(changes.len()).expect("a block writes fewer than 2^32 keys");
    assert!(positions < PLACED);
    let mut order: Vec<(SortWords, u32)> = changes
        .iter()
        .zip(0..positions)
        .map(|((key, _), i)| (sort_words(key), i))
        .collect();
    match pool {
        Some(pool) => pool.install(|| order.par_sort_unstable()),
        None => order.sort_unstable(),
    }
    // `source[j]`: where the entry that belongs at `j` is now.
    let mut source: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
    for start in 0..changes.len() {
        // Follow the cycle through `start`. The entry first at `start`
        // travels along it; every other entry moves once, into place.
        let mut at = start;
        loop {
            let from = std::mem::replace(&mut source[at], PLACED);
            if from == PLACED || from as usize == start {
                break;
            }
            changes.swap(at, from as usize);
            at = from as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::{Address, Hash, StateValue};
    use proptest::prelude::*;

    fn key(variant: u8, a: [u8; 20], b: [u8; 32]) -> StateKey {
        match variant % 5 {
            0 => StateKey::Account(Address(a)),
            1 => StateKey::CodeHash(Address(a)),
            2 => StateKey::Code(Hash(b)),
            3 => StateKey::Slot(Address(a), b),
            _ => StateKey::Placement(Address(a)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The words order keys as the derived `Ord` does, and the sort
        /// gives what sorting whole entries gives.
        #[test]
        fn sorting_by_words_is_sorting_by_key(
            raw in proptest::collection::vec(
                (any::<u8>(), any::<[u8; 20]>(), any::<[u8; 32]>(), 0u8..4, any::<u32>()),
                0..300,
            ),
            threads in 0usize..3,
        ) {
            // Few distinct leading bytes, so that many keys share a
            // prefix; `shuffle` gives the order they come in.
            let mut entries: Vec<(u32, StateChange)> = raw
                .into_iter()
                .map(|(variant, mut a, mut b, prefix, shuffle)| {
                    a[..19].fill(prefix);
                    b[..30].fill(prefix);
                    (shuffle, (key(variant, a, b), Some(StateValue::Slot(b))))
                })
                .collect();
            entries.sort_by_key(|(_, (key, _))| *key);
            entries.dedup_by_key(|(_, (key, _))| *key);
            let expected: Vec<StateChange> = entries.iter().map(|(_, c)| c.clone()).collect();
            for pair in expected.windows(2) {
                prop_assert!(sort_words(&pair[0].0) < sort_words(&pair[1].0));
            }
            entries.sort_by_key(|(shuffle, _)| *shuffle);
            let mut changes: Vec<StateChange> = entries.into_iter().map(|(_, c)| c).collect();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads.max(1))
                .build()
                .expect("pool");
            sort_changes(&mut changes, (threads > 0).then_some(&pool));
            prop_assert_eq!(changes, expected);
        }
    }
}
