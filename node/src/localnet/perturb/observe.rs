//! What the run saw of finality: each validator's final consensus height,
//! sampled, and what follows from the samples (the longest stall, each
//! perturbed validator's catch-up).

use std::time::Duration;

/// Every validator's final consensus height at one moment (`None`: it did
/// not answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    /// Per validator.
    pub heights: Vec<Option<u64>>,
}

/// The highest final height any validator reported.
fn network(sample: &Sample) -> Option<u64> {
    sample.heights.iter().flatten().copied().max()
}

/// The longest time within `[from, to]` during which no validator's final
/// height rose.
pub fn longest_stall(samples: &[Sample], from: Duration, to: Duration) -> Duration {
    let mut best = None::<u64>;
    let mut since = from;
    let mut longest = Duration::ZERO;
    for sample in samples.iter().filter(|s| s.at <= to) {
        let Some(height) = network(sample) else {
            continue;
        };
        if best.is_none_or(|b| height > b) {
            if sample.at >= from {
                longest = longest.max(sample.at - since);
                since = sample.at;
            }
            best = Some(height);
        }
    }
    longest.max(to.saturating_sub(since))
}

/// How long `validator`, restored at `restored`, took to reach the final
/// height the others had then; `None` if it never did in `samples`.
pub fn catch_up(samples: &[Sample], validator: usize, restored: Duration) -> Option<Duration> {
    let mut later = samples.iter().filter(|s| s.at >= restored);
    let first = later.clone().next()?;
    let target = first
        .heights
        .iter()
        .enumerate()
        .filter(|(v, _)| *v != validator)
        .filter_map(|(_, h)| *h)
        .max()?;
    later
        .find(|s| s.heights[validator].is_some_and(|h| h >= target))
        .map(|s| s.at - restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, heights: &[Option<u64>]) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            heights: heights.to_vec(),
        }
    }

    #[test]
    fn the_longest_stall_is_the_longest_time_without_a_new_final_height() {
        let samples = [
            at(0, &[Some(1), Some(1)]),
            at(500, &[Some(2), None]),
            at(1_000, &[Some(2), Some(2)]),
            at(3_500, &[Some(2), Some(3)]),
            at(4_000, &[Some(4), Some(3)]),
        ];
        let stall = longest_stall(&samples, Duration::ZERO, Duration::from_millis(4_200));
        assert_eq!(stall, Duration::from_millis(3_000));
        // A stall at the end counts up to the end.
        let stall = longest_stall(&samples, Duration::ZERO, Duration::from_millis(9_000));
        assert_eq!(stall, Duration::from_millis(5_000));
    }

    #[test]
    fn catch_up_ends_when_the_validator_reaches_the_others_height_at_its_restore() {
        let samples = [
            at(0, &[Some(10), None]),
            at(1_000, &[Some(12), None]),
            at(1_500, &[Some(13), Some(5)]),
            at(2_000, &[Some(14), Some(12)]),
            at(2_600, &[Some(15), Some(15)]),
        ];
        let restored = Duration::from_millis(900);
        assert_eq!(
            catch_up(&samples, 1, restored),
            Some(Duration::from_millis(1_100))
        );
        let never = [
            at(1_000, &[Some(12), Some(3)]),
            at(2_000, &[Some(13), Some(4)]),
        ];
        assert_eq!(catch_up(&never, 1, restored), None);
    }
}
