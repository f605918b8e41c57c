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

    /// Which endpoint `shard`'s requests go to now (to pass to [`moved`]).
    ///
    /// [`moved`]: Routes::moved
    pub fn route(&self, shard: usize) -> usize {
        self.by_shard[shard].load(Ordering::Relaxed)
    }

    pub fn client(&self, shard: usize) -> &HttpClient {
        &self.clients[self.route(shard) % self.clients.len()]
    }

    /// `shard`'s endpoint `from` (its [`route`] when asked) answered 1021:
    /// try the next one. Requests in flight together that all met the same
    /// refusal move the shard once, not once each.
    ///
    /// [`route`]: Routes::route
    pub fn moved(&self, shard: usize, from: usize) {
        let _ = self.by_shard[shard].compare_exchange(
            from,
            from.wrapping_add(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}
