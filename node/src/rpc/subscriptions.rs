//! `atoll_subscribe`: a stream of final heads (`newHeads`).

use super::error::invalid_params;
use super::server::Rpc;
use super::types::HeadInfo;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::PendingSubscriptionSink;
use tokio::sync::broadcast;

impl Rpc {
    pub(super) async fn heads(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
    ) -> SubscriptionResult {
        if kind != "newHeads" {
            self.node.metrics().rpc("subscribe", "invalid_params");
            pending
                .reject(invalid_params(format!(
                    "unknown subscription {kind:?}; the one offered is \"newHeads\""
                )))
                .await;
            return Ok(());
        }
        let mut heads = self.node.subscribe_final_heads();
        let mut sink = pending.accept().await?;
        self.node.metrics().rpc("subscribe", "ok");
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                head = heads.recv() => match head {
                    Ok(head) => {
                        let message = serde_json::value::to_raw_value(&HeadInfo::of(&head, true))?;
                        // A client that does not read fills its connection's
                        // bounded buffer; it is dropped rather than buffered.
                        if sink.try_send(message).is_err() {
                            return Err("the subscriber does not keep up; subscription closed".into());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Err("the subscriber fell behind; subscription closed".into());
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}
