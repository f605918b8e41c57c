//! How much the host lets threads share its memory system, measured beside
//! a benchmark so that its ratios can be read with the conditions they
//! came from.
//!
//! On a shared virtual machine the cores' last-level cache is shared with
//! other tenants. When they use it, threads that each run alone at full
//! speed slow each other down when run together, and a parallel speed-up
//! measured then is smaller than the code's. On this project's 2-core
//! machine the same check, as a separate program, once read 1.0 at a time
//! when the ERC-20 speed-up measured about 1.5×, and 1.6 an hour later,
//! when the same build measured 1.1–1.5×. The check: each thread updates
//! its own 4 MiB buffer at random places, first one thread alone, then all
//! at once; the report is how much slower they are together. It uses no
//! shared data, so 1.0 means no contention. It is coarse: contention
//! changes within seconds, and the check samples half a second on each
//! side of the execution stages.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Bytes each thread updates: within the last-level cache's share of one
/// core, so that contention shows as a slowdown, not as misses alone.
const BUFFER_BYTES: usize = 4 << 20;
/// Updates per thread and run (about 80 ms on this machine).
const UPDATES: u64 = 20_000_000;
/// Runs of each kind; the medians are compared.
const RUNS: usize = 3;

/// How many times slower `threads` threads are together than one alone
/// (at least 2 threads are used; with fewer there is nothing to contend).
pub(super) fn memory_slowdown(threads: usize) -> f64 {
    let threads = threads.max(2);
    let mut buffers: Vec<Vec<u64>> = (0..threads)
        .map(|i| (0..BUFFER_BYTES / 8).map(|j| (i * j) as u64).collect())
        .collect();
    let mut alone = Vec::with_capacity(RUNS);
    let mut together = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        alone.push(update(&mut buffers[0]));
        together.push(all_at_once(&mut buffers));
    }
    median(together).as_secs_f64() / median(alone).as_secs_f64()
}

/// Runs [`update`] on every buffer at once, each on its own thread; the
/// slowest thread's time.
fn all_at_once(buffers: &mut [Vec<u64>]) -> Duration {
    let start = Barrier::new(buffers.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = buffers
            .iter_mut()
            .map(|buffer| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    update(buffer)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the memory check does not panic"))
            .max()
            .unwrap_or_default()
    })
}

/// Updates `buffer` at [`UPDATES`] pseudo-random places; the time it took.
fn update(buffer: &mut [u64]) -> Duration {
    let len = buffer.len() as u64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let started = Instant::now();
    for _ in 0..UPDATES {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let at = ((x >> 17) % len) as usize;
        buffer[at] = buffer[at].wrapping_add(x);
    }
    std::hint::black_box(&buffer);
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_every_part_of_the_buffer() {
        let mut buffer = vec![0u64; 1024];
        update(&mut buffer);
        let touched = buffer.iter().filter(|v| **v != 0).count();
        assert!(touched > 1000, "only {touched} of 1024 words were updated");
    }
}
