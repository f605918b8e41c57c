//! Prometheus metrics, served as text at `http://<metrics.addr>/metrics`.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Labels of an RPC request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The method, without the `atoll_` prefix.
    pub method: &'static str,
    /// `ok` or the error's short name.
    pub result: &'static str,
}

/// Labels of a per-shard metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    /// The shard number.
    pub shard: u16,
}

/// Every metric the node exports. Heights and mempool sizes are per shard
/// (label `shard`); the rest are totals over the shards.
pub struct Metrics {
    registry: Registry,
    /// Height of the newest committed block.
    pub block_height: Family<ShardLabel, Gauge>,
    /// Height of the newest final block.
    pub final_height: Family<ShardLabel, Gauge>,
    /// Seconds from taking transactions out of the mempool to the commit.
    pub block_time: Histogram,
    /// Transactions per block.
    pub block_transactions: Histogram,
    /// Transactions in the mempool.
    pub mempool_transactions: Family<ShardLabel, Gauge>,
    /// Bytes in the mempool.
    pub mempool_bytes: Family<ShardLabel, Gauge>,
    /// Transactions committed.
    pub transactions: Counter,
    /// Executions beyond one per transaction (Block-STM re-executions).
    pub reexecutions: Counter,
    /// RPC requests by method and result.
    pub rpc_requests: Family<RpcLabels, Counter>,
    /// The consensus height being decided (a height is one round).
    pub consensus_height: Gauge,
    /// The newest final consensus height.
    pub consensus_final_height: Gauge,
    /// Heights that ended with the empty block (a leader was slow or down).
    pub consensus_empty_heights: Counter,
    /// Consensus heights per final block: 1 when every leader was on time.
    pub consensus_rounds_per_block: Histogram,
    /// Seconds between final consensus blocks.
    pub consensus_block_interval: Histogram,
    /// Connected peers.
    pub peers: Gauge,
    /// Gossip messages by verdict (accepted, rejected).
    pub gossip: Family<VerdictLabel, Counter>,
    /// Receipts a destination obtained before crediting them, by how.
    pub receipts_obtained: Family<HowLabel, Counter>,
    /// State snapshots a syncing shard tried, by result.
    pub state_syncs: Family<ResultLabel, Counter>,
}

/// Labels of the state-sync counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `installed`, `rejected` (it failed its checks) or `failed` (no
    /// peer served one, or its height was not certified in time).
    pub result: &'static str,
}

/// Labels of the receipts-obtained counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HowLabel {
    /// `local` (this validator's store), `pushed` or `pulled` (from a peer).
    pub how: &'static str,
}

/// Labels of a gossip counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// `accepted` or `rejected`.
    pub verdict: &'static str,
}

impl Metrics {
    /// The metrics, registered under the `atoll` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("atoll");
        let metrics = Metrics {
            block_height: Family::default(),
            final_height: Family::default(),
            block_time: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            block_transactions: Histogram::new(exponential_buckets(1.0, 2.0, 17)),
            mempool_transactions: Family::default(),
            mempool_bytes: Family::default(),
            transactions: Counter::default(),
            reexecutions: Counter::default(),
            rpc_requests: Family::default(),
            consensus_height: Gauge::default(),
            consensus_final_height: Gauge::default(),
            consensus_empty_heights: Counter::default(),
            consensus_rounds_per_block: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            consensus_block_interval: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            peers: Gauge::default(),
            gossip: Family::default(),
            receipts_obtained: Family::default(),
            state_syncs: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "receipts_obtained",
            "Receipts a destination obtained before crediting them, by how",
            metrics.receipts_obtained.clone(),
        );
        registry.register(
            "state_syncs",
            "State snapshots a syncing shard tried, by result",
            metrics.state_syncs.clone(),
        );
        registry.register(
            "consensus_height",
            "The consensus height being decided",
            metrics.consensus_height.clone(),
        );
        registry.register(
            "consensus_final_height",
            "The newest final consensus height",
            metrics.consensus_final_height.clone(),
        );
        registry.register(
            "consensus_empty_heights",
            "Consensus heights that ended with the empty block",
            metrics.consensus_empty_heights.clone(),
        );
        registry.register(
            "consensus_rounds_per_block",
            "Consensus heights per final block",
            metrics.consensus_rounds_per_block.clone(),
        );
        registry.register(
            "consensus_block_interval_seconds",
            "Time between final consensus blocks",
            metrics.consensus_block_interval.clone(),
        );
        registry.register("peers", "Connected peers", metrics.peers.clone());
        registry.register(
            "gossip_messages",
            "Gossip messages by verdict",
            metrics.gossip.clone(),
        );
        registry.register(
            "block_height",
            "Height of the newest committed block",
            metrics.block_height.clone(),
        );
        registry.register(
            "final_height",
            "Height of the newest final block",
            metrics.final_height.clone(),
        );
        registry.register(
            "block_time_seconds",
            "Time to build, execute and commit a block",
            metrics.block_time.clone(),
        );
        registry.register(
            "block_transactions",
            "Transactions per block",
            metrics.block_transactions.clone(),
        );
        registry.register(
            "mempool_transactions",
            "Transactions in the mempool",
            metrics.mempool_transactions.clone(),
        );
        registry.register(
            "mempool_bytes",
            "Bytes of transactions in the mempool",
            metrics.mempool_bytes.clone(),
        );
        registry.register(
            "transactions",
            "Transactions committed",
            metrics.transactions.clone(),
        );
        registry.register(
            "executor_reexecutions",
            "Transaction executions beyond one per transaction",
            metrics.reexecutions.clone(),
        );
        registry.register(
            "rpc_requests",
            "RPC requests by method and result",
            metrics.rpc_requests.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The gauge `family` for `shard`.
    pub fn shard(family: &Family<ShardLabel, Gauge>, shard: u16) -> Gauge {
        family.get_or_create(&ShardLabel { shard }).clone()
    }

    /// Counts one RPC request.
    pub fn rpc(&self, method: &'static str, result: &'static str) {
        self.rpc_requests
            .get_or_create(&RpcLabels { method, result })
            .inc();
    }

    /// Counts receipts a destination obtained.
    pub fn receipts(&self, how: &'static str, count: usize) {
        self.receipts_obtained
            .get_or_create(&HowLabel { how })
            .inc_by(count as u64);
    }

    /// Counts one state snapshot tried, by `result`.
    pub fn state_sync(&self, result: &'static str) {
        self.state_syncs
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts one gossip message's verdict.
    pub fn gossip(&self, accepted: bool) {
        let verdict = if accepted { "accepted" } else { "rejected" };
        self.gossip.get_or_create(&VerdictLabel { verdict }).inc();
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Request, Response, StatusCode};
    // Scrapes are few; anything past this many at once is dropped.
    let slots = Arc::new(tokio::sync::Semaphore::new(8));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    async move {
                        let response = if request.uri().path() == "/metrics" {
                            Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(metrics.render())))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from("try /metrics\n")))
                        };
                        response
                    }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection =
                hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), connection).await;
        });
    }
}

/// Binds the metrics listener (port 0 picks one) and returns its address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
