//! What `atoll load` measured, and how it is printed.

use super::track::Tracker;
use crate::rpc::api::AtollApiClient;
use atoll_primitives::Hash;
use jsonrpsee::http_client::HttpClient;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The results (`--json` prints them as one object).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Transactions the node admitted.
    pub submitted: u64,
    /// Admitted transactions seen in a final block.
    pub finalized: u64,
    /// The rate asked for.
    pub target_tps: u64,
    /// Admitted transactions per second of sending.
    pub submitted_tps: f64,
    /// Finalized transactions per second, from the first send to the last
    /// finalization seen.
    pub finalized_tps: f64,
    /// Finality latency percentiles, in milliseconds.
    pub latency_ms_p50: f64,
    /// 90th percentile.
    pub latency_ms_p90: f64,
    /// 99th percentile.
    pub latency_ms_p99: f64,
    /// Admitted transfers to another shard (or calls of a contract there).
    pub cross_shard: u64,
    /// Of those, the ones settled: the credit (a call: its refund) seen final.
    pub settled: u64,
    /// Cross-shard settlement latency (submission to credit final), p50, ms.
    pub settlement_ms_p50: f64,
    /// p99.
    pub settlement_ms_p99: f64,
    /// From the source block seen final to the credit seen final, p50, ms.
    pub settlement_after_final_ms_p50: f64,
    /// p99.
    pub settlement_after_final_ms_p99: f64,
    /// Beacon blocks made between the source block seen final and the
    /// credit seen final (read from `atoll_status` at each poll), p50.
    pub settlement_beacon_blocks_p50: f64,
    /// p99.
    pub settlement_beacon_blocks_p99: f64,
    /// Errors by kind (error code names, or `transport`).
    pub errors: BTreeMap<String, u64>,
    /// Contract workloads: the outcomes in their blocks of up to
    /// [`OUTCOME_SAMPLE`] finalized transactions spread over the run, by
    /// status (`success`, `revert`, `out_of_gas`, …; a call to another
    /// shard by its call's status there): a final transaction may still
    /// have failed in its block.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sampled_outcomes: BTreeMap<String, u64>,
}

/// How many finalized contract transactions the report looks up.
const OUTCOME_SAMPLE: usize = 200;

/// The outcomes of up to [`OUTCOME_SAMPLE`] of `finalized`, evenly spread,
/// by status (`unknown`: the lookup failed).
pub async fn sample_outcomes(client: &HttpClient, finalized: &[Hash]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let step = finalized.len().div_ceil(OUTCOME_SAMPLE).max(1);
    for hash in finalized.iter().step_by(step) {
        let status = client.get_transaction_status(format!("0x{hash}")).await;
        let kind = match status {
            Ok(status) => {
                // A call to another shard: the call's status, once it ran.
                let call = status.receipts.iter().find_map(|r| r.call.clone());
                match (status.outcome, call) {
                    (Some(_), Some(call)) => call.contract.map_or("unknown".into(), |c| c.status),
                    (Some(outcome), None) => match (outcome.contract, outcome.failure) {
                        (Some(contract), _) => contract.status,
                        (None, Some(failure)) => failure,
                        (None, None) => "success".into(),
                    },
                    (None, _) => "unknown".into(),
                }
            }
            Err(_) => "unknown".into(),
        };
        *counts.entry(kind).or_default() += 1;
    }
    counts
}

/// The report of a run that started at `started` and sent for `send_time`.
pub fn report(
    target_tps: u64,
    tracker: &Tracker,
    started: Instant,
    send_time: Duration,
    errors: &BTreeMap<String, u64>,
) -> Report {
    let mut latencies = Vec::new();
    let mut settlements = Vec::new();
    let mut after_final = Vec::new();
    let mut beacon_blocks = Vec::new();
    let (mut submitted, mut cross_shard) = (0u64, 0u64);
    let mut last_final = started;
    for (i, sent) in tracker.sent.iter().enumerate() {
        let Some(sent) = sent else { continue };
        submitted += 1;
        if let Some(finalized) = tracker.finalized[i] {
            latencies.push(finalized.saturating_duration_since(*sent).as_secs_f64() * 1e3);
            last_final = last_final.max(finalized);
        }
        if tracker.cross[i] {
            cross_shard += 1;
            if let Some(settled) = tracker.settled[i] {
                settlements.push(settled.saturating_duration_since(*sent).as_secs_f64() * 1e3);
                if let Some(finalized) = tracker.finalized[i] {
                    after_final
                        .push(settled.saturating_duration_since(finalized).as_secs_f64() * 1e3);
                    beacon_blocks.push(
                        tracker.settled_beacon[i].saturating_sub(tracker.final_beacon[i]) as f64,
                    );
                }
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    settlements.sort_by(f64::total_cmp);
    after_final.sort_by(f64::total_cmp);
    beacon_blocks.sort_by(f64::total_cmp);
    let finalized = latencies.len() as u64;
    let span = last_final.duration_since(started).as_secs_f64();
    Report {
        submitted,
        finalized,
        target_tps,
        submitted_tps: submitted as f64 / send_time.as_secs_f64(),
        finalized_tps: if span > 0.0 {
            finalized as f64 / span
        } else {
            0.0
        },
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p90: percentile(&latencies, 0.90),
        latency_ms_p99: percentile(&latencies, 0.99),
        cross_shard,
        settled: settlements.len() as u64,
        settlement_ms_p50: percentile(&settlements, 0.50),
        settlement_ms_p99: percentile(&settlements, 0.99),
        settlement_after_final_ms_p50: percentile(&after_final, 0.50),
        settlement_after_final_ms_p99: percentile(&after_final, 0.99),
        settlement_beacon_blocks_p50: percentile(&beacon_blocks, 0.50),
        settlement_beacon_blocks_p99: percentile(&beacon_blocks, 0.99),
        errors: errors.clone(),
        sampled_outcomes: BTreeMap::new(),
    }
}

/// The `q` quantile of sorted `values` (nearest rank), 0 when empty.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Prints `report` as text.
pub fn print_report(report: &Report, send_time: Duration) {
    println!(
        "submitted   {} in {:.1}s ({:.0} TPS, target {})",
        report.submitted,
        send_time.as_secs_f64(),
        report.submitted_tps,
        report.target_tps
    );
    println!(
        "finalized   {} ({:.0} TPS)",
        report.finalized, report.finalized_tps
    );
    println!(
        "latency     p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms (submission to final)",
        report.latency_ms_p50, report.latency_ms_p90, report.latency_ms_p99
    );
    if report.cross_shard > 0 {
        println!(
            "cross-shard {} settled of {} (credit final on the recipient's shard): p50 {:.0} ms  p99 {:.0} ms",
            report.settled, report.cross_shard, report.settlement_ms_p50, report.settlement_ms_p99
        );
        println!(
            "            after the source block was final: p50 {:.0} ms ({:.0} beacon blocks)  p99 {:.0} ms ({:.0} beacon blocks)",
            report.settlement_after_final_ms_p50,
            report.settlement_beacon_blocks_p50,
            report.settlement_after_final_ms_p99,
            report.settlement_beacon_blocks_p99
        );
    }
    if !report.sampled_outcomes.is_empty() {
        let counts: Vec<String> = report
            .sampled_outcomes
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        println!(
            "outcomes    {} (a sample of the final transactions)",
            counts.join(", ")
        );
    }
    if report.errors.is_empty() {
        println!("errors      none");
    } else {
        let list: Vec<String> = report
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("errors      {}", list.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
