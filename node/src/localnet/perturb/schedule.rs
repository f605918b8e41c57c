//! The seeded schedule of faults: which validator, what, when, for how
//! long. A pure function of its inputs, so a seed names a run.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// What is done to a validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL, then started again.
    Kill,
    /// SIGSTOP, then SIGCONT: the process freezes with its connections open.
    Pause,
    /// Cut off from the other validators both ways, then reconnected. On
    /// loopback it blocks every other validator's peer id
    /// (`atoll_setBlockedPeers`): its connections close and no new one is
    /// taken. In network namespaces its packets to and from them vanish
    /// on the bridge (`super::super::netns`), connections left open.
    Disconnect,
    /// In network namespaces only: what the other validators send it
    /// vanishes; what it sends arrives.
    CutIn,
    /// In network namespaces only: what it sends the other validators
    /// vanishes; what they send arrives.
    CutOut,
}

/// One fault: `fault` done to `validator` from `at` (since the load
/// started) for `lasting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The validator.
    pub validator: usize,
    /// The fault.
    pub fault: Fault,
    /// When it starts, from the start of the load.
    pub at: Duration,
    /// How long until the validator is restored.
    pub lasting: Duration,
}

impl Event {
    /// When the validator is restored.
    pub fn end(&self) -> Duration {
        self.at + self.lasting
    }
}

/// The faults of a run of `load` seconds over `validators` validators of
/// equal stake, from `seed`. Validator 0 carries the load and is never
/// perturbed. At most `(validators - 1) / 3` are perturbed at once (less
/// than a third of the stake, so a quorum stays up); faults start from 5 s
/// in, last 2 to 8 s, follow each other after 2 to 5 s, and all end 10 s
/// before the load does, so the last catch-up is seen under load.
/// With `one_way`, the faults include one-way cuts ([`Fault::CutIn`],
/// [`Fault::CutOut`]); without, a seed gives the schedule it always gave.
pub fn schedule(seed: u64, validators: usize, load: Duration, one_way: bool) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let at_once = validators.saturating_sub(1) / 3;
    if at_once == 0 || validators < 2 {
        return Vec::new();
    }
    let last_end = load.saturating_sub(Duration::from_secs(10));
    // One lane per validator perturbed at once; each lane's faults follow
    // each other, on validators the other lanes are not using then.
    let mut lanes: Vec<Duration> = (0..at_once)
        .map(|lane| Duration::from_secs(5) + Duration::from_millis(1_500 * lane as u64))
        .collect();
    let mut events: Vec<Event> = Vec::new();
    loop {
        let (lane, start) = lanes
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .map(|(i, t)| (i, *t))
            .expect("at least one lane");
        let lasting = Duration::from_millis(rng.gen_range(2_000..8_000));
        if start + lasting > last_end {
            break;
        }
        let busy: Vec<usize> = events
            .iter()
            .filter(|e| e.at < start + lasting && start < e.end())
            .map(|e| e.validator)
            .collect();
        let free: Vec<usize> = (1..validators).filter(|v| !busy.contains(v)).collect();
        let validator = free[rng.gen_range(0..free.len())];
        let fault = match rng.gen_range(0..if one_way { 5 } else { 3 }) {
            0 => Fault::Kill,
            1 => Fault::Pause,
            2 => Fault::Disconnect,
            3 => Fault::CutIn,
            _ => Fault::CutOut,
        };
        events.push(Event {
            validator,
            fault,
            at: start,
            lasting,
        });
        lanes[lane] = start + lasting + Duration::from_millis(rng.gen_range(2_000..5_000));
    }
    events.sort_by_key(|e| e.at);
    events
}

/// The most validators perturbed at the same moment in `events`.
pub fn most_at_once(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| {
            events
                .iter()
                .filter(|o| o.at <= e.at && e.at < o.end())
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_a_schedule_that_never_takes_a_third_of_the_stake() {
        for (validators, one_way) in [(4, false), (7, false), (10, false), (4, true), (7, true)] {
            for seed in 0..50 {
                let load = Duration::from_secs(120);
                let events = schedule(seed, validators, load, one_way);
                assert_eq!(events, schedule(seed, validators, load, one_way));
                assert!(events.len() >= 5, "{validators}, seed {seed}: {events:?}");
                assert!(most_at_once(&events) <= (validators - 1) / 3);
                for event in &events {
                    assert_ne!(event.validator, 0, "validator 0 carries the load");
                    assert!(event.validator < validators);
                    assert!(event.at >= Duration::from_secs(5));
                    assert!(event.end() <= load - Duration::from_secs(10));
                }
                // A validator is never perturbed twice at once.
                for (i, a) in events.iter().enumerate() {
                    for b in &events[i + 1..] {
                        let overlap = a.at < b.end() && b.at < a.end();
                        assert!(!(overlap && a.validator == b.validator), "{a:?} {b:?}");
                    }
                }
            }
        }
        let kinds = |one_way| -> std::collections::BTreeSet<String> {
            (0..20)
                .flat_map(|seed| schedule(seed, 4, Duration::from_secs(120), one_way))
                .map(|e| format!("{:?}", e.fault))
                .collect()
        };
        // Without one-way cuts, only the three loopback kinds (and so a
        // seed's draws are what they were before cuts existed).
        assert_eq!(kinds(false).len(), 3, "every kind of fault is drawn");
        assert_eq!(kinds(true).len(), 5, "one-way cuts too");
    }

    #[test]
    fn fewer_than_four_validators_cannot_lose_one() {
        assert!(schedule(1, 3, Duration::from_secs(120), false).is_empty());
    }
}
