//! Which RPC endpoint each shard's requests go to.

use crate::rpc::api::AtollApiClient;
use jsonrpsee::http_client::HttpClient;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which RPC endpoint each shard's requests go to. With shard committees
/// a validator answers only for the shards it tracks (1021 otherwise):
/// the generator then moves that shard to the next endpoint.
pub struct Routes {
    pub clients: Vec<HttpClient>,
    by_shard: Vec<AtomicUsize>,
    /// Every endpoint tracks every shard: batches take turns among them.
    pub everywhere: bool,
}

impl Routes {
    /// Routes for `shards` shards, each to the first endpoint that tracks
    /// it (by `atoll_status`), else the first.
    pub async fn new(clients: Vec<HttpClient>, shards: usize) -> Routes {
        let mut by_shard: Vec<AtomicUsize> = (0..shards).map(|_| AtomicUsize::new(0)).collect();
        let mut everywhere = true;
        for (i, client) in clients.iter().enumerate().rev() {
            if let Ok(status) = client.status().await {
                everywhere &= status.shards.iter().all(|s| s.tracked);
                for shard in status.shards.iter().filter(|s| s.tracked) {
                    if let Some(route) = by_shard.get_mut(usize::from(shard.shard)) {
                        *route.get_mut() = i;
                    }
                }
            }
        }
        Routes {
            clients,
            by_shard,
            everywhere,
        }
    }

    pub fn client(&self, shard: usize) -> &HttpClient {
        &self.clients[self.by_shard[shard].load(Ordering::Relaxed) % self.clients.len()]
    }

    /// `shard`'s endpoint answered 1021: try the next one.
    pub fn moved(&self, shard: usize) {
        self.by_shard[shard].fetch_add(1, Ordering::Relaxed);
    }
}
